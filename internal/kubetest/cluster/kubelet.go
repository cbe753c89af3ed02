package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

const (
	// streamIdleTimeout is the kubelet's default
	// --streaming-connection-idle-timeout.
	streamIdleTimeout = 4 * time.Hour
	// streamCreationTimeout is the kubelet's: how long the data and error
	// streams of one forwarded connection may take to both arrive.
	streamCreationTimeout = 30 * time.Second
)

// Kubelet is a fake kubelet: a Node object and an HTTPS server that serves
// the kubelet's port-forward endpoint with the kubelet's own streaming code
// (k8s.io/cri-streaming), so the API server's pods/portforward (SPDY, or a
// client's websocket it translates into SPDY) reaches it. Instead of a
// container's network namespace, each pod port is a local address
// registered with Expose.
type Kubelet struct {
	c    *Cluster
	name string
	ln   net.Listener
	srv  *http.Server

	mu      sync.RWMutex
	targets map[target]string

	streams atomic.Int64
	errMu   sync.Mutex
	errs    []error
	dialer  net.Dialer
	stop    sync.Once
}

// target is a pod's port.
type target struct {
	namespace, pod string
	port           int32
}

// StartKubelet serves a fake kubelet on 127.0.0.1 with a serving
// certificate from the CA the API server trusts (--kubelet-certificate-
// authority), accepting only the API server's client certificate, and
// registers Node nodeName (Ready, InternalIP 127.0.0.1, kubelet port) so the
// API server sends pods/portforward for pods bound to it there. Cluster.Stop
// stops it.
func (c *Cluster) StartKubelet(nodeName string) (*Kubelet, error) {
	serving, err := c.kubeletCA.IssueServing("system:node:"+nodeName, []string{"localhost", nodeName}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	cert, err := serving.TLSCertificate()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("kubelet %s: listening: %w", nodeName, err)
	}
	k := &Kubelet{c: c, name: nodeName, ln: ln, targets: map[target]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/portForward/{namespace}/{pod}", k.servePortForward)
	mux.HandleFunc("/portForward/{namespace}/{pod}/{uid}", k.servePortForward)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	k.srv = &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			// Only the API server (its --kubelet-client-certificate)
			// may connect, as with a real kubelet's --client-ca-file.
			ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs:  c.ca.Pool(),
			// Upgrades (SPDY) need HTTP/1.1.
			NextProtos: []string{"http/1.1"},
			MinVersion: tls.VersionTLS12,
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = k.srv.ServeTLS(ln, "", "") }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.register(ctx); err != nil {
		k.Stop()
		return nil, err
	}
	c.mu.Lock()
	c.kubelets = append(c.kubelets, k)
	c.mu.Unlock()
	return k, nil
}

// register creates or updates the Node and its status.
func (k *Kubelet) register(ctx context.Context) error {
	nodes := k.c.client.CoreV1().Nodes()
	node, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   k.name,
		Labels: map[string]string{corev1.LabelHostname: k.name, corev1.LabelOSStable: "linux"},
	}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		node, err = nodes.Get(ctx, k.name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("kubelet %s: registering the node: %w", k.name, err)
	}
	now := metav1.Now()
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: corev1.NodeHostName, Address: k.name},
	}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(k.Port())
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "fake kubelet (internal/kubetest/cluster)", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	node.Status.NodeInfo.KubeletVersion = KubeVersion
	if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kubelet %s: setting the node's status: %w", k.name, err)
	}
	return nil
}

// NodeName is the kubelet's node.
func (k *Kubelet) NodeName() string { return k.name }

// Port is the kubelet's HTTPS port on 127.0.0.1.
func (k *Kubelet) Port() int { return k.ln.Addr().(*net.TCPAddr).Port }

// Streams is how many forwarded connections the kubelet has served (each
// connection a client makes to a forwarded local port is one).
func (k *Kubelet) Streams() int64 { return k.streams.Load() }

// Errors are the last (up to 100) errors the kubelet's port-forwarder
// reported to clients on their error streams, oldest first.
func (k *Kubelet) Errors() []error {
	k.errMu.Lock()
	defer k.errMu.Unlock()
	return append([]error(nil), k.errs...)
}

func (k *Kubelet) recordError(err error) {
	k.errMu.Lock()
	defer k.errMu.Unlock()
	if len(k.errs) == 100 {
		k.errs = k.errs[1:]
	}
	k.errs = append(k.errs, err)
}

// Expose makes port podPort of pod namespace/pod, as the API server's
// port-forward reaches it, the local TCP address localAddr ("host:port").
// A later call for the same pod and port replaces the address.
func (k *Kubelet) Expose(namespace, pod string, podPort int, localAddr string) {
	k.mu.Lock()
	k.targets[target{namespace, pod, int32(podPort)}] = localAddr
	k.mu.Unlock()
}

