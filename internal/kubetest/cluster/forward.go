package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"sync"

	//lint:ignore SA1019 client-go v0.37's port-forward API (NewFallbackDialer, spdy.NewDialer) still takes these types
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// Protocol is how a client port-forwards through the API server.
type Protocol int

const (
	// WebSocket tunnels SPDY over a websocket to the API server (which
	// speaks SPDY to the kubelet) and falls back to SPDY when the upgrade
	// fails, as kubectl port-forward does since 1.31.
	WebSocket Protocol = iota
	// WebSocketOnly is WebSocket without the fallback.
	WebSocketOnly
	// SPDY upgrades straight to SPDY, which the API server proxies through
	// to the kubelet.
	SPDY
)

func (p Protocol) String() string {
	switch p {
	case WebSocket:
		return "websocket"
	case WebSocketOnly:
		return "websocket-only"
	case SPDY:
		return "spdy"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// PortForwardURL is the pods/portforward subresource of namespace/pod on
// the API server at host.
func PortForwardURL(host, namespace, pod string) (*url.URL, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("API server URL %q: %w", host, err)
	}
	u.Path = path.Join(u.Path, "/api/v1/namespaces", namespace, "pods", pod, "portforward")
	return u, nil
}

// Dialer is a client-go port-forward dialer to namespace/pod through the
// API server, authenticating as cfg says, over proto.
func Dialer(cfg *rest.Config, namespace, pod string, proto Protocol) (httpstream.Dialer, error) {
	u, err := PortForwardURL(cfg.Host, namespace, pod)
	if err != nil {
		return nil, err
	}
	spdyDialer := func() (httpstream.Dialer, error) {
		transport, upgrader, err := spdy.RoundTripperFor(cfg)
		if err != nil {
			return nil, fmt.Errorf("SPDY round tripper: %w", err)
		}
		return spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u), nil
	}
	switch proto {
	case SPDY:
		return spdyDialer()
	case WebSocket, WebSocketOnly:
		ws, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
		if err != nil {
			return nil, fmt.Errorf("websocket dialer: %w", err)
		}
		if proto == WebSocketOnly {
			return ws, nil
		}
		fallback, err := spdyDialer()
		if err != nil {
			return nil, err
		}
		return portforward.NewFallbackDialer(ws, fallback, shouldFallback), nil
	}
	return nil, fmt.Errorf("unknown port-forward protocol %v", proto)
}

// shouldFallback is kubectl's test for retrying over SPDY: the websocket
// upgrade failed (any non-101 answer, a 403 included) or a proxy cannot
// tunnel it. client-go 1.37's websocket round tripper returns
// k8s.io/streaming's UpgradeFailureError, which apimachinery's
// httpstream.IsUpgradeFailure does not recognize: check both.
func shouldFallback(err error) bool {
	return streamhttp.IsUpgradeFailure(err) || httpstream.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
}

// Forward is a running port-forward: a local listener whose connections
// reach a pod's port.
type Forward struct {
	// Addr is the local address, 127.0.0.1:PORT.
	Addr string
	pf   *portforward.PortForwarder
	stop chan struct{}
	once sync.Once
	done chan struct{}
	err  error // ForwardPorts', set before done is closed
}

// PortForward forwards a random local port on 127.0.0.1 to podPort of
// namespace/pod through the API server, as `kubectl port-forward` does, and
// returns once it listens. ctx bounds only the setup; Close ends it.
func PortForward(ctx context.Context, cfg *rest.Config, namespace, pod string, podPort int, proto Protocol) (*Forward, error) {
	d, err := Dialer(cfg, namespace, pod, proto)
	if err != nil {
		return nil, err
	}
	f := &Forward{stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(podPort)}, f.stop, ready, nil, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, podPort, err)
	}
	f.pf = pf
	go func() {
		f.err = pf.ForwardPorts()
		close(f.done)
	}()
	select {
	case <-ready:
	case <-f.done:
		return nil, fmt.Errorf("port-forward to %s/%s:%d over %v: %w", namespace, pod, podPort, proto, f.err)
	case <-ctx.Done():
		f.Close()
		return nil, fmt.Errorf("port-forward to %s/%s:%d over %v: %w", namespace, pod, podPort, proto, ctx.Err())
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		f.Close()
		return nil, fmt.Errorf("port-forward to %s/%s:%d: local ports %v: %v", namespace, pod, podPort, ports, err)
	}
	f.Addr = "127.0.0.1:" + strconv.Itoa(int(ports[0].Local))
	return f, nil
}

// Done is closed when the forward ends: after Close, or when client-go
// gives up on the connection to the API server, which it does when the
// kubelet reports an error on a forwarded connection (e.g. nothing listens
// on the pod's port).
func (f *Forward) Done() <-chan struct{} { return f.done }

// Err is why the forward ended (nil after Close); call it after Done.
func (f *Forward) Err() error {
	select {
	case <-f.done:
		return f.err
	default:
		return nil
	}
}

// Close stops listening and closes the connection to the API server.
func (f *Forward) Close() {
	f.once.Do(func() { close(f.stop) })
}
