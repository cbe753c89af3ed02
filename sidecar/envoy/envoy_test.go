package envoy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/internal/audit"
	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/internal/envoyadmin"
	"github.com/triage-sh/triage/internal/envoyexplain"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/envoy"
	"github.com/triage-sh/triage/sidecar/envoy/envoytest"
	"github.com/triage-sh/triage/sidecar/explain"
	"github.com/triage-sh/triage/sidecar/sidecartest"
)

// workerPath is the Envoy worker the sidecars under test start: the real
// cmd/triage-envoy, built once.
var workerPath string

func TestMain(m *testing.M) {
	workerPath = envoytest.Worker(mainTB{})
	goleak.VerifyTestMain(m)
}

// mainTB reports a failed worker build from TestMain.
type mainTB struct{}

func (mainTB) Helper() {}
func (mainTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newFake starts a fake Envoy admin on loopback, or skips without fixtures.
func newFake(t *testing.T) (*envoytest.Fake, string) {
	t.Helper()
	if ok, why := envoytest.Available(); !ok {
		t.Skip(why)
	}
	f, err := envoytest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, f.ServeTCP()
}

// syncBuffer is a goroutine-safe audit sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.Record
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// sidecarHarness is a real sidecar (development-mode mTLS on loopback) with
// the envoy capability, and clients for three roles: the development
// client certificate is the operator; bearer tokens stand for a viewer and
// a capturer.
type sidecarHarness struct {
	addr, dev                  string
	operator, viewer, capturer *client.Client
	audit                      *syncBuffer
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSidecar starts the sidecar with the envoy capability configured by
// o (and the explain capability when withExplain).
func startSidecar(t *testing.T, o envoy.Options, withExplain bool) *sidecarHarness {
	t.Helper()
	dir := t.TempDir()
	h := &sidecarHarness{dev: filepath.Join(dir, "dev"), audit: &syncBuffer{}}
	tokens, policy := filepath.Join(dir, "tokens"), filepath.Join(dir, "policy.yaml")
	var lines strings.Builder
	tokFiles := map[string]string{}
	for _, id := range []string{"viewer", "capturer"} {
		tok := "token-of-" + id
		sum := sha256.Sum256([]byte(tok))
		lines.WriteString("sha256:" + hex.EncodeToString(sum[:]) + " " + id + "\n")
		tokFiles[id] = filepath.Join(dir, id+".token")
		write(t, tokFiles[id], tok+"\n")
	}
	write(t, tokens, lines.String())
	write(t, policy, `bindings:
  - identities: ["`+auth.DevClientIdentity+`"]
    roles: [operator]
  - identities: ["viewer"]
    roles: [viewer]
  - identities: ["capturer"]
    roles: [capturer]
`)
	so := sidecar.DefaultOptions()
	so.Dev, so.Addr, so.ReloadInterval = h.dev, "127.0.0.1:0", 0
	so.PolicyFile, so.TokensFile = policy, tokens
	caps := []capability.Capability{{
		Name:     "envoy",
		Register: func(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) { return envoy.Register(s, d, o) },
	}}
	if withExplain {
		caps = append([]capability.Capability{explain.Capability()}, caps...)
	}
	srv := sidecartest.Serve(t, sidecar.Config{Options: so, Capabilities: caps, Logger: slog.New(slog.DiscardHandler), AuditWriter: h.audit})
	h.addr = srv.Addrs()[0].String()
	dialAs := func(tokenFile string) *client.Client {
		c, err := client.Dial(context.Background(), client.Options{Addr: h.addr, Dev: h.dev, TokenFile: tokenFile, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	h.operator, h.viewer, h.capturer = dialAs(""), dialAs(tokFiles["viewer"]), dialAs(tokFiles["capturer"])
	return h
}

func options(url string) envoy.Options {
	o := envoy.DefaultOptions()
	o.AdminURL = url
	o.WorkerPath = workerPath
	return o
}

// wantCode checks err's gRPC code and that its message contains each of subs.
func wantCode(t *testing.T, what string, err error, code codes.Code, subs ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: %v, want %v", what, err, code)
		return
	}
	for _, s := range subs {
		if !strings.Contains(status.Convert(err).Message(), s) {
			t.Errorf("%s: message %q does not contain %q", what, status.Convert(err).Message(), s)
		}
	}
}

// TestExplainCountsPerFixture: for every config dump fixture the sidecar's
// counts are envoyexplain's for the same dump (v2alpha dumps are refused as
// unsupported, not misread), over TCP and over a Unix socket.
func TestExplainCountsPerFixture(t *testing.T) {
	f, url := newFake(t)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	unixURL, err := f.ServeUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	for transport, u := range map[string]string{"tcp": url, "unix": unixURL} {
		t.Run(transport, func(t *testing.T) {
			h := startSidecar(t, options(u), false)
			ctx := testCtx(t)
			for _, name := range envoytest.ConfigDumps() {
				t.Run(name, func(t *testing.T) {
					if err := f.SetDump(name); err != nil {
						t.Fatal(err)
					}
					raw, _ := envoytest.Read(name)
					resp, err := h.viewer.EnvoyExplain(ctx)
					d, derr := envoyadmin.Decode(raw)
					if derr != nil {
						if envoyadmin.KindOf(derr) != envoyadmin.KindUnsupported {
							t.Fatalf("decode %s: %v", name, derr)
						}
						wantCode(t, "explain of a v2alpha dump", err, codes.FailedPrecondition, "pre-v3", u)
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					want := envoyexplain.Explain(envoyexplain.FromConfigDump(d)).Counts
					c := resp.GetCounts()
					got := envoyexplain.Counts{
						Listeners: int(c.GetListeners()), RouteConfigs: int(c.GetRouteConfigs()), VirtualHosts: int(c.GetVirtualHosts()),
						Routes: int(c.GetRoutes()), Clusters: int(c.GetClusters()), Endpoints: int(c.GetEndpoints()),
						HealthyEndpoints: int(c.GetHealthyEndpoints()), Secrets: int(c.GetSecrets()),
					}
					if got != want {
						t.Errorf("counts\n got %+v\nwant %+v", got, want)
					}
					if len(resp.GetListeners()) < want.Listeners || len(resp.GetClusters()) < want.Clusters {
						t.Errorf("the tree has %d listeners and %d clusters, the counts say %d and %d", len(resp.GetListeners()), len(resp.GetClusters()), want.Listeners, want.Clusters)
					}
					if resp.GetAdminUrl() != u || resp.GetTime() == nil {
						t.Errorf("admin_url %q time %v", resp.GetAdminUrl(), resp.GetTime())
					}
					// The contract: every count is in the JSON, zeros included.
					b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
					var doc struct {
						Counts   map[string]json.Number `json:"counts"`
						Findings []map[string]any       `json:"findings"`
					}
					if err := json.Unmarshal(b, &doc); err != nil {
						t.Fatal(err)
					}
					for _, k := range []string{"listeners", "route_configs", "virtual_hosts", "routes", "clusters", "endpoints", "healthy_endpoints"} {
						if _, ok := doc.Counts[k]; !ok {
							t.Errorf("counts.%s missing from JSON %s", k, b[:min(len(b), 300)])
						}
					}
				})
			}
		})
	}
}

// TestTriageExplainHasEnvoyFindings: with an Envoy configured, its findings
// join triage explain's, as EnvoyService.Explain gives them.
func TestTriageExplainHasEnvoyFindings(t *testing.T) {
	_, url := newFake(t)
	h := startSidecar(t, options(url), true)
	ctx := testCtx(t)
	ex, err := h.viewer.Explain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ee, err := h.viewer.EnvoyExplain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ee.GetFindings()) == 0 {
		t.Fatal("the default fixture has no Envoy findings (its unknown Istio filters are one)")
	}
	have := map[string]bool{}
	for _, f := range ex.GetFindings() {
		have[f.GetCode()+" "+f.GetMessage()] = true
	}
	for _, f := range ee.GetFindings() {
		if !strings.HasPrefix(f.GetCode(), "envoy-") {
			t.Errorf("finding code %q lacks the envoy- prefix", f.GetCode())
		}
		if !have[f.GetCode()+" "+f.GetMessage()] {
			t.Errorf("envoy finding %s (%s) is not in triage explain", f.GetCode(), f.GetMessage())
		}
	}
	var on bool
	for _, c := range ex.GetCapabilities() {
		on = on || (c.GetName() == "envoy" && c.GetEnabled())
	}
	if !on {
		t.Errorf("explain does not list the envoy capability as on: %v", ex.GetCapabilities())
	}
}

// TestEnvoyDown: an Envoy that does not answer is Unavailable naming the
// URL, a finding in triage explain (which still answers), and the sidecar
// keeps serving. A slow one is DeadlineExceeded.
func TestEnvoyDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	o := options(url)
	o.ExplainTimeout = 2 * time.Second
	h := startSidecar(t, o, true)
	ctx := testCtx(t)
	_, err = h.viewer.EnvoyExplain(ctx)
	wantCode(t, "explain with Envoy down", err, codes.Unavailable, url, "--envoy-admin")
	_, err = h.viewer.EnvoyClusters(ctx, "")
	wantCode(t, "clusters with Envoy down", err, codes.Unavailable, url)
	ex, err := h.viewer.Explain(ctx)
	if err != nil {
		t.Fatalf("triage explain with Envoy down: %v", err)
	}
	var found bool
	for _, f := range ex.GetFindings() {
		if f.GetCode() == "envoy-unreachable" && strings.Contains(f.GetMessage(), url) {
			found = true
		}
	}
	if !found {
		t.Errorf("no envoy-unreachable finding naming %s: %v", url, ex.GetFindings())
	}
	if _, err := h.viewer.Version(ctx); err != nil {
		t.Errorf("the sidecar stopped serving: %v", err)
	}

	// Slow: the admin answers nothing until the request is cancelled.
	f, slowURL := newFake(t)
	f.SetSlow(true)
	o = options(slowURL)
	o.Timeout, o.ExplainTimeout = 300*time.Millisecond, 300*time.Millisecond
	h = startSidecar(t, o, true)
	_, err = h.viewer.EnvoyExplain(ctx)
	wantCode(t, "explain with Envoy slow", err, codes.DeadlineExceeded, slowURL, "--envoy-timeout")
	start := time.Now()
	if _, err := h.viewer.Explain(ctx); err != nil {
		t.Errorf("triage explain with Envoy slow: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("triage explain waited %s for a slow Envoy", d)
	}
}

// TestOversizedResponse: a config dump over --envoy-max-response-bytes is
// ResourceExhausted naming the flag.
func TestOversizedResponse(t *testing.T) {
	_, url := newFake(t)
	o := options(url)
	o.MaxResponseBytes = 4096
	h := startSidecar(t, o, false)
	_, err := h.viewer.EnvoyExplain(testCtx(t))
	wantCode(t, "oversized dump", err, codes.ResourceExhausted, "--envoy-max-response-bytes", url)
}

// TestRoles: a viewer reads but may not mutate (and Envoy sees nothing);
// an operator mutates, Envoy sees the POST, and the audit log has both.
func TestRoles(t *testing.T) {
	f, url := newFake(t)
	h := startSidecar(t, options(url), false)
	ctx := testCtx(t)
	if _, err := h.viewer.EnvoyClusters(ctx, ""); err != nil {
		t.Errorf("viewer clusters: %v", err)
	}
	if ls, err := h.viewer.EnvoyLogLevels(ctx); err != nil || len(ls) == 0 {
		t.Errorf("viewer log levels: %v %v", ls, err)
	}
	_, err := h.viewer.EnvoySetLogLevel(ctx, "debug", "")
	wantCode(t, "viewer SetLogLevel", err, codes.PermissionDenied, "operator")
	wantCode(t, "viewer SetHealthCheck", h.viewer.EnvoySetHealthCheck(ctx, triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_FAIL), codes.PermissionDenied)
	wantCode(t, "viewer ResetCounters", h.viewer.EnvoyResetCounters(ctx), codes.PermissionDenied)
	wantCode(t, "capturer SetHealthCheck", h.capturer.EnvoySetHealthCheck(ctx, triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_FAIL), codes.PermissionDenied)
	if n := f.Hits("POST"); n != 1 { // the viewer's GetLogLevels is POST /logging with no arguments
		t.Errorf("Envoy saw %d POSTs after denied mutations, want only GetLogLevels': %v", n, f.Requests())
	}

	ls, err := h.operator.EnvoySetLogLevel(ctx, "debug", "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Hits("POST /logging?level=debug") != 1 || f.Level() != "debug" || len(ls) == 0 || ls[0].GetLevel() != "debug" {
		t.Errorf("operator SetLogLevel: loggers %v, Envoy saw %v", ls, f.Requests())
	}
	if _, err := h.operator.EnvoySetLogLevel(ctx, "trace", "router"); err != nil || f.Hits("POST /logging?router=trace") != 1 {
		t.Errorf("operator SetLogLevel one logger: %v, Envoy saw %v", err, f.Requests())
	}
	_, err = h.operator.EnvoySetLogLevel(ctx, "loud", "")
	wantCode(t, "bad level", err, codes.InvalidArgument, "loud")
	if err := h.operator.EnvoySetHealthCheck(ctx, triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_FAIL); err != nil || f.HealthOK() {
		t.Errorf("operator health check fail: %v, health ok %v", err, f.HealthOK())
	}
	if err := h.operator.EnvoySetHealthCheck(ctx, triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_OK); err != nil || !f.HealthOK() {
		t.Errorf("operator health check ok: %v, health ok %v", err, f.HealthOK())
	}
	wantCode(t, "health check without action", h.operator.EnvoySetHealthCheck(ctx, triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_UNSPECIFIED), codes.InvalidArgument)
	if err := h.operator.EnvoyResetCounters(ctx); err != nil || f.Hits("POST /reset_counters") != 1 {
		t.Errorf("operator reset counters: %v, Envoy saw %v", err, f.Requests())
	}

	// Every call is audited, denials included, with the identity and the arguments.
	var denied, allowed int
	for _, r := range h.audit.records(t) {
		if r.Method != "/triage.v1.EnvoyService/SetHealthCheck" {
			continue
		}
		switch {
		case r.Code == "PermissionDenied" && (r.Identity == "viewer" || r.Identity == "capturer") && r.Permission == "operate":
			denied++
		case r.Code == "OK" && r.Identity == auth.DevClientIdentity && strings.Contains(r.Args, "ENVOY_HEALTH_CHECK_"):
			allowed++
		}
	}
	if denied != 2 || allowed != 2 {
		t.Errorf("audit: %d denied and %d allowed SetHealthCheck records, want 2 and 2", denied, allowed)
	}
}

// TestDangerousEndpoints: quit, runtime_modify and drain_listeners are
// never forwarded unless a flag turns each on.
func TestDangerousEndpoints(t *testing.T) {
	f, url := newFake(t)
	h := startSidecar(t, options(url), false)
	ctx := testCtx(t)
	wantCode(t, "quit", h.operator.EnvoyQuit(ctx), codes.FailedPrecondition, "--envoy-allow-quit")
	wantCode(t, "runtime modify", h.operator.EnvoyModifyRuntime(ctx, map[string]string{"k": "v"}), codes.FailedPrecondition, "--envoy-allow-runtime-modify")
	wantCode(t, "drain", h.operator.EnvoyDrainListeners(ctx, &triagev1.DrainListenersRequest{}), codes.FailedPrecondition, "--envoy-allow-drain-listeners")
	wantCode(t, "viewer quit", h.viewer.EnvoyQuit(ctx), codes.PermissionDenied)
	for _, p := range []string{"POST /quitquitquit", "POST /runtime_modify", "POST /drain_listeners"} {
		if n := f.Hits(p); n != 0 {
			t.Errorf("%s forwarded %d times with its flag off", p, n)
		}
	}

	o := options(url)
	o.AllowQuit, o.AllowRuntimeModify, o.AllowDrainListeners = true, true, true
	h = startSidecar(t, o, false)
	if err := h.operator.EnvoyQuit(ctx); err != nil || f.Hits("POST /quitquitquit") != 1 {
		t.Errorf("quit with --envoy-allow-quit: %v, Envoy saw %v", err, f.Requests())
	}
	if err := h.operator.EnvoyModifyRuntime(ctx, map[string]string{"k": "v"}); err != nil || f.Hits("POST /runtime_modify?k=v") != 1 {
		t.Errorf("runtime modify: %v, Envoy saw %v", err, f.Requests())
	}
	if err := h.operator.EnvoyDrainListeners(ctx, &triagev1.DrainListenersRequest{InboundOnly: true}); err != nil || f.Hits("POST /drain_listeners?inboundonly=") != 1 {
		t.Errorf("drain: %v, Envoy saw %v", err, f.Requests())
	}
	wantCode(t, "viewer quit with the flag on", h.viewer.EnvoyQuit(ctx), codes.PermissionDenied)
}

// secretDump is the Istio SDS fixture with real key material where Envoy
// printed "[redacted]", and the strings that must not leave the sidecar.
func secretDump(t *testing.T) (dump []byte, needles []string) {
	t.Helper()
	raw, err := envoytest.Read("istio-secrets_config_dump.json")
	if err != nil {
		t.Skipf("fixture: %v", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	key := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	b64 := base64.StdEncoding.EncodeToString([]byte(key))
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	sds := doc["configs"].([]any)[0].(map[string]any)
	def := sds["dynamic_active_secrets"].([]any)[0].(map[string]any)
	tc := def["secret"].(map[string]any)["tls_certificate"].(map[string]any)
	tc["private_key"] = map[string]any{"inline_bytes": b64}
	tc["password"] = map[string]any{"inline_string": "hunter2-key-password"}
	dump, err = json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Split(key, "\n")[1]
	return dump, []string{"PRIVATE KEY", body[:40], b64[:40], "hunter2-key-password", base64.StdEncoding.EncodeToString([]byte("hunter2-key-password"))}
}

// TestNoKeyMaterial: whatever the dump holds, no RPC output carries a
// private key or a key password.
func TestNoKeyMaterial(t *testing.T) {
	f, url := newFake(t)
	dump, needles := secretDump(t)
	f.SetDumpBytes(dump)
	h := startSidecar(t, options(url), true)
	ctx := testCtx(t)
	var out bytes.Buffer
	add := func(what string, m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, _ := protojson.Marshal(m)
		out.Write(b)
		pb, _ := proto.Marshal(m)
		out.Write(pb)
	}
	ee, err := h.viewer.EnvoyExplain(ctx)
	add("explain", ee, err)
	if len(ee.GetSecrets()) == 0 || len(ee.GetCertificates()) == 0 {
		t.Errorf("the secrets fixture explains no secrets (%d) or certificates (%d)", len(ee.GetSecrets()), len(ee.GetCertificates()))
	}
	ex, err := h.operator.Explain(ctx)
	add("triage explain", ex, err)
	cl, err := h.viewer.EnvoyClusters(ctx, "")
	add("clusters", cl, err)
	ce, err := h.viewer.EnvoyCertificates(ctx)
	add("certificates", ce, err)
	si, err := h.viewer.EnvoyServerInfo(ctx)
	add("server info", si, err)
	var raw bytes.Buffer
	a, err := h.viewer.EnvoyConfigDump(ctx, &triagev1.GetConfigDumpRequest{IncludeEds: true}, &raw)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw.Bytes()) || a.Trailer.GetCounters()["redacted"] == 0 {
		t.Errorf("config dump: valid JSON %v, redacted %d", json.Valid(raw.Bytes()), a.Trailer.GetCounters()["redacted"])
	}
	if !bytes.Contains(raw.Bytes(), []byte("[redacted]")) && !bytes.Contains(raw.Bytes(), []byte("W3JlZGFjdGVkXQ==")) {
		t.Error("config dump shows no [redacted] value")
	}
	out.Write(raw.Bytes())
	for _, n := range needles {
		if bytes.Contains(out.Bytes(), []byte(n)) {
			t.Errorf("secret material %q left the sidecar", n)
		}
	}
}

// TestMatchRoute: "where does this request go?" through the sidecar.
func TestMatchRoute(t *testing.T) {
	f, url := newFake(t)
	if err := f.SetDump("istio-gateway-routes_config_dump.json"); err != nil {
		t.Fatal(err)
	}
	h := startSidecar(t, options(url), false)
	ctx := testCtx(t)
	resp, err := h.viewer.EnvoyMatchRoute(ctx, &triagev1.MatchRouteRequest{Host: "httpbin.example.com", Path: "/get/x", Headers: map[string]string{"x-user": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetMatched() || len(resp.GetCandidates()) == 0 {
		t.Fatalf("no match: %v", resp)
	}
	best := resp.GetCandidates()[0]
	if best.GetRouteConfig() != "http.8080" || best.GetRoute().GetCluster() != "outbound|8000||httpbin.default.svc.cluster.local" ||
		len(best.GetClusters()) != 1 || best.GetClusters()[0].GetName() != best.GetRoute().GetCluster() {
		t.Errorf("best match: %v", best)
	}
	resp, err = h.viewer.EnvoyMatchRoute(ctx, &triagev1.MatchRouteRequest{Host: "nobody.example.com", Path: "/"})
	if err != nil || resp.GetMatched() {
		t.Errorf("unknown host matched: %v %v", resp, err)
	}
	_, err = h.viewer.EnvoyMatchRoute(ctx, &triagev1.MatchRouteRequest{Path: "/"})
	wantCode(t, "no host", err, codes.InvalidArgument, "host")
}

// TestReads: clusters, listeners, routes, certificates, stats and server
// info through the sidecar.
func TestReads(t *testing.T) {
	_, url := newFake(t)
	o := options(url)
	o.MaxStats = 5
	h := startSidecar(t, o, false)
	ctx := testCtx(t)
	cl, err := h.viewer.EnvoyClusters(ctx, `^outbound\|9080\|`)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.GetClusters()) == 0 {
		t.Error("no cluster matches ^outbound|9080|")
	}
	for _, c := range cl.GetClusters() {
		if !strings.HasPrefix(c.GetName(), "outbound|9080|") {
			t.Errorf("cluster %s does not match the regex", c.GetName())
		}
	}
	_, err = h.viewer.EnvoyClusters(ctx, "(")
	wantCode(t, "bad cluster regex", err, codes.InvalidArgument)
	ls, err := h.viewer.EnvoyListeners(ctx)
	if err != nil || len(ls.GetListeners()) != 18 {
		t.Errorf("listeners: %d, %v; want 18", len(ls.GetListeners()), err)
	}
	rc, err := h.viewer.EnvoyRouteConfigs(ctx)
	if err != nil || len(rc.GetRouteConfigs()) != 14 {
		t.Errorf("route configs: %d, %v; want 14", len(rc.GetRouteConfigs()), err)
	}
	ce, err := h.viewer.EnvoyCertificates(ctx)
	if err != nil || len(ce.GetCertificates()) == 0 || ce.GetCertificates()[0].GetNotAfter() == nil {
		t.Errorf("certificates: %v, %v", ce, err)
	}
	st, err := h.viewer.EnvoyStats(ctx, &triagev1.GetStatsRequest{Filter: `^cluster\.`})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetStats()) != 5 || !st.GetTruncated() || st.GetTotal() <= 5 {
		t.Errorf("stats capped at --envoy-max-stats=5: %d stats, truncated %v, total %d", len(st.GetStats()), st.GetTruncated(), st.GetTotal())
	}
	for _, s := range st.GetStats() {
		if !strings.HasPrefix(s.GetName(), "cluster.") {
			t.Errorf("stat %s does not match the filter", s.GetName())
		}
	}
	sj, err := h.viewer.EnvoyStats(ctx, &triagev1.GetStatsRequest{Format: triagev1.EnvoyStatsFormat_ENVOY_STATS_FORMAT_JSON, MaxStats: 2})
	if err != nil || len(sj.GetStats()) == 0 || len(sj.GetStats()) > 2 {
		t.Errorf("json stats: %v %v", sj, err)
	}
	_, err = h.viewer.EnvoyStats(ctx, &triagev1.GetStatsRequest{Filter: "("})
	wantCode(t, "bad stats filter", err, codes.InvalidArgument)
	si, err := h.viewer.EnvoyServerInfo(ctx)
	if err != nil || si.GetVersion() == "" || si.GetState() == "" || !si.GetReady() || si.GetMemoryAllocatedBytes() == 0 {
		t.Errorf("server info: %v %v", si, err)
	}
	var dump bytes.Buffer
	_, err = h.viewer.EnvoyConfigDump(ctx, &triagev1.GetConfigDumpRequest{Resource: "no_such_field"}, &dump)
	wantCode(t, "unknown resource", err, codes.NotFound, "no_such_field")
	a, err := h.viewer.EnvoyConfigDump(ctx, &triagev1.GetConfigDumpRequest{}, &dump)
	if err != nil || a.Header.GetMediaType() != "application/json" || !json.Valid(dump.Bytes()) || a.Trailer.GetCounters()["unknown_types"] == 0 {
		t.Errorf("config dump: %v %v, %d bytes", a, err, dump.Len())
	}
}

// TestTap: the tap streams traces until its duration, stops at its byte
// limit, runs one at a time, and needs the capturer role.
func TestTap(t *testing.T) {
	_, url := newFake(t)
	o := options(url)
	o.TapMaxDuration = 2 * time.Second
	h := startSidecar(t, o, false)
	ctx := testCtx(t)
	var out bytes.Buffer
	a, err := h.capturer.EnvoyTap(ctx, &triagev1.TapRequest{ConfigId: "tap-1", Duration: durationpb.New(300 * time.Millisecond)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	tr := a.Trailer
	if tr.GetStopReason() != "duration" || tr.GetCounters()["traces"] == 0 || a.Header.GetMediaType() != "application/x-ndjson" {
		t.Errorf("tap: header %v trailer %v", a.Header, tr)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if uint64(len(lines)) != tr.GetCounters()["traces"] {
		t.Errorf("%d lines, %d traces", len(lines), tr.GetCounters()["traces"])
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("tap line is not JSON: %q", l)
		}
	}

	out.Reset()
	a, err = h.capturer.EnvoyTap(ctx, &triagev1.TapRequest{ConfigId: "tap-1", MaxBytes: 1024, Duration: durationpb.New(time.Hour)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if a.Trailer.GetStopReason() != "bytes" || !a.Trailer.GetTruncated() || out.Len() > 1024 || len(a.Trailer.GetNotes()) == 0 {
		t.Errorf("tap capped at 1024 bytes: %d bytes, trailer %v", out.Len(), a.Trailer)
	}

	_, err = h.capturer.EnvoyTap(ctx, &triagev1.TapRequest{ConfigId: "nope"}, &out)
	wantCode(t, "unknown config id", err, codes.FailedPrecondition, "Unknown config id")
	_, err = h.capturer.EnvoyTap(ctx, &triagev1.TapRequest{}, &out)
	wantCode(t, "no config id", err, codes.InvalidArgument, "config_id")
	_, err = h.capturer.EnvoyTap(ctx, &triagev1.TapRequest{ConfigId: "tap-1", TapConfigJson: `{"nonsense": 1}`}, &out)
	wantCode(t, "bad tap config", err, codes.InvalidArgument, "TapConfig")
	_, err = h.viewer.EnvoyTap(ctx, &triagev1.TapRequest{ConfigId: "tap-1"}, &out)
	wantCode(t, "viewer tap", err, codes.PermissionDenied, "capturer")

	// One tap at a time: a second one while the first runs is ResourceExhausted.
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := h.capturer.EnvoyTap(ctx, &triagev1.TapRequest{ConfigId: "tap-1", Duration: durationpb.New(time.Second)}, discard{},
			client.OnHeader(func(*triagev1.ArtifactHeader) error { close(started); return nil }))
		done <- err
	}()
	<-started
	_, err = h.operator.EnvoyTap(ctx, &triagev1.TapRequest{ConfigId: "tap-1"}, &out)
	wantCode(t, "second tap", err, codes.ResourceExhausted, "capturer", "--envoy-tap-max-concurrent")
	if err := <-done; err != nil {
		t.Errorf("first tap: %v", err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestCapabilityOff: without --envoy-admin the capability is off, saying
// how to turn it on; a remote admin is refused unless allowed.
func TestCapabilityOff(t *testing.T) {
	_, err := envoy.Register(grpc.NewServer(), capability.Deps{}, envoy.DefaultOptions())
	off, ok := capability.AsOff(err)
	if !ok || !strings.Contains(off.Fix, "--envoy-admin") {
		t.Errorf("no admin URL: %v, want off with a fix naming --envoy-admin", err)
	}
	_, err = envoy.Register(grpc.NewServer(), capability.Deps{}, options("http://10.1.2.3:15000"))
	if err == nil || !strings.Contains(err.Error(), "--envoy-allow-remote") {
		t.Errorf("remote admin: %v", err)
	}
	o := options("http://127.0.0.1:15000")
	o.TapMaxBytes = 1
	if _, err = envoy.Register(grpc.NewServer(), capability.Deps{}, o); err == nil || !strings.Contains(err.Error(), "--envoy-tap-max-bytes") {
		t.Errorf("bad limit: %v", err)
	}
}

// TestMethodPermissions: each EnvoyService method declares the permission
// the design gives it: reads view, mutations operate, the tap capture.
func TestMethodPermissions(t *testing.T) {
	want := map[string]triagev1.Permission{
		"Explain": triagev1.Permission_PERMISSION_VIEW, "GetConfigDump": triagev1.Permission_PERMISSION_VIEW,
		"ListClusters": triagev1.Permission_PERMISSION_VIEW, "ListListeners": triagev1.Permission_PERMISSION_VIEW,
		"ListRouteConfigs": triagev1.Permission_PERMISSION_VIEW, "GetCertificates": triagev1.Permission_PERMISSION_VIEW,
		"GetStats": triagev1.Permission_PERMISSION_VIEW, "GetServerInfo": triagev1.Permission_PERMISSION_VIEW,
		"MatchRoute": triagev1.Permission_PERMISSION_VIEW, "GetLogLevels": triagev1.Permission_PERMISSION_VIEW,
		"SetLogLevel": triagev1.Permission_PERMISSION_OPERATE, "SetHealthCheck": triagev1.Permission_PERMISSION_OPERATE,
		"ResetCounters": triagev1.Permission_PERMISSION_OPERATE, "Quit": triagev1.Permission_PERMISSION_OPERATE,
		"ModifyRuntime": triagev1.Permission_PERMISSION_OPERATE, "DrainListeners": triagev1.Permission_PERMISSION_OPERATE,
		"Tap": triagev1.Permission_PERMISSION_CAPTURE,
	}
	methods := triagev1.File_triage_v1_envoy_proto.Services().ByName("EnvoyService").Methods()
	if methods.Len() != len(want) {
		t.Errorf("EnvoyService has %d methods, this table %d", methods.Len(), len(want))
	}
	for i := range methods.Len() {
		m := methods.Get(i)
		got, _ := proto.GetExtension(m.Options(), triagev1.E_Permission).(triagev1.Permission)
		if w, ok := want[string(m.Name())]; !ok || got != w {
			t.Errorf("%s: permission %v, want %v", m.Name(), got, w)
		}
	}
}

// workers lists this process's children that run the Envoy worker.
func workers(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(triage-envoy") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == fmt.Sprint(os.Getpid()) && f[0] != "Z" {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			out = append(out, pid)
		}
	}
	return out
}

func waitWorkers(t *testing.T, n int) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := workers(t)
		if len(w) == n {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Envoy workers, want %d", len(w), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWorkerLifecycle: the Envoy worker process starts with the first
// Envoy call (a sidecar nobody asks about Envoy does not pay for its
// types), stops after --envoy-worker-idle, starts again when needed, and a
// worker that dies is replaced by the next call.
func TestWorkerLifecycle(t *testing.T) {
	_, url := newFake(t)
	o := options(url)
	o.WorkerIdle = 300 * time.Millisecond
	h := startSidecar(t, o, false)
	ctx := testCtx(t)
	if w := workers(t); len(w) != 0 {
		t.Fatalf("a worker runs before any Envoy call: %v", w)
	}
	if _, err := h.viewer.EnvoyClusters(ctx, ""); err != nil {
		t.Fatal(err)
	}
	first := waitWorkers(t, 1)
	waitWorkers(t, 0) // idle: stopped
	if _, err := h.viewer.EnvoyClusters(ctx, ""); err != nil {
		t.Fatalf("after the idle stop: %v", err)
	}
	second := waitWorkers(t, 1)
	if second[0] == first[0] {
		t.Errorf("the same worker pid %d after an idle stop", first[0])
	}
	if err := syscall.Kill(second[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitWorkers(t, 0)
	if _, err := h.viewer.EnvoyClusters(ctx, ""); err != nil {
		t.Fatalf("after the worker died: %v", err)
	}
	waitWorkers(t, 1)
}
