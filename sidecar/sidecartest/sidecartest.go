// Package sidecartest starts a real sidecar for the tests of other packages.
package sidecartest

import (
	"context"
	"testing"

	"github.com/triage-sh/triage/sidecar"
)

// Serve starts a sidecar with cfg and stops it when the test ends,
// failing the test if Serve returned an error.
func Serve(t testing.TB, cfg sidecar.Config) *sidecar.Server {
	t.Helper()
	srv, err := sidecar.New(cfg)
	if err != nil {
		t.Fatalf("start sidecar: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar Serve: %v", err)
		}
	})
	return srv
}
