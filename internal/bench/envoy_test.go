package bench

import (
	"strings"
	"testing"
)

func TestUpsertEnvoySection(t *testing.T) {
	doc := "a\n" + CaptureMarkerStart + "\nc\n" + CaptureMarkerEnd + "\nz\n"
	got, err := UpsertEnvoySection(doc, "E1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "a\n" + CaptureMarkerStart + "\nc\n" + CaptureMarkerEnd + "\n\n" + EnvoyMarkerStart + "\nE1\n" + EnvoyMarkerEnd + "\nz\n"
	if got != want {
		t.Fatalf("insert:\n%q\nwant\n%q", got, want)
	}
	again, err := UpsertEnvoySection(got, "E2\n")
	if err != nil || strings.Count(again, EnvoyMarkerStart) != 1 || !strings.Contains(again, "E2") || strings.Contains(again, "E1") {
		t.Fatalf("replace: %q, %v", again, err)
	}
	if _, err := UpsertEnvoySection("x\n"+EnvoyMarkerStart+"\n", "E\n"); err == nil {
		t.Error("a lone start marker was accepted")
	}
}
