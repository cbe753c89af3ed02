package kubetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	streamhttp "k8s.io/streaming/pkg/httpstream"

	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

// Pod ports the tests expose.
const (
	echoPort = 8080
	grpcPort = 9090
)

// protocols are the ways a client port-forwards: kubectl's (websocket,
// falling back to SPDY), websocket alone (so a silent fallback cannot hide
// a broken websocket path), and SPDY alone.
var protocols = []cluster.Protocol{cluster.WebSocket, cluster.WebSocketOnly, cluster.SPDY}

// startEcho serves TCP on loopback, writing back what it reads until the
// client half-closes; it returns the address.
func startEcho(t *testing.T) string { return startGreeter(t, "") }

// startGreeter is startEcho that first writes greeting: a server that
// says which it is.
func startGreeter(t *testing.T, greeting string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := io.WriteString(conn, greeting); err != nil {
					return
				}
				_, _ = io.Copy(conn, conn)
				_ = conn.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// startHealth serves gRPC's health service in plaintext on loopback; the
// service "kubetest" is NOT_SERVING so that a test can tell this server
// from any other.
func startHealth(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("kubetest", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// runningPod creates a running pod on the fake kubelet's node.
func runningPod(t *testing.T, c *controlPlane, ns, name string) *corev1.Pod {
	t.Helper()
	k := c.node(t)
	p := newPod(name)
	p.Namespace = ns
	out, err := c.CreateRunningPod(ctx(t), p, k.NodeName())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// echoThrough sends payload through addr and checks it all comes back.
func echoThrough(addr string, payload []byte) error {
	return exchange(addr, payload, payload)
}

// exchange sends payload through addr, half-closes, and checks that want
// is all that comes back.
func exchange(addr string, payload, want []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(payload)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("reading the echo: %w (%d bytes so far)", err, len(got))
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("got %d bytes (%.20q...), want %d (%.20q...); equal prefix: %d bytes", len(got), got, len(want), want, commonPrefix(got, want))
	}
	return nil
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func forward(t *testing.T, c *controlPlane, ns, pod string, port int, proto cluster.Protocol) *cluster.Forward {
	t.Helper()
	f, err := cluster.PortForward(ctx(t), c.RestConfig(), ns, pod, port, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// Bytes and a gRPC call go both ways through the API server's port-forward
// and the fake kubelet, over each protocol.
func TestPortForward(t *testing.T) {
	c := needCluster(t)
	k := c.node(t)
	ns := namespace(t, c, nil)
	runningPod(t, c, ns, "target")
	k.Expose(ns, "target", echoPort, startEcho(t))
	k.Expose(ns, "target", grpcPort, startHealth(t))

	for _, proto := range protocols {
		t.Run(proto.String(), func(t *testing.T) {
			t.Run("echo", func(t *testing.T) {
				f := forward(t, c, ns, "target", echoPort, proto)
				before := k.Streams()
				// Two connections over one forward: each is a stream pair.
				for _, size := range []int{1, 256 << 10} {
					if err := echoThrough(f.Addr, randomBytes(t, size)); err != nil {
						t.Fatalf("%d bytes: %v", size, err)
					}
				}
				if n := k.Streams() - before; n != 2 {
					t.Errorf("kubelet served %d streams, want 2", n)
				}
			})
			t.Run("grpc health", func(t *testing.T) {
				f := forward(t, c, ns, "target", grpcPort, proto)
				conn, err := grpc.NewClient(f.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				hc := healthpb.NewHealthClient(conn)
				for service, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
					"":         healthpb.HealthCheckResponse_SERVING,
					"kubetest": healthpb.HealthCheckResponse_NOT_SERVING,
				} {
					resp, err := hc.Check(ctx(t), &healthpb.HealthCheckRequest{Service: service})
					if err != nil {
						t.Fatalf("health %q: %v", service, err)
					}
					if resp.Status != want {
						t.Errorf("health %q: %v, want %v", service, resp.Status, want)
					}
				}
			})
			t.Run("nothing exposed", func(t *testing.T) {
				// A port of its own per protocol, so that the kubelet's
				// error checked below is this forward's.
				port := 7777 + int(proto)
				f := forward(t, c, ns, "target", port, proto)
				conn, err := net.DialTimeout("tcp", f.Addr, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
				got, _ := io.ReadAll(conn)
				if len(got) != 0 {
					t.Errorf("read %q from an unexposed port", got)
				}
				// The kubelet said why on the error stream (client-go then
				// drops the whole forward, in its own time).
				want := fmt.Sprintf("pod %s/target: nothing listens on port %d", ns, port)
				if !slices.ContainsFunc(k.Errors(), func(err error) bool { return strings.Contains(err.Error(), want) }) {
					t.Errorf("kubelet errors %v, want one saying %q", k.Errors(), want)
				}
			})
		})
	}
}

// Port-forward is authorized by RBAC (create pods/portforward): bob, with no
// role, is refused; alice with a Role is let in.
func TestPortForwardRBAC(t *testing.T) {
	c := needCluster(t)
	k := c.node(t)
	ns := namespace(t, c, nil)
	runningPod(t, c, ns, "target")
	k.Expose(ns, "target", echoPort, startEcho(t))
	if err := cluster.GrantPortForward(ctx(t), c.Client(), ns, rbacv1.UserKind, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user      string
		forbidden bool
	}{
		{"bob", true},
		{"alice", false},
	} {
		for _, proto := range protocols {
			t.Run(tc.user+"/"+proto.String(), func(t *testing.T) {
				cfg := c.UserConfig(tc.user)
				if tc.forbidden {
					if err := dialWithRetry(t, cfg, ns, proto, tc.user, false); !isForbidden(err, tc.user) {
						t.Fatalf("%v, want 403 Forbidden for %s without create pods/portforward", err, tc.user)
					}
					return
				}
				if err := dialWithRetry(t, cfg, ns, proto, tc.user, true); err != nil {
					t.Fatal(err)
				}
				f, err := cluster.PortForward(ctx(t), cfg, ns, "target", echoPort, proto)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := echoThrough(f.Addr, randomBytes(t, 4096)); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// isForbidden is the API server refusing user with 403. The websocket
// dialer keeps the Status (inside an UpgradeFailureError); the SPDY dialer
// only its message.
func isForbidden(err error, user string) bool {
	var upgrade *streamhttp.UpgradeFailureError
	if errors.As(err, &upgrade) {
		return apierrors.IsForbidden(upgrade.Cause)
	}
	return err != nil && strings.Contains(err.Error(), `is forbidden: User "`+user+`" cannot`)
}

// Which verbs on pods/portforward each protocol needs: SPDY is a POST
// (create); the websocket upgrade is a GET, which the API server authorizes
// as get and then, since 1.35, also as create
// (AuthorizePodWebsocketUpgradeCreatePermission). So a role for
// kubectl port-forward needs both.
func TestPortForwardVerbs(t *testing.T) {
	c := needCluster(t)
	k := c.node(t)
	ns := namespace(t, c, nil)
	runningPod(t, c, ns, "target")
	k.Expose(ns, "target", echoPort, startEcho(t))
	users := map[string][]string{
		"pf-create": {"create"},
		"pf-get":    {"get"},
		"pf-both":   {"create", "get"},
	}
	for user, verbs := range users {
		rule := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: verbs}
		if err := cluster.GrantRole(ctx(t), c.Client(), ns, user, rbacv1.UserKind, user, rule); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		user    string
		proto   cluster.Protocol
		allowed bool
	}{
		{"pf-create", cluster.SPDY, true},
		{"pf-create", cluster.WebSocketOnly, false},
		// kubectl's fallback only follows an upgrade failure, which a 403
		// is: the SPDY retry is let in.
		{"pf-create", cluster.WebSocket, true},
		{"pf-get", cluster.SPDY, false},
		{"pf-get", cluster.WebSocketOnly, false},
		{"pf-get", cluster.WebSocket, false},
		{"pf-both", cluster.SPDY, true},
		{"pf-both", cluster.WebSocketOnly, true},
		{"pf-both", cluster.WebSocket, true},
	} {
		t.Run(tc.user+"/"+tc.proto.String(), func(t *testing.T) {
			// Impersonated: UserConfig for a user without a static token.
			err := dialWithRetry(t, c.UserConfig(tc.user), ns, tc.proto, tc.user, tc.allowed)
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.allowed && !isForbidden(err, tc.user):
				t.Fatalf("%v, want 403 Forbidden for %s", err, tc.user)
			}
		})
	}
}

// dialWithRetry opens a port-forward connection to ns/target; when it
// should be allowed it retries 403s for a while, as RBAC reaches the
// authorizer's cache asynchronously.
func dialWithRetry(t *testing.T, cfg *rest.Config, ns string, proto cluster.Protocol, user string, retry bool) error {
	t.Helper()
	d, err := cluster.Dialer(cfg, ns, "target", proto)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		conn, _, err := d.Dial(portforward.PortForwardProtocolV1Name)
		if err == nil {
			conn.Close()
			return nil
		}
		if !retry || !isForbidden(err, user) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Many forwards at once, each to its own pod, each pod's server saying
// which it is and echoing: what a benchmark over a fleet of pods does.
func TestPortForwardConcurrent(t *testing.T) {
	c := needCluster(t)
	k := c.node(t)
	ns := namespace(t, c, nil)
	const pods = 50
	cx := ctx(t)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2*pods)
	for i := range pods {
		name := fmt.Sprintf("pod-%02d", i)
		k.Expose(ns, name, echoPort, startGreeter(t, name+"|"))
		wg.Go(func() {
			p := newPod(name)
			p.Namespace = ns
			if _, err := c.CreateRunningPod(cx, p, k.NodeName()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	created := time.Since(start)
	for i := range pods {
		proto := protocols[i%len(protocols)]
		wg.Go(func() {
			name := fmt.Sprintf("pod-%02d", i)
			f, err := cluster.PortForward(cx, c.RestConfig(), ns, name, echoPort, proto)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			defer f.Close()
			payload := randomHexBytes(32 << 10)
			if err := exchange(f.Addr, payload, append([]byte(name+"|"), payload...)); err != nil {
				errs <- fmt.Errorf("%s over %v: %w", name, proto, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d pods created and set running in %v; %d concurrent forwards and echoes in %v", pods, created.Round(time.Millisecond), pods, (time.Since(start) - created).Round(time.Millisecond))
}

func randomHexBytes(n int) []byte { return []byte(randomHex(n / 2)) }

// CreateRunningPod leaves a pod as a kubelet would: bound, running, ready,
// with an IP; native sidecars run, other init containers completed.
func TestCreateRunningPod(t *testing.T) {
	c := needCluster(t)
	k := c.node(t)
	ns := namespace(t, c, nil)
	p := newPod("withinit")
	p.Namespace = ns
	always := corev1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = []corev1.Container{
		{Name: "setup", Image: "busybox"},
		{Name: "sidecar", Image: "busybox", RestartPolicy: &always},
	}
	if _, err := c.CreateRunningPod(ctx(t), p, k.NodeName()); err != nil {
		t.Fatal(err)
	}
	got, err := c.Client().CoreV1().Pods(ns).Get(ctx(t), "withinit", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != k.NodeName() || got.Status.Phase != corev1.PodRunning || net.ParseIP(got.Status.PodIP) == nil {
		t.Errorf("node %q phase %q IP %q, want %q Running and an IP", got.Spec.NodeName, got.Status.Phase, got.Status.PodIP, k.NodeName())
	}
	ready := false
	for _, cond := range got.Status.Conditions {
		if cond.Type == corev1.PodReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		t.Errorf("conditions %+v: not Ready", got.Status.Conditions)
	}
	states := map[string]string{}
	for _, s := range append(got.Status.InitContainerStatuses, got.Status.ContainerStatuses...) {
		switch {
		case s.State.Running != nil:
			states[s.Name] = "running"
		case s.State.Terminated != nil:
			states[s.Name] = "terminated"
		}
	}
	want := map[string]string{"setup": "terminated", "sidecar": "running", "app": "running"}
	for name, st := range want {
		if states[name] != st {
			t.Errorf("container %s: %q, want %q (all: %v)", name, states[name], st, states)
		}
	}
	node, err := c.Client().CoreV1().Nodes().Get(ctx(t), k.NodeName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if int(node.Status.DaemonEndpoints.KubeletEndpoint.Port) != k.Port() {
		t.Errorf("node's kubelet port %d, want %d", node.Status.DaemonEndpoints.KubeletEndpoint.Port, k.Port())
	}
}
