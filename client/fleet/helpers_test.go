package fleet

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/internal/goroutines"
	"github.com/triage-sh/triage/internal/goroutines/goroutinespb"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func goldenJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, name, append(b, '\n'))
}

// podFromDump parses a real dump, groups it as the sidecar does and
// converts it to what client.Goroutines returns.
func podFromDump(t testing.TB, pod string, dump []byte) PodGoroutines {
	t.Helper()
	d, err := goroutines.Parse(bytes.NewReader(dump))
	if err != nil {
		t.Fatalf("parse dump for %s: %v", pod, err)
	}
	groups := goroutinespb.Groups(d.Group(goroutines.GroupOptions{}))
	return PodGoroutines{
		Pod:     pod,
		Summary: &triagev1.GoroutineSummary{Total: int64(d.Total), Groups: int64(len(groups)), Path: triagev1.GoroutinePath_GOROUTINE_PATH_TEXT, Source: "agent", Pid: 7},
		Groups:  groups,
	}
}

func podFromFile(t testing.TB, pod, file string) PodGoroutines {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "dumps", file))
	if err != nil {
		t.Fatal(err)
	}
	return podFromDump(t, pod, b)
}

// shopPods are the four real dumps: shop-c leaks, shop-d runs another build.
func shopPods(t testing.TB) []PodGoroutines {
	return []PodGoroutines{
		podFromFile(t, "shop/shop-a", "shop-a.txt"),
		podFromFile(t, "shop/shop-b", "shop-b.txt"),
		podFromFile(t, "shop/shop-c", "shop-c.txt"),
		podFromFile(t, "shop/shop-d", "shop-d-v2.txt"),
	}
}

// dur is minutes as the API's duration.
func dur(minutes int) *durationpb.Duration {
	return durationpb.New(time.Duration(minutes) * time.Minute)
}
