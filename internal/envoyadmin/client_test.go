package envoyadmin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeEnvoy behaves like Envoy's admin for the paths triage uses: methods,
// query parameters and content types as Envoy's, 404 for unknown paths and
// resources, and paths that are slow, truncated or answer garbage.
type fakeEnvoy struct {
	t    *testing.T
	mu   sync.Mutex
	hits map[string]int // "METHOD /path?query"
	// level is the log level POST /logging set.
	level   string
	release chan struct{} // closed at cleanup, unblocks slow handlers
}

func (f *fakeEnvoy) hit(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		k += "?" + r.URL.RawQuery
	}
	f.hits[k]++
}

func (f *fakeEnvoy) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.hits {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func newFakeEnvoy(t *testing.T) (*fakeEnvoy, http.Handler) {
	f := &fakeEnvoy{t: t, hits: map[string]int{}, level: "info", release: make(chan struct{})}
	t.Cleanup(func() { close(f.release) })
	serveFile := func(w http.ResponseWriter, name, ctype string) {
		b := fixture(t, name)
		w.Header().Set("Content-Type", ctype)
		w.Write(b)
	}
	post := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			http.Error(w, "This endpoint requires POST", http.StatusMethodNotAllowed)
			return false
		}
		return true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("resource") == "no_such_field":
			http.Error(w, "{\"error\": \"no_such_field not found in config dump\"}", http.StatusNotFound)
		case q.Get("resource") == "dynamic_active_secrets":
			serveFile(w, "istio-spire-secrets_config_dump.json", "application/json")
		case q.Has("include_eds"):
			serveFile(w, "istio-1.21-waypoint_config_dump_with_eds.json", "application/json")
		default:
			serveFile(w, "istio-1.10-sidecar-details-v1_config_dump_camelCase.json", "application/json")
		}
	})
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") != "json" {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, "outbound|9080||details.default.svc.cluster.local::default_priority::max_connections::4294967295")
			return
		}
		serveFile(w, "istio-sidecar_clusters_format_json_mixedcase.json", "application/json")
	})
	mux.HandleFunc("/listeners", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"listener_statuses":[{"name":"virtualInbound","local_address":{"socket_address":{"address":"0.0.0.0","port_value":15006}}}]}`)
	})
	mux.HandleFunc("/server_info", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, "envoy-1.15-front-proxy_server_info.json", "application/json")
	})
	mux.HandleFunc("/certs", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, "appmesh-envoy-spire-sds_certs.json", "application/json")
	})
	mux.HandleFunc("/memory", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"allocated":"5847736","heap_size":"8388608","pageheap_unmapped":"0","pageheap_free":"548864","total_thread_cache":"1145736","total_physical_bytes":"10485760"}`)
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "LIVE")
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"stats":%s}`, fixture(t, "envoy-docs-quickstart_stats_json_filtered_stats_array.json"))
			return
		}
		re := regexp.MustCompile(q.Get("filter"))
		w.Header().Set("Content-Type", "text/plain")
		sc := bufio.NewScanner(strings.NewReader(string(fixture(t, "datadog-envoy-legacy_stats_text_multiple_services.txt"))))
		for sc.Scan() {
			name, _, _ := strings.Cut(sc.Text(), ":")
			if re.MatchString(name) {
				fmt.Fprintln(w, sc.Text())
			}
		}
	})
	mux.HandleFunc("/logging", func(w http.ResponseWriter, r *http.Request) {
		if !post(w, r) {
			return
		}
		q := r.URL.Query()
		f.mu.Lock()
		if l := q.Get("level"); l != "" {
			f.level = l
		}
		lvl := f.level
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		out := strings.ReplaceAll(string(fixture(t, "consul-envoy_logging_levels.txt")), ": debug", ": "+lvl)
		if l := q.Get("router"); l != "" {
			out = strings.Replace(out, "router: "+lvl, "router: "+l, 1)
		}
		fmt.Fprint(w, out)
	})
	for _, p := range []string{"/healthcheck/fail", "/healthcheck/ok", "/reset_counters", "/quitquitquit", "/runtime_modify", "/drain_listeners"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			if post(w, r) {
				fmt.Fprintln(w, "OK")
			}
		})
	}
	mux.HandleFunc("/tap", func(w http.ResponseWriter, r *http.Request) {
		if !post(w, r) {
			return
		}
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), `"config_id":"tap-1"`) {
			http.Error(w, "Unknown config id 'nope'. No extension has registered with this id.", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fl := w.(http.Flusher)
		for i := 0; ; i++ {
			fmt.Fprintf(w, "{\"http_buffered_trace\":{\"request\":{\"headers\":[{\"key\":\":path\",\"value\":\"/%d\"}]}}}\n", i)
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-f.release:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("/slow/config_dump", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
	})
	mux.HandleFunc("/truncated/config_dump", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write([]byte(`{"configs": [`))
	})
	mux.HandleFunc("/garbage/config_dump", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html>this is not envoy</html>")
	})
	mux.HandleFunc("/garbage/clusters", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "not json")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "invalid path. admin commands are:", http.StatusNotFound)
	})
	return f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hit(r)
		mux.ServeHTTP(w, r)
	})
}

// startTCP serves h on loopback and returns a client for it.
func startTCP(t *testing.T, h http.Handler, opts Options) (*Client, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	c, err := New(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c, srv.URL
}

// startUnix serves h on a Unix socket and returns a client for it.
func startUnix(t *testing.T, h http.Handler, opts Options) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets unavailable: %v", err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	c, err := New("unix://"+sock, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-done
	})
	return c
}

func TestClientReads(t *testing.T) {
	fixturePath(t, "istio-1.10-sidecar-details-v1_config_dump_camelCase.json")
	for _, transport := range []string{"tcp", "unix"} {
		t.Run(transport, func(t *testing.T) {
			f, h := newFakeEnvoy(t)
			var c *Client
			if transport == "tcp" {
				c, _ = startTCP(t, h, Options{})
			} else {
				c = startUnix(t, h, Options{})
			}
			ctx := testCtx(t)

			d, err := c.ConfigDump(ctx, ConfigDumpOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Dump.GetConfigs()) != 6 || len(d.Unknown) != 12 {
				t.Errorf("config dump: %d configs, %d unknown; want 6, 12", len(d.Dump.GetConfigs()), len(d.Unknown))
			}
			d, err = c.ConfigDump(ctx, ConfigDumpOptions{IncludeEDS: true, Mask: "name", NameRegex: ".*"})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Dump.GetConfigs()) != 7 {
				t.Errorf("include_eds dump has %d configs, want 7", len(d.Dump.GetConfigs()))
			}
			if f.count("GET /config_dump?include_eds=&mask=name&name_regex=") != 1 {
				t.Errorf("query not passed: %v", f.hits)
			}
			_, err = c.ConfigDump(ctx, ConfigDumpOptions{Resource: "no_such_field"})
			if KindOf(err) != KindNotFound || !strings.Contains(err.Error(), "resource=no_such_field") {
				t.Errorf("unknown resource: %v (kind %v), want not-found naming the URL", err, KindOf(err))
			}

			cl, err := c.Clusters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(cl.GetClusterStatuses()); n != 7 {
				t.Errorf("clusters: %d, want 7", n)
			}
			hosts := 0
			for _, cs := range cl.GetClusterStatuses() {
				hosts += len(cs.GetHostStatuses()) // camelCase hostStatuses in the fixture
			}
			if hosts == 0 {
				t.Error("no host statuses decoded from the mixed-case clusters fixture")
			}

			ls, err := c.Listeners(ctx)
			if err != nil || len(ls.GetListenerStatuses()) != 1 {
				t.Errorf("listeners: %v %v", ls, err)
			}
			si, err := c.ServerInfo(ctx)
			if err != nil || si.GetState() != adminv3.ServerInfo_LIVE || si.GetCommandLineOptions().GetConcurrency() != 8 {
				t.Errorf("server_info: %v %v", si, err)
			}
			certs, err := c.Certs(ctx)
			if err != nil || len(certs.GetCertificates()) != 1 || certs.GetCertificates()[0].GetCertChain()[0].GetSerialNumber() != "52f3b82ebb99af2d826bc1c3ac3835ba" {
				t.Errorf("certs: %v %v", certs, err)
			}
			mem, err := c.Memory(ctx)
			if err != nil || mem.GetAllocated() != 5847736 {
				t.Errorf("memory: %v %v", mem, err)
			}
			rd, err := c.Ready(ctx)
			if err != nil || !rd.Ready || rd.State != "LIVE" {
				t.Errorf("ready: %+v %v", rd, err)
			}

			st, err := c.Stats(ctx, StatsOptions{Filter: `^cluster\.service1\.`})
			if err != nil {
				t.Fatal(err)
			}
			if len(st) == 0 {
				t.Fatal("no stats")
			}
			for _, s := range st {
				if !strings.HasPrefix(s.Name, "cluster.service1.") {
					t.Errorf("filter not applied: %s", s.Name)
				}
			}
			sj, err := c.StatsJSON(ctx, StatsOptions{})
			if err != nil || len(sj) != 4 || sj[3].Name != "http.ingress_http.rq_total" || sj[3].Value != 3 {
				t.Errorf("stats json: %+v %v", sj, err)
			}
			if _, err := c.Stats(ctx, StatsOptions{Filter: "("}); KindOf(err) != KindInvalidArgument {
				t.Errorf("bad filter: %v", err)
			}

			lg, err := c.Logging(ctx)
			if err != nil || len(lg) != 57 || lg[0].Name != "admin" {
				t.Fatalf("logging: %d loggers %v", len(lg), err)
			}
			lg, err = c.SetLogLevel(ctx, "warning", "")
			if err != nil || lg[0].Level != "warning" {
				t.Errorf("set level: %v %v", lg, err)
			}
			lg, err = c.SetLogLevel(ctx, "trace", "router")
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lg {
				if l.Name == "router" && l.Level != "trace" {
					t.Errorf("router level %s", l.Level)
				}
			}
			if f.count("POST /logging?router=trace") != 1 || f.count("POST /logging?level=warning") != 1 {
				t.Errorf("logging requests: %v", f.hits)
			}
			if _, err := c.SetLogLevel(ctx, "loud", ""); KindOf(err) != KindInvalidArgument {
				t.Errorf("bad level: %v", err)
			}
			if _, err := c.SetLogLevel(ctx, "info", "a&level=trace"); KindOf(err) != KindInvalidArgument {
				t.Errorf("bad logger: %v", err)
			}

			for _, fn := range []func(context.Context) error{c.HealthcheckFail, c.HealthcheckOk, c.ResetCounters} {
				if err := fn(ctx); err != nil {
					t.Error(err)
				}
			}
			if f.count("POST /healthcheck/fail") != 1 || f.count("POST /healthcheck/ok") != 1 || f.count("POST /reset_counters") != 1 {
				t.Errorf("mutations: %v", f.hits)
			}

			if err := c.getProto(ctx, "/nope", nil, &adminv3.Memory{}); KindOf(err) != KindNotFound {
				t.Errorf("unknown path: %v", err)
			}
		})
	}
}

func TestDangerousEndpoints(t *testing.T) {
	f, h := newFakeEnvoy(t)
	c, _ := startTCP(t, h, Options{})
	ctx := testCtx(t)
	for name, call := range map[string]func() error{
		"quit":    func() error { return c.Quit(ctx) },
		"runtime": func() error { return c.RuntimeModify(ctx, map[string]string{"k": "v"}) },
		"drain":   func() error { return c.DrainListeners(ctx, DrainOptions{Graceful: true}) },
	} {
		err := call()
		if KindOf(err) != KindDisabled || !strings.Contains(err.Error(), "Allow") {
			t.Errorf("%s: %v, want disabled naming its option", name, err)
		}
	}
	if n := f.count("POST /quitquitquit") + f.count("POST /runtime_modify") + f.count("POST /drain_listeners"); n != 0 {
		t.Fatalf("a disabled endpoint reached Envoy %d times", n)
	}
	c2, _ := startTCP(t, h, Options{AllowQuit: true, AllowRuntimeModify: true, AllowDrainListeners: true})
	if err := c2.Quit(ctx); err != nil {
		t.Error(err)
	}
	if err := c2.RuntimeModify(ctx, map[string]string{"k": "v"}); err != nil {
		t.Error(err)
	}
	if err := c2.DrainListeners(ctx, DrainOptions{InboundOnly: true}); err != nil {
		t.Error(err)
	}
	if f.count("POST /quitquitquit") != 1 || f.count("POST /runtime_modify?k=v") != 1 || f.count("POST /drain_listeners?inboundonly=") != 1 {
		t.Errorf("enabled endpoints: %v", f.hits)
	}
}

func TestClientFailures(t *testing.T) {
	_, h := newFakeEnvoy(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := testCtx(t)

	t.Run("timeout", func(t *testing.T) {
		c, err := New(srv.URL+"/slow", Options{Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_, err = c.ConfigDump(ctx, ConfigDumpOptions{})
		if KindOf(err) != KindTimeout || !strings.Contains(err.Error(), srv.URL+"/slow/config_dump") || !strings.Contains(err.Error(), "100ms") {
			t.Errorf("got %v (kind %v), want a timeout naming the URL and the timeout", err, KindOf(err))
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("timeout took %s", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("timeout does not wrap context.DeadlineExceeded: %v", err)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		c, _ := New(srv.URL+"/slow", Options{Timeout: time.Minute})
		defer c.Close()
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := c.ConfigDump(cctx, ConfigDumpOptions{}); KindOf(err) != KindTimeout {
			t.Errorf("got %v, want timeout", err)
		}
	})
	t.Run("size limit", func(t *testing.T) {
		c, _ := New(srv.URL, Options{MaxResponseBytes: 1000})
		defer c.Close()
		_, err := c.ConfigDump(ctx, ConfigDumpOptions{})
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindTooLarge || e.Limit != 1000 || !strings.Contains(err.Error(), "1000") {
			t.Errorf("got %v, want too-large naming the 1000-byte limit", err)
		}
		c2, _ := New(srv.URL, Options{MaxResponseBytes: 1 << 20})
		defer c2.Close()
		if _, err := c2.ConfigDump(ctx, ConfigDumpOptions{}); KindOf(err) != 0 || err != nil {
			t.Errorf("1 MiB limit: %v", err)
		}
		err = (&Client{max: 64 << 20}).tooLarge("GET", "u")
		if !strings.Contains(err.Error(), "64 MiB") {
			t.Errorf("message %q does not name 64 MiB", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		c, _ := New(srv.URL+"/truncated", Options{})
		defer c.Close()
		_, err := c.ConfigDump(ctx, ConfigDumpOptions{})
		if err == nil || !strings.Contains(err.Error(), "/truncated/config_dump") {
			t.Errorf("truncated: %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		c, _ := New(srv.URL+"/garbage", Options{})
		defer c.Close()
		if _, err := c.ConfigDump(ctx, ConfigDumpOptions{}); KindOf(err) != KindDecode || !strings.Contains(err.Error(), "/garbage/config_dump") {
			t.Errorf("garbage dump: %v", err)
		}
		if _, err := c.Clusters(ctx); KindOf(err) != KindDecode {
			t.Errorf("garbage clusters: %v", err)
		}
	})
	t.Run("down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, _ := New("http://"+addr, Options{})
		defer c.Close()
		_, err = c.ServerInfo(ctx)
		if KindOf(err) != KindUnavailable || !strings.Contains(err.Error(), "http://"+addr+"/server_info") || !strings.Contains(err.Error(), "refused") {
			t.Errorf("down: %v", err)
		}
		cu, _ := New("unix://"+filepath.Join(t.TempDir(), "none.sock"), Options{})
		defer cu.Close()
		if _, err := cu.Ready(ctx); KindOf(err) != KindUnavailable {
			t.Errorf("missing socket: %v", err)
		}
	})
}

func TestNewValidates(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1:15000", "http://example.com:9901", "ftp://127.0.0.1", "unix://", "http://", "::"} {
		if _, err := New(u, Options{}); KindOf(err) != KindInvalidArgument {
			t.Errorf("New(%q) = %v, want invalid argument", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:15000", "http://localhost:9901", "http://[::1]:15000", "unix:///var/run/envoy/admin.sock", "unix://rel/admin.sock"} {
		c, err := New(u, Options{})
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		c.Close()
	}
	c, err := New("http://10.0.0.1:15000", Options{AllowRemote: true})
	if err != nil {
		t.Error(err)
	} else {
		c.Close()
	}
}

func TestTap(t *testing.T) {
	_, h := newFakeEnvoy(t)
	c, _ := startTCP(t, h, Options{Timeout: 2 * time.Second})
	ctx := testCtx(t)
	if _, err := c.Tap(ctx, &adminv3.TapRequest{}); KindOf(err) != KindInvalidArgument {
		t.Errorf("no config id: %v", err)
	}
	if _, err := c.Tap(ctx, &adminv3.TapRequest{ConfigId: "nope"}); KindOf(err) != KindStatus || !strings.Contains(err.Error(), "Unknown config id") {
		t.Errorf("unknown config id: %v", err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := c.Tap(tctx, &adminv3.TapRequest{ConfigId: "tap-1"})
	if err != nil {
		t.Fatal(err)
	}
	// The stream outlives the client's timeout: read past it.
	var lines atomic.Int32
	sc := bufio.NewScanner(rc)
	deadline := time.Now().Add(2500 * time.Millisecond)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "http_buffered_trace") {
			t.Fatalf("line %q", sc.Text())
		}
		lines.Add(1)
		if time.Now().After(deadline) {
			break
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("stream ended early after %d traces: %v", lines.Load(), err)
	}
	rc.Close()
	if lines.Load() < 10 {
		t.Errorf("%d traces", lines.Load())
	}
}
