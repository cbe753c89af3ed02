//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/triage-sh/triage/internal/bench"
	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

// The fleet's names. The user is one of cluster.DefaultUsers, with its
// static token, so the CLI authenticates as a real user would.
const (
	namespace     = "shop"
	workload      = "shop"
	nodeName      = "bench-node"
	sidecarName   = "triage-sidecar" // client/kube's default --sidecar-container
	sidecarPort   = 7070             // the container's port named "triage"
	user          = "alice"
	userGroup     = "oncall"
	healthTimeout = 60 * time.Second
)

// fleet is a control plane with one fake kubelet, Deployment shop and its
// pods, each served by a real triage-sidecar process on loopback.
type fleet struct {
	c          *cluster.Cluster
	kubelet    *cluster.Kubelet
	dir        string // sidecars' files and logs, the kubeconfig
	kubeconfig string
	sidecars   []*sidecar
	setup      time.Duration // from Start to every sidecar healthy
}

// sidecar is one triage-sidecar process serving pod.
type sidecar struct {
	pod  string
	addr string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// podName is the name of the i-th pod, shop-0 ... shop-(n-1).
func podName(i int) string { return fmt.Sprintf("%s-%d", workload, i) }

// startFleet starts the control plane, the kubelet, pods sidecars and the
// RBAC the CLI's user needs. On error everything started is stopped.
func startFleet(ctx context.Context, sidecarBin string, pods int) (f *fleet, err error) {
	t0 := time.Now()
	f = &fleet{}
	defer func() {
		if err != nil {
			f.Close()
			f = nil
		}
	}()
	progress("starting etcd and kube-apiserver")
	if f.c, err = cluster.Start(ctx, cluster.Options{}); err != nil {
		return f, fmt.Errorf("starting the control plane: %w", err)
	}
	if f.kubelet, err = f.c.StartKubelet(nodeName); err != nil {
		return f, err
	}
	if f.dir, err = os.MkdirTemp(f.c.Dir(), "fleet-"); err != nil {
		return f, err
	}
	client := f.c.Client()

	// The namespace and its default ServiceAccount (no controller manager
	// makes it), whose API-audience token each sidecar reads the cluster's
	// keys with; triage's tier ServiceAccounts, and the user's RBAC.
	if err = cluster.CreateServiceAccounts(ctx, client, namespace, "default"); err != nil {
		return f, err
	}
	if err = cluster.CreateServiceAccounts(ctx, client, cluster.TriageNamespace); err != nil {
		return f, err
	}
	for _, tier := range []string{"triage-viewer", "triage-profiler"} {
		if err = cluster.GrantTokenMinting(ctx, client, cluster.TriageNamespace, tier, userGroup); err != nil {
			return f, err
		}
	}
	if err = grantUser(ctx, f.c); err != nil {
		return f, err
	}
	f.kubeconfig = filepath.Join(f.dir, "kubeconfig")
	if err = f.c.WriteKubeconfig(f.kubeconfig, namespace, user); err != nil {
		return f, err
	}
	tok, err := cluster.MintToken(ctx, client, namespace, "default", time.Hour)
	if err != nil {
		return f, err
	}
	tokenFile, caFile := filepath.Join(f.dir, "sa-token"), filepath.Join(f.dir, "ca.crt")
	if err = os.WriteFile(tokenFile, []byte(tok.Status.Token), 0o600); err != nil {
		return f, err
	}
	if err = os.WriteFile(caFile, f.c.CAData(), 0o600); err != nil {
		return f, err
	}

	labels := map[string]string{"app": workload}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: workload, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(pods)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()},
		},
	}
	if _, err = client.AppsV1().Deployments(namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return f, fmt.Errorf("creating Deployment %s/%s: %w", namespace, workload, err)
	}

	progress("creating %d pods and starting %d triage-sidecar processes", pods, pods)
	ports, err := cluster.FreePorts(pods)
	if err != nil {
		return f, err
	}
	err = parallel(ctx, pods, 10, func(i int) error {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName(i), Namespace: namespace, Labels: labels},
			Spec:       podSpec(),
		}
		_, err := f.c.CreateRunningPod(ctx, pod, nodeName)
		return err
	})
	if err != nil {
		return f, err
	}
	for i := range pods {
		s, err := startSidecar(sidecarBin, f.dir, podName(i), fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--kube-api-server="+f.c.Host(), "--kube-ca-file="+caFile, "--kube-token-file="+tokenFile)
		if err != nil {
			return f, err
		}
		f.sidecars = append(f.sidecars, s)
		f.kubelet.Expose(namespace, s.pod, sidecarPort, s.addr)
	}
	if err = f.waitHealthy(ctx); err != nil {
		return f, err
	}
	f.setup = time.Since(t0)
	progress("%d sidecars healthy after %s", pods, f.setup.Round(100*time.Millisecond))
	return f, nil
}

