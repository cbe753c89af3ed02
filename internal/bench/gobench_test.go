package bench

import (
	"strings"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkFloor/synthetic-5000-clusters-2         	       5	 526778501 ns/op	  56.78 MB/s	        46.94 peak-MiB	157340737 B/op	 5107840 allocs/op
BenchmarkReviewConcurrent/distinct-2         	     500	   7121880 ns/op	         5.017 p50-ms	        11.87 p99-ms	      7021 reviews/s
BenchmarkTopLevel-2   	 100	 12 ns/op
PASS
`
	got, err := ParseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d lines parsed, want 2 (sub-benchmarks only): %+v", len(got), got)
	}
	a, b := got[0], got[1]
	if a.Name != "Floor" || a.Sub != "synthetic-5000-clusters" || a.NsPerOp != 526778501 || a.Metrics["peak-MiB"] != 46.94 || a.Metrics["MB/s"] != 56.78 || a.Metrics["B/op"] != 157340737 {
		t.Errorf("first line: %+v", a)
	}
	if b.Name != "ReviewConcurrent" || b.Sub != "distinct" || b.Metrics["p99-ms"] != 11.87 || b.Metrics["reviews/s"] != 7021 {
		t.Errorf("second line: %+v", b)
	}
}
