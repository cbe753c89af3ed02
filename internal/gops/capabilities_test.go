package gops

import (
	"strings"
	"testing"
)

func TestCapabilities(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Capabilities {
		if seen[c.Feature] || c.Note == "" {
			t.Errorf("capability %+v: duplicate or without a note", c)
		}
		seen[c.Feature] = true
	}
	for _, f := range []string{"stack", "memstats", "gc", "version", "stats", "heap", "cpu", "trace"} {
		if !Supports(f) {
			t.Errorf("Supports(%q) = false", f)
		}
	}
	for _, f := range []string{"wall", "goroutines", "config", "no-such-feature"} {
		if Supports(f) {
			t.Errorf("Supports(%q) = true", f)
		}
	}
	msg := NeedsTriageAgent("wall")
	for _, want := range []string{"wall needs the triage agent", "fgprof", "--agent-socket", "stack, memstats"} {
		if !strings.Contains(msg, want) {
			t.Errorf("NeedsTriageAgent(wall) = %q, lacks %q", msg, want)
		}
	}
}
