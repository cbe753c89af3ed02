package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	//lint:ignore SA1019 client-go v0.37's port-forward API (NewFallbackDialer, spdy.NewDialer) still takes these types
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"

	"github.com/triage-sh/triage/client"
)

// Dial connects to the sidecar of pod with a token for tier and checks
// that it answers (a health check, which needs no permission). By default
// it port-forwards through the API server: websocket first, SPDY when the
// upgrade fails, as kubectl does; with --direct it dials the pod IP over
// TLS with k.DialOptions' CA and ServerName. The returned func closes the
// client and the port-forward (waiting for its goroutines); call it when
// done with the client. Each call opens its own port-forward, so dial each
// pod once per command and share the client.
func (k *Kube) Dial(ctx context.Context, pod Pod, tier string) (*client.Client, func() error, error) {
	if pod.Skip != "" {
		return nil, nil, fmt.Errorf("pod %s: %s", pod, pod.Skip)
	}
	port := pod.SidecarPort
	if port == 0 {
		port = k.Flags.Port
	}
	tok, err := k.Tokens.Token(ctx, tier, pod.Namespace)
	if err != nil {
		return nil, nil, fmt.Errorf("pod %s: %w", pod, err)
	}
	if k.Flags.Direct {
		if pod.TLSPort == 0 {
			return nil, nil, fmt.Errorf("pod %s: its sidecar serves no TLS on the pod IP (no container port %q): annotate the pod %s=SECRET (a kubernetes.io/tls Secret) and restart it, or drop --direct", pod, SidecarTLSPortName, "triage.dev/tls-secret")
		}
		return k.dialDirect(ctx, pod, pod.TLSPort, tok)
	}
	fw, err := k.forward(ctx, pod, port)
	if err != nil {
		return nil, nil, err
	}
	o := client.Options{
		Addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(fw.localPort)),
		Insecure:    true,
		Token:       tok,
		Timeout:     k.DialOptions.Timeout,
		DialOptions: k.DialOptions.DialOptions,
	}
	c, err := client.Dial(ctx, o)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("pod %s: %w", pod, err), fw.close())
	}
	// Both closes are idempotent, so closeAll is too.
	closeAll := func() error { return errors.Join(c.Close(), fw.close()) }
	if err := probe(ctx, c); err != nil {
		switch remote, lost := fw.failure(time.Second); {
		case remote != "":
			// The kubelet could not connect to the port inside the pod.
			err = fmt.Errorf("%s in %s is not listening on %d: is the container ready? (%s)", k.Flags.Container, pod, port, remote)
		case lost:
			err = fmt.Errorf("port-forward to %s: lost the connection to the pod (did it restart?): %v", pod, err)
		case status.Code(err) == codes.Unavailable:
			err = fmt.Errorf("%s in %s is not listening on %d: is the container ready? (%v)", k.Flags.Container, pod, port, err)
		default:
			err = fmt.Errorf("pod %s: %w", pod, err)
		}
		return nil, nil, errors.Join(err, closeAll())
	}
	return c, closeAll, nil
}

// dialDirect dials the pod IP with the caller's TLS options.
func (k *Kube) dialDirect(ctx context.Context, pod Pod, port int, tok string) (*client.Client, func() error, error) {
	if pod.IP == "" {
		return nil, nil, fmt.Errorf("pod %s has no IP yet: wait for it to start, or drop --direct", pod)
	}
	o := k.DialOptions
	o.Addr = net.JoinHostPort(pod.IP, strconv.Itoa(port))
	o.Token, o.TokenFile = tok, ""
	c, err := client.Dial(ctx, o)
	if err != nil {
		return nil, nil, fmt.Errorf("pod %s: %w", pod, err)
	}
	if err := probe(ctx, c); err != nil {
		if status.Code(err) == codes.Unavailable {
			err = fmt.Errorf("%s in %s is not reachable at %s: is it listening on the pod IP (not only loopback), and does a NetworkPolicy allow you? Or drop --direct. (%s)", k.Flags.Container, pod, o.Addr, client.Describe(err))
		} else {
			err = fmt.Errorf("pod %s: %w", pod, err)
		}
		return nil, nil, errors.Join(err, c.Close())
	}
	return c, c.Close, nil
}

// probe checks the sidecar answers. Any answer but Unavailable means it
// listens (an older sidecar may lack the health service).
func probe(ctx context.Context, c *client.Client) error {
	_, err := c.Health(ctx, "")
	if err == nil || status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded && status.Code(err) != codes.Canceled {
		return nil
	}
	return err
}

// portForwardDialer builds the dialer for the pod's portforward
// subresource, as kubectl does: SPDY over websocket, falling back to SPDY
// on an upgrade failure or an HTTPS proxy websocket cannot cross.
func (k *Kube) portForwardDialer(pod Pod) (httpstream.Dialer, error) {
	u := k.Clientset.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(pod.Namespace).Name(pod.Name).
		SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(k.Config)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s: SPDY transport: %w", pod, err)
	}
	d := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	if k.Flags.Transport == TransportSPDY {
		return d, nil
	}
	ws, err := portforward.NewSPDYOverWebsocketDialer(u, k.Config)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s: websocket transport: %w", pod, err)
	}
	return portforward.NewFallbackDialer(ws, d, shouldFallback), nil
}

// shouldFallback reports whether a websocket dial failed in a way SPDY may
// not: the upgrade was refused, or a proxy websocket cannot cross. The
// websocket transport of client-go v0.37 returns k8s.io/streaming's
// UpgradeFailureError, which apimachinery's IsUpgradeFailure does not
// recognise, so both are checked (kubectl checks the former).
func shouldFallback(err error) bool {
	return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err) ||
		httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
}

// forwardError explains a failed port-forward.
func (k *Kube) forwardError(pod Pod, err error) error {
	lower := strings.ToLower(err.Error())
	switch {
	case strings.Contains(lower, "forbidden"):
		return fmt.Errorf("port-forward to %s: you need create on pods/portforward in %s: %w", pod, pod.Namespace, err)
	case strings.Contains(lower, "unauthorized"):
		return fmt.Errorf("port-forward to %s: the API server rejected your credentials: log in again: %w", pod, err)
	case strings.Contains(lower, "not found"):
		return fmt.Errorf("port-forward to %s: the pod is gone: run the command again: %w", pod, err)
	}
	return fmt.Errorf("port-forward to %s: %w", pod, err)
}
