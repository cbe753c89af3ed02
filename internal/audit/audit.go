// Package audit writes one JSON line per gRPC call, denials included.
//
// Records are encoded before the lock is taken and written with a single
// Write call, so concurrent calls never interleave and a slow sink delays only
// the write itself.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Record is one audited call. Field names are stable for log pipelines.
type Record struct {
	// Time is when the call started, UTC.
	Time time.Time `json:"time"`
	// Identity is the authenticated caller, "" when unauthenticated.
	Identity string `json:"identity"`
	// AuthMethod is how the caller authenticated: mtls, token, unix-peer, none.
	AuthMethod string `json:"auth_method"`
	// Peer is the remote address.
	Peer string `json:"peer"`
	// Method is the full gRPC method name.
	Method string `json:"method"`
	// Permission is the permission the method requires.
	Permission string `json:"permission"`
	// Args summarises the request (filter, duration, profile type, pid).
	Args string `json:"args,omitempty"`
	// Code is the gRPC status code name.
	Code string `json:"code"`
	// Message is the error detail, including what the caller was not told.
	Message string `json:"message,omitempty"`
	// BytesSent is the size of the response messages.
	BytesSent int64 `json:"bytes_sent"`
	// DurationMS is the call's duration in milliseconds.
	DurationMS float64 `json:"duration_ms"`
}

// Logger writes records as JSON lines.
type Logger struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
}

// New returns a Logger writing to w.
func New(w io.Writer) *Logger { return &Logger{w: w} }

// Open returns a Logger for dest: "stderr", "-" or "" for standard error,
// otherwise a file opened for appending with mode 0600.
func Open(dest string) (*Logger, error) {
	switch dest {
	case "", "-", "stderr":
		return New(os.Stderr), nil
	case "stdout":
		return New(os.Stdout), nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w (point --audit-log at a writable file, or use stderr)", dest, err)
	}
	return &Logger{w: f, closer: f}, nil
}

// Log writes r as one line. A write error is returned so the caller can
// report it on its operational log; the call itself is not failed.
func (l *Logger) Log(r Record) error {
	r.Time = r.Time.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		return fmt.Errorf("write audit record: %w", err)
	}
	return nil
}

// Close closes the underlying file, if the Logger opened one.
func (l *Logger) Close() error {
	if l.closer == nil {
		return nil
	}
	return l.closer.Close()
}
