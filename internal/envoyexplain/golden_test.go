package envoyexplain

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// TestGolden compares the explanation of each config dump fixture with its
// golden file (go test -run TestGolden -update rewrites them).
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*config_dump*.json"))
	if len(files) == 0 {
		t.Skipf("no config dump fixtures in %s", fixtureDir)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.Contains(name, "v2alpha") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			d := decode(t, name)
			e := Explain(Input{Dump: d.Dump, Unknown: d.Unknown, Legacy: d.Legacy, Now: fixtureNow})
			got, err := json.MarshalIndent(e, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", strings.TrimSuffix(name, ".json")+".golden.json")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("explanation differs from %s (run with -update and review the diff)", golden)
			}
		})
	}
}
