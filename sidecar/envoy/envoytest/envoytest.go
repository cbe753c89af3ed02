// Package envoytest is a fake Envoy admin for tests: an HTTP server that
// answers the paths triage uses the way Envoy's admin does (methods, query
// parameters, content types, 404 for unknown paths and resources), serving
// admin output recorded from real Envoys in FixtureDir, read in place.
package envoytest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// FixtureDir holds admin output recorded from real Envoys (see its
// PROVENANCE.md): ../shared/fixtures/envoy relative to the module root.
// Tests skip when it is absent.
var FixtureDir = fixtureDir()

func fixtureDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "shared", "fixtures", "envoy")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "fixtures", "envoy")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("..", "shared", "fixtures", "envoy")
		}
		dir = parent
	}
}

var (
	workerOnce sync.Once
	workerPath string
	workerErr  error
)

// Worker builds the Envoy worker (cmd/triage-envoy) once per test binary
// and returns its path, for envoy.Options.WorkerPath.
func Worker(tb interface {
	Helper()
	Fatalf(string, ...any)
}) string {
	tb.Helper()
	workerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "triage-envoy-worker")
		if err != nil {
			workerErr = err
			return
		}
		workerPath = filepath.Join(dir, "triage-envoy")
		out, err := exec.Command("go", "build", "-o", workerPath, "github.com/triage-sh/triage/cmd/triage-envoy").CombinedOutput()
		if err != nil {
			workerErr = fmt.Errorf("go build cmd/triage-envoy: %v\n%s", err, out)
		}
	})
	if workerErr != nil {
		tb.Fatalf("%v", workerErr)
	}
	return workerPath
}

// The fixtures served by default.
const (
	DefaultDump       = "istio-1.10-sidecar-details-v1_config_dump_camelCase.json"
	DefaultClusters   = "istio-sidecar_clusters_format_json_mixedcase.json"
	DefaultCerts      = "appmesh-envoy-spire-sds_certs.json"
	DefaultServerInfo = "envoy-1.15-front-proxy_server_info.json"
	DefaultStatsText  = "datadog-envoy-legacy_stats_text_multiple_services.txt"
	DefaultStatsJSON  = "envoy-docs-quickstart_stats_json_filtered_stats_array.json"
	DefaultLogging    = "consul-envoy_logging_levels.txt"
)

// Available reports whether the fixtures are here, and if not, why.
func Available() (bool, string) {
	if _, err := os.Stat(filepath.Join(FixtureDir, DefaultDump)); err != nil {
		return false, fmt.Sprintf("Envoy admin fixtures are not available (they live in %s): %v", FixtureDir, err)
	}
	return true, ""
}

// Read reads a fixture.
func Read(name string) ([]byte, error) { return os.ReadFile(filepath.Join(FixtureDir, name)) }

// ConfigDumps lists the config dump fixtures.
func ConfigDumps() []string {
	m, _ := filepath.Glob(filepath.Join(FixtureDir, "*config_dump*.json"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// Fake is a fake Envoy admin. Its zero value is not usable: use New.
type Fake struct {
	mu       sync.Mutex
	dump     []byte // served at /config_dump
	hits     []string
	level    string
	slow     bool
	healthOK bool
	release  chan struct{}
	servers  []func()
}

// New returns a fake serving DefaultDump and the other default fixtures.
func New() (*Fake, error) {
	b, err := Read(DefaultDump)
	if err != nil {
		return nil, err
	}
	return &Fake{dump: b, level: "info", healthOK: true, release: make(chan struct{})}, nil
}

// SetDump serves the named config dump fixture from now on.
func (f *Fake) SetDump(name string) error {
	b, err := Read(name)
	if err != nil {
		return err
	}
	f.SetDumpBytes(b)
	return nil
}

// SetDumpBytes serves b as the config dump from now on.
func (f *Fake) SetDumpBytes(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dump = b
}

// SetSlow makes every answer wait until the request is cancelled (or the
// fake closes).
func (f *Fake) SetSlow(slow bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slow = slow
}

// Hits counts the requests whose "METHOD /path?query" starts with prefix.
func (f *Fake) Hits(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.hits {
		if strings.HasPrefix(h, prefix) {
			n++
		}
	}
	return n
}

// Requests are every "METHOD /path?query" the fake answered, in order.
func (f *Fake) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.hits...)
}

// Level is the level the last POST /logging?level=L set.
func (f *Fake) Level() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.level
}

// HealthOK is false after POST /healthcheck/fail, until POST /healthcheck/ok.
func (f *Fake) HealthOK() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthOK
}

// ServeTCP serves on loopback and returns the admin URL.
func (f *Fake) ServeTCP() string {
	srv := httptest.NewServer(f.Handler())
	f.mu.Lock()
	f.servers = append(f.servers, srv.Close)
	f.mu.Unlock()
	return srv.URL
}

