package bench

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar"
)

func TestReplaceBetweenMarkers(t *testing.T) {
	const s, e = MarkerStart, MarkerEnd
	tests := []struct {
		name, doc, body, want string
		err                   error // ErrNoMarkers, or any error when errAny
		errAny                bool
	}{
		{name: "replaces", doc: "# T\n" + s + "\nold\n" + e + "\nafter\n", body: "new", want: "# T\n" + s + "\nnew\n" + e + "\nafter\n"},
		{name: "empty between", doc: s + e, body: "| a |\n", want: s + "\n| a |\n" + e},
		{name: "empty body", doc: s + "\nold\n" + e, body: "", want: s + "\n" + e},
		{name: "idempotent", doc: s + "\nnew\n" + e, body: "\n\nnew\n\n", want: s + "\nnew\n" + e},
		{name: "no markers", doc: "# T\n", body: "x", err: ErrNoMarkers},
		{name: "start only", doc: s + "\nold\n", body: "x", err: ErrNoMarkers},
		{name: "end only", doc: "old\n" + e, body: "x", err: ErrNoMarkers},
		{name: "reversed", doc: e + "\n" + s, body: "x", errAny: true},
		{name: "repeated", doc: s + e + s + e, body: "x", errAny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReplaceBetweenMarkers(tt.doc, tt.body)
			switch {
			case tt.err != nil || tt.errAny:
				if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case got != tt.want:
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"median of even is the lower", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
		{"q 1", ms(1, 2, 3), 1, 3 * time.Millisecond},
		{"q 0 is the min", ms(1, 2, 3), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.q); got != tt.want {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.q, got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    Memory
		wantErr bool
	}{
		{"both", "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n", Memory{RSS: 10 << 20, HWM: 20 << 20}, false},
		{"split", "VmHWM:\t 3 kB\nVmRSS:\t 3 kB\nRssAnon:\t 2 kB\nRssFile:\t 1 kB\nRssShmem:\t 0 kB\n", Memory{RSS: 3 << 10, HWM: 3 << 10, Anon: 2 << 10, File: 1 << 10}, false},
		{"missing RSS", "Name:\tx\nVmHWM:\t 1 kB\n", Memory{}, true},
		{"kernel thread", "Name:\tkthreadd\nThreads:\t1\n", Memory{}, true},
		{"bad unit", "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", Memory{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.status))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -1000: "-1,000", -100: "-100"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// startSidecar serves an in-process sidecar in development mode on
// loopback, audit records discarded, and returns connections to it with the
// development operator certificate, each already past its handshake.
func startSidecar(b *testing.B, conns int) []*grpc.ClientConn {
	b.Helper()
	dir := b.TempDir()
	opts := sidecar.DefaultOptions()
	opts.Dev, opts.Addr = dir, "127.0.0.1:0"
	srv, err := sidecar.New(sidecar.Config{Options: opts, AuditWriter: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })

	dev, err := auth.EnsureDev(dir) // reuses the files New made
	if err != nil {
		b.Fatal(err)
	}
	conf, err := auth.ClientTLS(dev.CA, dev.ClientCert, dev.ClientKey, "localhost")
	if err != nil {
		b.Fatal(err)
	}
	addr := srv.Addrs()[0].String()
	out := make([]*grpc.ClientConn, conns)
	for i := range out {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cc.Close() })
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
		out[i] = cc
	}
	return out
}

// benchParallel runs call from b.RunParallel's goroutines, each on a
// connection of its own. Allocations are the client's and the server's
// together (both are in this process).
func benchParallel(b *testing.B, call func(context.Context, *grpc.ClientConn) error) {
	const parallelism = 4 // goroutines per GOMAXPROCS
	b.SetParallelism(parallelism)
	conns := startSidecar(b, parallelism*runtime.GOMAXPROCS(0))
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cc := conns[int(next.Add(1)-1)%len(conns)]
		for pb.Next() {
			if err := call(context.Background(), cc); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkExplain(b *testing.B) {
	benchParallel(b, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := triagev1.NewExplainServiceClient(cc).Explain(ctx, &triagev1.ExplainRequest{})
		return err
	})
}

func BenchmarkHealth(b *testing.B) {
	benchParallel(b, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	})
}

func TestRewriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, []byte("a <!-- bench:start -->old<!-- bench:end --> b"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := RewriteFile(path, func(doc string) (string, error) { return ReplaceBetweenMarkers(doc, "new") }); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "new") || strings.Contains(string(b), "old") {
		t.Fatalf("rewritten: %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640 kept", st.Mode().Perm())
	}
	if err := RewriteFile(filepath.Join(t.TempDir(), "missing"), func(s string) (string, error) { return s, nil }); err == nil {
		t.Fatal("a missing file must be an error")
	}
}
