package gops

import (
	"testing"

	"github.com/google/gops/signal"
)

// The client repeats gops's signal bytes rather than import them: check them
// against the source of truth.
func TestSignalsMatchGops(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ours, its byte
	}{
		{"StackTrace", sigStackTrace, signal.StackTrace},
		{"GC", sigGC, signal.GC},
		{"MemStats", sigMemStats, signal.MemStats},
		{"Version", sigVersion, signal.Version},
		{"HeapProfile", sigHeapProfile, signal.HeapProfile},
		{"CPUProfile", sigCPUProfile, signal.CPUProfile},
		{"Stats", sigStats, signal.Stats},
		{"Trace", sigTrace, signal.Trace},
		{"BinaryDump", sigBinaryDump, signal.BinaryDump},
		{"SetGCPercent", sigSetGCPercent, signal.SetGCPercent},
	} {
		if tc.ours != tc.its {
			t.Errorf("%s: ours %#x, gops %#x", tc.name, tc.ours, tc.its)
		}
	}
}
