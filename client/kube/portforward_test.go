package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	//lint:ignore SA1019 client-go v0.37's port-forward API (NewFallbackDialer, spdy.NewDialer) still takes these types
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	criportforward "k8s.io/cri-streaming/pkg/streaming/portforward"
	streamhttp "k8s.io/streaming/pkg/httpstream"

	"github.com/triage-sh/triage/client"
)

// fakeAPIServer serves what Dial needs from an API server: TokenRequests
// and the pods/portforward subresource, the latter with the kubelet's own
// port-forward server (SPDY). With tunnel set it also accepts SPDY over
// websocket as the API server does, by relaying the websocket's bytes to
// an upgraded SPDY connection; without it websocket requests reach the
// kubelet code directly, like an API server that predates tunneling.
type fakeAPIServer struct {
	t      *testing.T
	tunnel bool
	// ports maps a pod port to the local address it forwards to; other
	// ports are refused as by a container not listening.
	ports map[int32]string
	// forbidden pods get 403 on portforward.
	forbidden map[string]bool

	mu        sync.Mutex
	upgrades  []string // "websocket" or "spdy", per portforward request
	audiences []string // of TokenRequests

	kubelet *httptest.Server // the SPDY port-forward server
	api     *httptest.Server
	relays  sync.WaitGroup
}

func newFakeAPIServer(t *testing.T, tunnel bool, ports map[int32]string) *fakeAPIServer {
	s := &fakeAPIServer{t: t, tunnel: tunnel, ports: ports, forbidden: map[string]bool{}}
	s.kubelet = httptest.NewServer(http.HandlerFunc(s.servePortForward))
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	return s
}

// Close stops both servers and waits for the relays.
func (s *fakeAPIServer) Close() {
	s.api.CloseClientConnections()
	s.api.Close()
	s.kubelet.CloseClientConnections()
	s.kubelet.Close()
	s.relays.Wait()
}

