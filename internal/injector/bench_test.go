package injector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkReviewConcurrent measures the webhook as the API server sees it:
// each iteration is a burst of 50 concurrent AdmissionReviews of a pod in a
// restricted namespace that gets injected (decode, namespace lookup, Pod
// Security checks, patch), over real TLS on kept-alive HTTP/2 connections.
// It reports the per-review latency's p50 and p99 over all bursts (goal:
// p99 < 10 ms).
//
//   - replicas: the 50 pods are byte-identical, as a ReplicaSet scaling up
//     creates them from one template (answered once, then from the cache).
//   - distinct: every pod differs (a label), so each one is computed.
//
// The fixture is compacted first: the API server sends AdmissionReviews as
// compact JSON (its serializer does not indent), and the fixture's
// indentation would double the bytes to scan.
func BenchmarkReviewConcurrent(b *testing.B) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, readRequest(b, "run_as_user")); err != nil {
		b.Fatal(err)
	}
	base := buf.Bytes()
	var seq atomic.Int64
	b.Run("replicas", func(b *testing.B) {
		benchBursts(b, func() []byte { return base })
	})
	b.Run("distinct", func(b *testing.B) {
		benchBursts(b, func() []byte {
			return bytes.Replace(base, []byte(`"app":"ledger"`), fmt.Appendf(nil, `"app":"ledger-%d"`, seq.Add(1)), 1)
		})
	})
}

func benchBursts(b *testing.B, body func() []byte) {
	const concurrency = 50
	ts := startServer(b, serverOpts{})
	one := func(body []byte) (time.Duration, error) {
		req, err := http.NewRequest(http.MethodPost, ts.url+PathMutate, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := ts.client.Do(req)
		if err != nil {
			return 0, err
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"patch"`))) {
			err = fmt.Errorf("status %d: %.200s", resp.StatusCode, out)
		}
		return d, err
	}
	burst := func(lat []time.Duration) {
		bodies := make([][]byte, len(lat))
		for i := range bodies {
			bodies[i] = body()
		}
		var wg sync.WaitGroup
		for i := range lat {
			wg.Go(func() {
				d, err := one(bodies[i])
				if err != nil {
					b.Error(err)
				}
				lat[i] = d
			})
		}
		wg.Wait()
	}
	// Warm up: open the connections.
	for range 3 {
		burst(make([]time.Duration, concurrency))
	}
	var all []time.Duration
	b.ResetTimer()
	for b.Loop() {
		lat := make([]time.Duration, concurrency)
		burst(lat)
		all = append(all, lat...)
	}
	b.StopTimer()
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "reviews/s")
}
