package gops

import (
	"errors"
	"fmt"
	"testing"
)

// gopsStats is the reply of gops v0.3.28's agent to the stats signal.
const gopsStats = "goroutines: 57\nOS threads: 9\nGOMAXPROCS: 8\nnum CPU: 16\n"

func TestParseStats(t *testing.T) {
	got, err := parseStats(gopsStats)
	if want := (Stats{Goroutines: 57, OSThreads: 9, GOMAXPROCS: 8, NumCPU: 16}); err != nil || got != want {
		t.Fatalf("parseStats = %+v, %v; want %+v", got, err, want)
	}
	// A newer agent's extra lines and CRLF are fine.
	if _, err := parseStats("goroutines: 1\r\nuptime: 3s\r\nOS threads: 2\r\nGOMAXPROCS: 3\r\nnum CPU: 4\r\n"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"goroutines: 1\nOS threads: 2\nGOMAXPROCS: 3\n",
		"goroutines: x\nOS threads: 2\nGOMAXPROCS: 3\nnum CPU: 4\n",
		"goroutines: -1\nOS threads: 2\nGOMAXPROCS: 3\nnum CPU: 4\n",
	} {
		if st, err := parseStats(bad); !errors.Is(err, ErrBadReply) {
			t.Errorf("parseStats(%q) = %+v, %v; want ErrBadReply", bad, st, err)
		}
	}
}

func TestParseSetGCPercent(t *testing.T) {
	prev, err := parseSetGCPercent("New GC percent set to -1. Previous value was 100.\n", -1)
	if err != nil || prev != 100 {
		t.Fatalf("parseSetGCPercent = %d, %v; want 100", prev, err)
	}
	for _, bad := range []string{"", "New GC percent set to 50. Previous value was 100.\n", "ok"} {
		if _, err := parseSetGCPercent(bad, -1); !errors.Is(err, ErrBadReply) {
			t.Errorf("parseSetGCPercent(%q): %v, want ErrBadReply", bad, err)
		}
	}
}

// FuzzParseStats checks that the parser never panics, and that what it
// accepts survives a round trip through gops's format.
func FuzzParseStats(f *testing.F) {
	f.Add(gopsStats)
	f.Add("goroutines: 1\nOS threads: 2\nGOMAXPROCS: 3\nnum CPU: 4")
	f.Add("goroutines:1\ngoroutines: 2\nOS threads:\t2\nGOMAXPROCS: 3\nnum CPU: 4\n")
	f.Add("num CPU: 99999999999999999999999\n")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseStats(s)
		if err != nil {
			if !errors.Is(err, ErrBadReply) {
				t.Fatalf("error %v does not wrap ErrBadReply", err)
			}
			return
		}
		again, err := parseStats(fmt.Sprintf("goroutines: %v\nOS threads: %v\nGOMAXPROCS: %v\nnum CPU: %v\n",
			st.Goroutines, st.OSThreads, st.GOMAXPROCS, st.NumCPU))
		if err != nil || again != st {
			t.Fatalf("round trip of %+v: %+v, %v", st, again, err)
		}
	})
}
