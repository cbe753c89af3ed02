package auth

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestWatchedConcurrent reads while the file is rotated; run with -race.
func TestWatchedConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeReplace(t, path, hashLine("t0", "id0"))
	f, err := NewTokensFile(path, WithReloadInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range 20 {
					if id, ok := f.Lookup(fmt.Sprintf("t%d", i)); ok && id != fmt.Sprintf("id%d", i) {
						t.Errorf("token t%d gave %q", i, id)
						return
					}
				}
			}
		}()
	}
	for i := 1; i < 20; i++ {
		writeReplace(t, path, hashLine(fmt.Sprintf("t%d", i), fmt.Sprintf("id%d", i)))
	}
	close(stop)
	wg.Wait()
	if id, ok := f.Lookup("t19"); !ok || id != "id19" {
		t.Errorf("after the last rotation: %q, %v", id, ok)
	}
}

func TestWatchedNegativeInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeReplace(t, path, hashLine("a", "alice"))
	f, err := NewTokensFile(path, WithReloadInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	writeReplace(t, path, hashLine("b", "bob"))
	if _, ok := f.Lookup("a"); !ok {
		t.Error("reloaded with a negative interval")
	}
}

func TestWatchedUnchangedFileNotReloaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	writeReplace(t, path, "v1")
	loads := 0
	w, err := newWatched([]string{path}, func() (string, error) {
		loads++
		b, err := os.ReadFile(path)
		return string(b), err
	}, buildOptions([]Option{WithReloadInterval(0)}))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		w.get()
	}
	if loads != 1 {
		t.Errorf("%d loads of an unchanged file", loads)
	}
	// Same size, same inode, new mtime: still noticed.
	if err := os.WriteFile(path, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	os.Chtimes(path, future, future)
	if got := w.get(); got != "v2" {
		t.Errorf("got %q after an in-place change", got)
	}
}