// podSpec is the pods' spec: an app and the sidecar, with the port named
// "triage" the CLI looks for.
func podSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{
		{Name: "app", Image: "registry.example/shop:bench"},
		{Name: sidecarName, Image: "registry.example/triage-sidecar:bench", Ports: []corev1.ContainerPort{{Name: "triage", ContainerPort: sidecarPort}}},
	}}
}

// grantUser gives the user what deploy/base/access.yaml's triage-user
// ClusterRole does, in the namespace: find a Deployment's pods and
// port-forward to them.
func grantUser(ctx context.Context, c *cluster.Cluster) error {
	return cluster.GrantRole(ctx, c.Client(), namespace, "triage-user", rbacv1.UserKind, user,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"get", "create"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
	)
}

// startSidecar starts triage-sidecar for pod on addr, in plaintext on
// loopback with Kubernetes (JWKS) authentication, its log in dir.
func startSidecar(bin, dir, pod, addr string, kubeArgs ...string) (*sidecar, error) {
	s := &sidecar{pod: pod, addr: addr, log: filepath.Join(dir, pod+".log"), done: make(chan struct{})}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--addr=" + addr, "--insecure-local", "--kube-auth=jwks",
		"--pod-name=" + pod, "--pod-namespace=" + namespace, "--audit-log=/dev/null",
	}, kubeArgs...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Killed with this process, even by SIGKILL; a group of its own so a
	// terminal's Ctrl-C reaches only us, and we stop it in order.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	err = s.cmd.Start()
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("starting triage-sidecar (%s) for pod %s: %w", bin, pod, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	return s, nil
}

// stop sends SIGTERM, then SIGKILL after 5 s.
func (s *sidecar) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// exited says how the sidecar ended, with its log's tail, or nil while it
// runs.
func (s *sidecar) exited() error {
	select {
	case <-s.done:
		b, _ := os.ReadFile(s.log)
		return fmt.Errorf("triage-sidecar for pod %s exited (%v): %s", s.pod, s.cmd.ProcessState, tail(string(b), 5))
	default:
		return nil
	}
}

// waitHealthy polls every sidecar's grpc.health.v1 until it is SERVING.
func (f *fleet) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return parallel(ctx, len(f.sidecars), 20, func(i int) error {
		s := f.sidecars[i]
		conn, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		var last error
		for {
			if err := s.exited(); err != nil {
				return err
			}
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
			ccancel()
			if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("health %s", resp.Status)
			}
			last = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("triage-sidecar for pod %s at %s not healthy within %v (log %s): %w", s.pod, s.addr, healthTimeout, s.log, last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// sidecarRSS sums the sidecars' resident memory now.
func (f *fleet) sidecarRSS() (total int64, err error) {
	for _, s := range f.sidecars {
		m, err := bench.ReadMemory(s.cmd.Process.Pid)
		if err != nil {
			return 0, fmt.Errorf("sidecar %s: %w", s.pod, err)
		}
		total += m.RSS
	}
	return total, nil
}

// Close stops the sidecars, then the control plane (and the kubelet), and
// removes their files. It is safe on a partly started fleet.
func (f *fleet) Close() {
	if f == nil {
		return
	}
	var wg sync.WaitGroup
	for _, s := range f.sidecars {
		wg.Go(s.stop)
	}
	wg.Wait()
	f.sidecars = nil
	f.c.Stop() // removes f.dir, inside its directory
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the
// errors joined (at most the first 5, so 100 failures stay readable). It
// stops starting new calls once ctx ends.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var (
		mu   sync.Mutex
		errs []error
		more int
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err)
					} else {
						more++
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if more > 0 {
		errs = append(errs, fmt.Errorf("and %d more errors", more))
	}
	if err := ctx.Err(); err != nil && len(errs) == 0 {
		return err
	}
	return errors.Join(errs...)
}

// tail is the last n lines of s on one line.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
