package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// maxMS bounds /work and /sleep.
const maxMS = 60_000

// newHandler returns the demo's HTTP routes.
func newHandler(greeting string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, greeting)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		d, ok := millis(w, r)
		if !ok {
			return
		}
		n := burn(d)
		fmt.Fprintf(w, "burned %s of CPU (%d hashes)\n", d, n)
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		d, ok := millis(w, r)
		if !ok {
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintf(w, "slept %s\n", d)
		case <-r.Context().Done():
			// The client left; nobody reads an answer.
		}
	})
	return mux
}

// millis reads the ms query parameter, answering 400 when it is invalid.
func millis(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > maxMS {
		http.Error(w, fmt.Sprintf("ms must be a whole number of milliseconds from 0 to %d, e.g. ?ms=200", maxMS), http.StatusBadRequest)
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// burn keeps one CPU busy hashing for d and returns the number of hashes.
func burn(d time.Duration) int {
	deadline := time.Now().Add(d)
	var sum [32]byte
	n := 0
	for time.Now().Before(deadline) {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
			n++
		}
	}
	return n
}