// config points at the server; it speaks JSON only.
func (s *fakeAPIServer) config() *rest.Config {
	return &rest.Config{Host: s.api.URL, ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"}}
}

func (s *fakeAPIServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// api v1 namespaces NS (pods|serviceaccounts) NAME (portforward|token)
	if len(parts) != 7 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" {
		http.NotFound(w, r)
		return
	}
	ns, resource, name, sub := parts[3], parts[4], parts[5], parts[6]
	switch {
	case resource == "serviceaccounts" && sub == "token":
		var tr authenticationv1.TokenRequest
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.audiences = append(s.audiences, strings.Join(tr.Spec.Audiences, ","))
		s.mu.Unlock()
		tr.Status = authenticationv1.TokenRequestStatus{Token: "tok-" + ns + "-" + name, ExpirationTimestamp: metav1.NewTime(time.Now().Add(10 * time.Minute))}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&tr)
	case resource == "pods" && sub == "portforward":
		if s.forbidden[name] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods %q is forbidden: User \"dev\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace %q","reason":"Forbidden","code":403}`, name, ns)
			return
		}
		ws := gwebsocket.IsWebSocketUpgrade(r)
		s.mu.Lock()
		if ws {
			s.upgrades = append(s.upgrades, "websocket")
		} else {
			s.upgrades = append(s.upgrades, "spdy")
		}
		s.mu.Unlock()
		if ws && s.tunnel {
			s.serveTunnel(w, r)
			return
		}
		s.servePortForward(w, r)
	default:
		http.NotFound(w, r)
	}
}

// servePortForward is the kubelet's port-forward server.
func (s *fakeAPIServer) servePortForward(w http.ResponseWriter, r *http.Request) {
	opts, err := criportforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	criportforward.ServePortForward(w, r, s, "pod", "uid", opts, time.Minute, 10*time.Second, criportforward.SupportedProtocols)
}

// PortForward implements the kubelet's PortForwarder: it connects the
// stream to the local address of port.
func (s *fakeAPIServer) PortForward(ctx context.Context, name, uid string, port int32, stream io.ReadWriteCloser) error {
	addr, ok := s.ports[port]
	if !ok {
		return fmt.Errorf("failed to connect to localhost:%d inside namespace: connection refused", port)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(stream, conn); done <- struct{}{} }()
	<-done
	<-done
	return nil
}

// serveTunnel accepts SPDY over websocket: it upgrades a connection to the
// kubelet to SPDY and relays bytes between it and websocket messages.
func (s *fakeAPIServer) serveTunnel(w http.ResponseWriter, r *http.Request) {
	backend, err := net.Dial("tcp", s.kubelet.Listener.Addr().String())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintf(backend, "POST /portforward HTTP/1.1\r\nHost: kubelet\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\nContent-Length: 0\r\n\r\n", criportforward.ProtocolV1Name)
	br := bufio.NewReader(backend)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		backend.Close()
		http.Error(w, fmt.Sprintf("kubelet upgrade: %v %v", resp, err), http.StatusBadGateway)
		return
	}
	up := gwebsocket.Upgrader{Subprotocols: []string{criportforward.WebsocketsSPDYTunnelingPortForwardV1}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		backend.Close()
		return
	}
	s.relays.Add(2)
	go func() { // websocket -> kubelet
		defer s.relays.Done()
		defer backend.Close()
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if typ == gwebsocket.BinaryMessage {
				if _, err := backend.Write(msg); err != nil {
					return
				}
			}
		}
	}()
	go func() { // kubelet -> websocket
		defer s.relays.Done()
		defer ws.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := br.Read(buf)
			if n > 0 {
				if werr := ws.WriteMessage(gwebsocket.BinaryMessage, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

func (s *fakeAPIServer) upgradeLog() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.upgrades, ",")
}

// echoServer greets each connection, then echoes what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.WriteString(c, "hello from the pod\n")
				io.Copy(c, c)
			})
		}
	})
	return l.Addr().String()
}

func TestPortForwardCarriesBytes(t *testing.T) {
	tests := []struct {
		name      string
		transport string
		tunnel    bool
		want      string // the upgrades the API server saw
	}{
		{"spdy forced", TransportSPDY, true, "spdy"},
		{"websocket tunnel", TransportAuto, true, "websocket"},
		{"websocket refused, SPDY fallback", TransportAuto, false, "websocket,spdy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeAPIServer(t, tt.tunnel, map[int32]string{7070: echoServer(t)})
			defer srv.Close()
			k, err := NewForConfig(srv.config(), Flags{Namespace: testNS, Transport: tt.transport}, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			pod := Pod{Namespace: testNS, Name: "web-0", SidecarPort: 7070}
			fw, err := k.forward(context.Background(), pod, 7070)
			if err != nil {
				t.Fatalf("forward: %v", err)
			}
			defer fw.close()
			// Two connections through one forward, each both ways.
			for i := range 2 {
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", fw.localPort))
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				greeting, err := br.ReadString('\n')
				if err != nil || greeting != "hello from the pod\n" {
					t.Fatalf("connection %d: greeting %q, %v", i, greeting, err)
				}
				msg := fmt.Sprintf("ping %d\n", i)
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				echo, err := br.ReadString('\n')
				if err != nil || echo != msg {
					t.Fatalf("connection %d: echo %q, %v; want %q", i, echo, err, msg)
				}
				c.Close()
			}
			if got := srv.upgradeLog(); got != tt.want {
				t.Errorf("upgrades = %s, want %s", got, tt.want)
			}
			// Closing with a connection open ends it, and returns.
			open, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", fw.localPort))
			if err != nil {
				t.Fatal(err)
			}
			defer open.Close()
			open.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := bufio.NewReader(open).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			closed := make(chan struct{})
			go func() { fw.close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("close hung with a connection open")
			}
			if n, err := open.Read(make([]byte, 1)); err == nil {
				t.Errorf("the open connection read %d bytes after close, want EOF", n)
			}
			if err := fw.close(); err != nil {
				t.Errorf("second close: %v", err)
			}
		})
	}
}

// healthServer is a gRPC server with the health service that records the
// authorization header of each call.
func healthServer(t *testing.T) (addr string, auth func() []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		seen = append(seen, md.Get("authorization")...)
		mu.Unlock()
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(l) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return l.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestDialThroughPortForward(t *testing.T) {
	for _, transport := range []string{TransportSPDY, TransportAuto} {
		t.Run("transport="+transport, func(t *testing.T) {
			addr, auth := healthServer(t)
			srv := newFakeAPIServer(t, true, map[int32]string{7070: addr})
			defer srv.Close()
			k, err := NewForConfig(srv.config(), Flags{Namespace: testNS, Transport: transport, Audience: "triage.test"}, client.Options{Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, closeFn, err := k.Dial(ctx, Pod{Namespace: testNS, Name: "web-0", SidecarPort: 7070}, "profiler")
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			st, err := c.Health(ctx, "")
			if err != nil || st != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Health = %v, %v; want SERVING", st, err)
			}
			if !strings.HasPrefix(c.Addr(), "127.0.0.1:") {
				t.Errorf("client address %s, want a loopback port-forward", c.Addr())
			}
			if err := closeFn(); err != nil {
				t.Errorf("close: %v", err)
			}
			if err := closeFn(); err != nil {
				t.Errorf("second close: %v", err)
			}
			// The probe and the call, each with the token minted in the
			// tier namespace for the profiler tier, with triage's audience.
			want := "Bearer tok-triage-system-triage-profiler"
			if got := auth(); len(got) != 2 || got[0] != want || got[1] != want {
				t.Errorf("authorization = %q, want %q twice", got, want)
			}
			if srv.audiences[0] != "triage.test" || len(srv.audiences) != 1 {
				t.Errorf("token audiences = %v, want one request for triage.test", srv.audiences)
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	addr, _ := healthServer(t)
	tests := []struct {
		name string
		pod  Pod
		want string
	}{
		{"sidecar not listening", Pod{Namespace: testNS, Name: "web-0", SidecarPort: 7071},
			"triage-sidecar in shop/web-0 is not listening on 7071: is the container ready? (error forwarding port 7071 to pod pod, uid uid: failed to connect to localhost:7071 inside namespace: connection refused)"},
		{"portforward forbidden", Pod{Namespace: testNS, Name: "denied", SidecarPort: 7070},
			"port-forward to shop/denied: you need create on pods/portforward in shop"},
		{"skipped pod", Pod{Namespace: testNS, Name: "web-1", Skip: "terminating"},
			"pod shop/web-1: terminating"},
	}
	for _, transport := range []string{TransportSPDY, TransportAuto} {
		for _, tt := range tests {
			t.Run(transport+"/"+tt.name, func(t *testing.T) {
				srv := newFakeAPIServer(t, true, map[int32]string{7070: addr})
				srv.forbidden["denied"] = true
				defer srv.Close()
				k, err := NewForConfig(srv.config(), Flags{Namespace: testNS, Transport: transport}, client.Options{})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				c, closeFn, err := k.Dial(ctx, tt.pod, "viewer")
				if err == nil {
					closeFn()
					t.Fatalf("Dial succeeded with %v", c.Addr())
				}
				if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "tok-") {
					t.Errorf("Dial error = %v\nwant it to contain %q (and no token)", err, tt.want)
				}
			})
		}
	}
}

func TestDialDirect(t *testing.T) {
	addr, _ := healthServer(t)
	host, port, _ := net.SplitHostPort(addr)
	srv := newFakeAPIServer(t, true, nil)
	defer srv.Close()
	// The test server is plaintext: Insecure stands in for the caller's TLS
	// flags (plaintext is allowed to 127.0.0.1, the "pod IP" here).
	k, err := NewForConfig(srv.config(), Flags{Namespace: testNS, Direct: true}, client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(port, &p)
	ctx := context.Background()
	c, closeFn, err := k.Dial(ctx, Pod{Namespace: testNS, Name: "web-0", IP: host, SidecarPort: 7070, TLSPort: p}, "viewer")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer closeFn()
	if c.Addr() != addr {
		t.Errorf("direct client address %s, want the pod's %s", c.Addr(), addr)
	}
	if got := srv.upgradeLog(); got != "" {
		t.Errorf("--direct port-forwarded: %s", got)
	}
	if _, _, err := k.Dial(ctx, Pod{Namespace: testNS, Name: "web-1", TLSPort: p}, "viewer"); err == nil || !strings.Contains(err.Error(), "has no IP") {
		t.Errorf("Dial without a pod IP = %v, want an error saying so", err)
	}
	if _, _, err := k.Dial(ctx, Pod{Namespace: testNS, Name: "web-2", IP: host, SidecarPort: p}, "viewer"); err == nil || !strings.Contains(err.Error(), "triage.dev/tls-secret") {
		t.Errorf("Dial of a pod without a TLS port = %v, want an error naming the annotation", err)
	}
}

func TestDialCloseLeaksNoGoroutines(t *testing.T) {
	addr, _ := healthServer(t)
	srv := newFakeAPIServer(t, true, map[int32]string{7070: addr})
	k, err := NewForConfig(srv.config(), Flags{Namespace: testNS, Transport: TransportSPDY}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := goleak.IgnoreCurrent()
	for i := range 5 {
		c, closeFn, err := k.Dial(ctx, Pod{Namespace: testNS, Name: fmt.Sprintf("web-%d", i), SidecarPort: 7070}, "viewer")
		if err != nil {
			t.Fatalf("Dial %d: %v", i, err)
		}
		if _, err := c.Health(ctx, ""); err != nil {
			t.Fatalf("Health %d: %v", i, err)
		}
		if err := closeFn(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
		if err := closeFn(); err != nil { // a command's defer and its closers may both close
			t.Fatalf("second close %d: %v", i, err)
		}
	}
	// The fake API server's handlers end with the client's connections.
	srv.Close()
	goleak.VerifyNone(t, before)
}

func TestShouldFallback(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"streaming upgrade failure", &streamhttp.UpgradeFailureError{Cause: errors.New("websocket: bad handshake")}, true},
		{"apimachinery upgrade failure", &httpstream.UpgradeFailureError{Cause: errors.New("bad handshake")}, true},
		{"wrapped upgrade failure", fmt.Errorf("dial: %w", &streamhttp.UpgradeFailureError{Cause: errors.New("400")}), true},
		{"https proxy", errors.New("proxy: unknown scheme: https"), true},
		{"other", errors.New("connection refused"), false},
	}
	for _, tt := range tests {
		if got := shouldFallback(tt.err); got != tt.want {
			t.Errorf("%s: shouldFallback = %v, want %v", tt.name, got, tt.want)
		}
	}
}
