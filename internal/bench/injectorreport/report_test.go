package main

import (
	"strings"
	"testing"
	"time"
)

const sample1 = `BenchmarkReviewConcurrent/replicas-2         	     500	   4129000 ns/op	         2.819 p50-ms	         6.965 p99-ms	     12109 reviews/s
BenchmarkReviewConcurrent/distinct-2         	     500	   7121880 ns/op	         5.017 p50-ms	        11.87 p99-ms	      7021 reviews/s
BenchmarkReviewConcurrent/replicas-2         	     500	   4111960 ns/op	         2.719 p50-ms	         6.670 p99-ms	     12160 reviews/s
BenchmarkReviewConcurrent/distinct-2         	     500	   7171973 ns/op	         5.043 p50-ms	        12.12 p99-ms	      6972 reviews/s
BenchmarkReviewConcurrent/replicas-2         	     500	   4299772 ns/op	         2.878 p50-ms	         6.286 p99-ms	     11629 reviews/s
BenchmarkReviewConcurrent/distinct-2         	     500	   7421191 ns/op	         5.174 p50-ms	        11.20 p99-ms	      6737 reviews/s
ok
`

func TestParseAndRender(t *testing.T) {
	res, order, err := parse(strings.NewReader(sample1))
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "replicas" || len(res["distinct"]) != 3 || res["distinct"][2].p99 != 11.20 {
		t.Fatalf("parsed %v %v", order, res)
	}
	body, err := render(res, order, time.Now(), time.Second, "500x", 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| replicas | 2.8 ms (2.8, 2.7, 2.9) | 6.7 ms (7.0, 6.7, 6.3) |", "p99 < 10 ms: met", "| distinct | 5.0 ms", "11.9 ms (11.9, 12.1, 11.2)", "**not met**"} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %q:\n%s", want, body)
		}
	}
	if _, err := render(map[string][]sample{}, nil, time.Now(), 0, "1x", 1); err == nil {
		t.Error("no results rendered without an error")
	}
}