// ServeUnix serves on a Unix socket at path and returns the admin URL.
func (f *Fake) ServeUnix(path string) (string, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: f.Handler()}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	f.mu.Lock()
	f.servers = append(f.servers, func() { srv.Close(); <-done })
	f.mu.Unlock()
	return "unix://" + path, nil
}

// Close stops the servers and releases slow and streaming answers.
func (f *Fake) Close() {
	f.mu.Lock()
	servers := f.servers
	f.servers = nil
	select {
	case <-f.release:
	default:
		close(f.release)
	}
	f.mu.Unlock()
	for _, s := range servers {
		s()
	}
}

// Handler answers like Envoy's admin.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", f.configDump)
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") != "json" {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, "outbound|9080||details.default.svc.cluster.local::default_priority::max_connections::4294967295")
			return
		}
		serveFile(w, DefaultClusters, "application/json")
	})
	mux.HandleFunc("/listeners", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"listener_statuses":[{"name":"virtualInbound","local_address":{"socket_address":{"address":"0.0.0.0","port_value":15006}}}]}`)
	})
	mux.HandleFunc("/server_info", func(w http.ResponseWriter, r *http.Request) { serveFile(w, DefaultServerInfo, "application/json") })
	mux.HandleFunc("/certs", func(w http.ResponseWriter, r *http.Request) { serveFile(w, DefaultCerts, "application/json") })
	mux.HandleFunc("/memory", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"allocated":"5847736","heap_size":"8388608","pageheap_unmapped":"0","pageheap_free":"548864","total_thread_cache":"1145736","total_physical_bytes":"10485760"}`)
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "LIVE")
	})
	mux.HandleFunc("/stats", f.stats)
	mux.HandleFunc("/logging", f.logging)
	for _, p := range []string{"/healthcheck/fail", "/healthcheck/ok", "/reset_counters", "/quitquitquit", "/runtime_modify", "/drain_listeners"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			if !post(w, r) {
				return
			}
			f.mu.Lock()
			switch p {
			case "/healthcheck/fail":
				f.healthOK = false
			case "/healthcheck/ok":
				f.healthOK = true
			}
			f.mu.Unlock()
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, "OK")
		})
	}
	mux.HandleFunc("/tap", f.tap)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "invalid path. admin commands are:", http.StatusNotFound)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			k += "?" + r.URL.RawQuery
		}
		f.mu.Lock()
		f.hits = append(f.hits, k)
		slow := f.slow
		f.mu.Unlock()
		if slow {
			select {
			case <-r.Context().Done():
			case <-f.release:
			}
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func serveFile(w http.ResponseWriter, name, ctype string) {
	b, err := Read(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Write(b)
}

func post(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		http.Error(w, "This endpoint requires POST", http.StatusMethodNotAllowed)
		return false
	}
	return true
}

func (f *Fake) configDump(w http.ResponseWriter, r *http.Request) {
	if res := r.URL.Query().Get("resource"); res == "no_such_field" {
		http.Error(w, "{\"error\": \"no_such_field not found in config dump\"}", http.StatusNotFound)
		return
	}
	f.mu.Lock()
	b := f.dump
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (f *Fake) stats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	re, err := regexp.Compile(q.Get("filter"))
	if err != nil {
		http.Error(w, "Invalid regex: "+err.Error(), http.StatusBadRequest)
		return
	}
	if q.Get("format") == "json" {
		b, err := Read(DefaultStatsJSON)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"stats":%s}`, b)
		return
	}
	b, err := Read(DefaultStatsText)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), ":")
		if re.MatchString(name) {
			fmt.Fprintln(w, sc.Text())
		}
	}
}

func (f *Fake) logging(w http.ResponseWriter, r *http.Request) {
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
	b, err := Read(DefaultLogging)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out := strings.ReplaceAll(string(b), ": debug", ": "+lvl)
	for k, v := range q {
		if k != "level" && len(v) > 0 {
			out = strings.Replace(out, k+": "+lvl, k+": "+v[0], 1)
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, out)
}

// tap streams a pretty-printed JSON trace every 10ms until the request
// ends; config_id "nope" is unknown, as Envoy says it.
func (f *Fake) tap(w http.ResponseWriter, r *http.Request) {
	if !post(w, r) {
		return
	}
	b, _ := io.ReadAll(r.Body)
	if strings.Contains(string(b), `"config_id":"nope"`) {
		http.Error(w, "Unknown config id 'nope'. No extension has registered with this id.", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fl := w.(http.Flusher)
	for i := 0; ; i++ {
		fmt.Fprintf(w, "{\n  \"http_buffered_trace\": {\n    \"request\": {\"headers\": [{\"key\": \":path\", \"value\": \"/%d\"}]}\n  }\n}\n", i)
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-f.release:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
