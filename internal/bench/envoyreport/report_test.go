package main

import (
	"strings"
	"testing"
	"time"
)

const sample = `goos: linux
BenchmarkFloor/synthetic-5000-clusters-2         	       5	 526778501 ns/op	  56.78 MB/s	        46.94 peak-MiB	157340737 B/op	 5107840 allocs/op
BenchmarkFloor/fixture-istio-1.10-sidecar-2      	       5	   6790382 ns/op	  70.83 MB/s	        10.62 peak-MiB	 2385793 B/op	   59347 allocs/op
BenchmarkDecode/synthetic-5000-clusters-2        	       5	 604911371 ns/op	  49.45 MB/s	        50.44 peak-MiB	158474382 B/op	 5123003 allocs/op
BenchmarkExplain/synthetic-5000-clusters-2       	       5	 113507399 ns/op	       151.5 peak-MiB	83271428 B/op	 1214849 allocs/op
BenchmarkDecodeExplain/synthetic-5000-clusters-2 	       5	 769529989 ns/op	  38.87 MB/s	       123.0 peak-MiB	241744763 B/op	 6337851 allocs/op
BenchmarkDecodeExplain/fixture-istio-1.10-sidecar-2         	       5	   8731291 ns/op	  55.09 MB/s	        15.21 peak-MiB	 3189059 B/op	   68627 allocs/op
PASS
`

func TestParseAndRender(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := res["DecodeExplain"]["synthetic-5000-clusters"]; got.nsPerOp != 769529989 || got.peakMiB != 123 || got.mbPerSec != 38.87 {
		t.Errorf("parsed %+v", got)
	}
	if got := res["Floor"]["fixture-istio-1.10-sidecar"].nsPerOp; got != 6790382 {
		t.Errorf("fixture floor %v", got)
	}
	body, err := render(res, time.Now(), time.Second, "5x")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| synthetic-5000-clusters | 526.8 ms | 604.9 ms | 113.5 ms | 769.5 ms | 1.46x |", "met", "fixture-istio-1.10-sidecar"} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %q:\n%s", want, body)
		}
	}
	if strings.Index(body, "synthetic") > strings.Index(body, "| fixture") {
		t.Error("the synthetic row should come first")
	}
	if _, err := render(map[string]map[string]result{}, time.Now(), 0, "5x"); err == nil {
		t.Error("no results rendered without an error")
	}
}
