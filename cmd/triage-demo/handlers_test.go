package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlers(t *testing.T) {
	h := newHandler("hi there")
	tests := []struct {
		method, target string
		code           int
		body           string
	}{
		{"GET", "/", 200, "hi there\n"},
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/work?ms=2", 200, "burned 2ms of CPU"},
		{"GET", "/work?ms=0", 200, "burned 0s of CPU"},
		{"GET", "/work", 400, "ms must be"},
		{"GET", "/work?ms=abc", 400, "ms must be"},
		{"GET", "/work?ms=-1", 400, "ms must be"},
		{"GET", "/sleep?ms=1", 200, "slept 1ms"},
		{"GET", "/sleep?ms=60001", 400, "ms must be a whole number of milliseconds from 0 to 60000"},
		{"GET", "/nope", 404, ""},
		{"POST", "/", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tt.code || !strings.HasPrefix(string(body), tt.body) {
				t.Errorf("%s %s = %d %q, want %d %q...", tt.method, tt.target, rec.Code, body, tt.code, tt.body)
			}
		})
	}
}

func TestSleepStopsWhenClientLeaves(t *testing.T) {
	h := newHandler("")
	req := httptest.NewRequest(http.MethodGet, "/sleep?ms=60000", nil)
	ctx, cancel := contextWithCancel(req)
	cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(ctx)) // returns at once: the request is already cancelled
	if rec.Body.Len() != 0 {
		t.Errorf("body = %q, want nothing for a client that left", rec.Body.String())
	}
}

func contextWithCancel(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithCancel(r.Context())
}
