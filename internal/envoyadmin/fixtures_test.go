package envoyadmin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/triage-sh/triage/sidecar/envoy/envoytest"
)

// fixtureDir holds admin output recorded from real Envoys; tests read it in
// place (see its PROVENANCE.md) and skip when it is absent.
var fixtureDir = envoytest.FixtureDir

func fixturePath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(fixtureDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixture %s not found (Envoy admin fixtures live in %s): %v", name, fixtureDir, err)
	}
	return p
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixturePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readFixture reads a fixture without a test (fuzz seeds).
func readFixture(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(fixtureDir, name))
}

func configDumpFixtures(t testing.TB) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(fixtureDir, "*config_dump*.json"))
	if len(m) == 0 {
		t.Skipf("no config dump fixtures in %s", fixtureDir)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}
