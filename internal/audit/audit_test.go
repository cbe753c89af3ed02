package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestLogConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Log(Record{Time: time.Now(), Identity: "id", Method: "/m", Code: "OK", BytesSent: int64(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		seen[r.BytesSent] = true
	}
	if len(seen) != 200 {
		t.Fatalf("got %d distinct records, want 200", len(seen))
	}
}

func TestOpenFileAppendsWithPrivateMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for range 2 {
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Log(Record{Method: "/x", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n != 2 {
		t.Fatalf("%d lines, want 2 (append, not truncate)", n)
	}
	if !bytes.Contains(b, []byte(`"time":"2026-01-02T02:04:05Z"`)) {
		t.Fatalf("time not UTC: %s", b)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestOpenUnwritableSaysWhatToDo(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing", "audit.log"))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("--audit-log")) {
		t.Fatalf("err = %v, want a message naming --audit-log", err)
	}
}
