package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	//lint:ignore SA1019 client-go v0.37's port-forward API (NewFallbackDialer, spdy.NewDialer) still takes these types
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
)

// forwarder is one running port-forward: a listener on 127.0.0.1:0 whose
// connections are relayed over one upgraded connection to the pod's
// portforward subresource. It speaks the protocol of client-go's
// PortForwarder (an error and a data stream per connection) but keeps the
// kubelet's error messages, which say whether the port was refused, and
// tracks every goroutine so close leaves none behind.
type forwarder struct {
	pod       Pod
	port      int
	conn      httpstream.Connection
	listener  net.Listener
	localPort int

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu     sync.Mutex
	nextID int
	locals map[net.Conn]struct{}
	remote string // the kubelet's last error message
	lost   bool   // the connection ended before close
}

// forward dials the pod's portforward subresource and listens on
// 127.0.0.1:0 for connections to relay to port. ctx bounds the setup; the
// forward lasts until close.
func (k *Kube) forward(ctx context.Context, pod Pod, port int) (*forwarder, error) {
	dialer, err := k.portForwardDialer(pod)
	if err != nil {
		return nil, err
	}
	type dialed struct {
		conn     httpstream.Connection
		protocol string
		err      error
	}
	ch := make(chan dialed, 1)
	go func() { // the upgrade takes no context
		c, p, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- dialed{c, p, err}
	}()
	var d dialed
	select {
	case d = <-ch:
	case <-ctx.Done():
		go func() { // close the connection if the upgrade completes late
			if d := <-ch; d.conn != nil {
				d.conn.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to %s: %w", pod, context.Cause(ctx))
	}
	if d.err != nil {
		return nil, k.forwardError(pod, d.err)
	}
	if d.protocol != portforward.PortForwardProtocolV1Name {
		d.conn.Close()
		return nil, fmt.Errorf("port-forward to %s: the API server offered protocol %q, not %q", pod, d.protocol, portforward.PortForwardProtocolV1Name)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.conn.Close()
		return nil, fmt.Errorf("port-forward to %s: listen on 127.0.0.1: %w", pod, err)
	}
	fw := &forwarder{
		pod:       pod,
		port:      port,
		conn:      d.conn,
		listener:  l,
		localPort: l.Addr().(*net.TCPAddr).Port,
		closed:    make(chan struct{}),
		locals:    map[net.Conn]struct{}{},
	}
	fw.wg.Go(fw.accept)
	fw.wg.Go(fw.watch)
	return fw, nil
}

// watch notes a connection that ends before close, and stops accepting.
func (f *forwarder) watch() {
	select {
	case <-f.conn.CloseChan():
		f.mu.Lock()
		f.lost = true
		f.mu.Unlock()
		f.listener.Close()
	case <-f.closed:
	}
}

// accept relays each local connection until the listener closes.
func (f *forwarder) accept() {
	for {
		c, err := f.listener.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		select {
		case <-f.closed:
			f.mu.Unlock()
			c.Close()
			return
		default:
		}
		f.locals[c] = struct{}{}
		id := f.nextID
		f.nextID++
		f.mu.Unlock()
		f.wg.Go(func() { f.relay(c, id) })
	}
}

// relay copies between local and a new pair of streams to the pod.
func (f *forwarder) relay(local net.Conn, id int) {
	defer func() {
		local.Close()
		f.mu.Lock()
		delete(f.locals, local)
		f.mu.Unlock()
	}()
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(f.port))
	h.Set(corev1.PortForwardRequestIDHeader, strconv.Itoa(id))
	errStream, err := f.conn.CreateStream(h)
	if err != nil {
		f.setRemote(fmt.Sprintf("create the error stream: %v", err))
		return
	}
	errStream.Close() // nothing is written to it
	errMsg := make(chan string, 1)
	f.wg.Go(func() {
		b, err := io.ReadAll(errStream)
		if err != nil && len(b) == 0 {
			b = nil
		}
		errMsg <- strings.TrimSpace(string(b))
	})
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := f.conn.CreateStream(h)
	if err != nil {
		// The kubelet resets both streams after writing why on the error
		// stream, which ends the read.
		msg := <-errMsg
		f.conn.RemoveStreams(errStream)
		if msg != "" {
			f.setRemote(msg)
		} else {
			f.setRemote(fmt.Sprintf("create the data stream: %v", err))
		}
		return
	}
	remoteDone := make(chan struct{})
	localFailed := make(chan struct{})
	f.wg.Go(func() {
		io.Copy(local, data)
		close(remoteDone)
	})
	f.wg.Go(func() {
		defer data.Close() // no more data for the pod
		if _, err := io.Copy(data, local); err != nil {
			close(localFailed)
		}
	})
	select {
	case <-remoteDone:
	case <-localFailed:
	}
	// Reset rather than wait for unsent data, so the error stream ends.
	data.Reset()
	local.Close()
	if msg := <-errMsg; msg != "" {
		f.setRemote(msg)
	}
	f.conn.RemoveStreams(errStream, data)
}

func (f *forwarder) setRemote(msg string) {
	f.mu.Lock()
	f.remote = msg
	f.mu.Unlock()
}

// failure returns the kubelet's last error and whether the connection to
// the pod was lost, after waiting up to wait for the relays of closed
// connections to receive the kubelet's answer.
func (f *forwarder) failure(wait time.Duration) (remote string, lost bool) {
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		remote, lost, active := f.remote, f.lost, len(f.locals)
		f.mu.Unlock()
		if remote != "" || lost || active == 0 || time.Now().After(deadline) {
			return remote, lost
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// close stops the forward and waits for all its goroutines. It is
// idempotent.
func (f *forwarder) close() error {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		close(f.closed)
		for c := range f.locals {
			c.Close()
		}
		f.mu.Unlock()
		f.listener.Close()
		f.conn.Close()
		f.wg.Wait()
	})
	return nil
}