// Unexpose undoes Expose: the port then refuses connections.
func (k *Kubelet) Unexpose(namespace, pod string, podPort int) {
	k.mu.Lock()
	delete(k.targets, target{namespace, pod, int32(podPort)})
	k.mu.Unlock()
}

// Stop closes the server and every connection; the Node stays.
func (k *Kubelet) Stop() {
	k.stop.Do(func() { _ = k.srv.Close() })
}

// servePortForward is the kubelet's /portForward/{namespace}/{pod}[/{uid}].
func (k *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	ns, pod, uid := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("uid")
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, &forwarder{k: k, namespace: ns}, pod, uid, opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// forwarder is the kubelet's PortForwarder for one namespace (the
// interface only passes the pod's name).
type forwarder struct {
	k         *Kubelet
	namespace string
}

// PortForward copies between stream and the address exposed for the pod's
// port: the client's end of stream half-closes the connection to the
// target, the target's end of output ends the forward. An error goes to the
// client on the error stream (and to Kubelet.Errors).
func (f *forwarder) PortForward(ctx context.Context, pod, _ string, port int32, stream io.ReadWriteCloser) error {
	err := f.forward(ctx, pod, port, stream)
	if err != nil {
		f.k.recordError(err)
	}
	return err
}

func (f *forwarder) forward(ctx context.Context, pod string, port int32, stream io.ReadWriteCloser) error {
	f.k.mu.RLock()
	addr, ok := f.k.targets[target{f.namespace, pod, port}]
	f.k.mu.RUnlock()
	if !ok {
		return fmt.Errorf("pod %s/%s: nothing listens on port %d (fake kubelet %s: no Kubelet.Expose for it)", f.namespace, pod, port, f.k.name)
	}
	f.k.streams.Add(1)
	conn, err := f.k.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("pod %s/%s port %d: %w", f.namespace, pod, port, err)
	}
	defer conn.Close()
	stopOnCancel := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopOnCancel()

	// As containerd does: the target's end of output ends the forward
	// (the caller then closes stream, which ends the copy towards the
	// target too).
	go func() {
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, out := io.Copy(stream, conn)
	if out != nil && !errors.Is(out, net.ErrClosed) {
		return fmt.Errorf("pod %s/%s port %d: %w", f.namespace, pod, port, out)
	}
	return nil
}

// CreateRunningPod creates pod (in pod.Namespace) bound to nodeName and sets
// its status as a kubelet would once its containers run: phase Running,
// Ready, a pod IP. No scheduler or kubelet runs, so nothing else would.
func (c *Cluster) CreateRunningPod(ctx context.Context, pod *corev1.Pod, nodeName string) (*corev1.Pod, error) {
	if pod.Namespace == "" {
		return nil, fmt.Errorf("CreateRunningPod %s: set the pod's namespace", pod.Name)
	}
	p := pod.DeepCopy()
	p.Spec.NodeName = nodeName
	pods := c.client.CoreV1().Pods(p.Namespace)
	created, err := pods.Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.mu.Lock()
	c.podIPs++
	n := c.podIPs
	c.mu.Unlock()
	ip := net.IPv4(10, 244, byte(n>>8), byte(n)).String()
	if pod.Status.PodIP != "" { // the caller's choice, e.g. 127.0.0.1 for a sidecar reached directly
		ip = pod.Status.PodIP
	}
	now := metav1.Now()
	created.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		StartTime: &now,
		QOSClass:  created.Status.QOSClass,
	}
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		created.Status.Conditions = append(created.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	// Containers (and restartable init containers, i.e. native sidecars)
	// run; other init containers completed.
	status := func(cs []corev1.Container, init bool) []corev1.ContainerStatus {
		var out []corev1.ContainerStatus
		for i, ctr := range cs {
			st := corev1.ContainerStatus{
				Name: ctr.Name, Image: ctr.Image, ImageID: ctr.Image,
				ContainerID: "fake://" + strconv.Itoa(int(n)) + "-" + strconv.Itoa(i),
			}
			if !init || (ctr.RestartPolicy != nil && *ctr.RestartPolicy == corev1.ContainerRestartPolicyAlways) {
				st.Ready, st.Started = true, new(true)
				st.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
			} else {
				st.Started = new(false)
				st.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}
			}
			out = append(out, st)
		}
		return out
	}
	created.Status.ContainerStatuses = status(created.Spec.Containers, false)
	created.Status.InitContainerStatuses = status(created.Spec.InitContainers, true)
	out, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("setting pod %s/%s running: %w", p.Namespace, p.Name, err)
	}
	return out, nil
}
