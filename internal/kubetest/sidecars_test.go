package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/triage-sh/triage/internal/audit"
	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

// sidecarPort is the sidecar's port inside the pods, named "triage".
const sidecarPort = 7070

// built caches `go build` outputs for the run: one build per package.
var built struct {
	mu   sync.Mutex
	bins map[string]string
	errs map[string]error
}

// buildBinary builds the main package pkg (relative to the module root,
// e.g. "./cmd/triage-sidecar") once per test run into the cluster's
// directory, which Cluster.Stop removes.
func buildBinary(t *testing.T, c *controlPlane, pkg string) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.bins == nil {
		built.bins, built.errs = map[string]string{}, map[string]error{}
	}
	if bin, ok := built.bins[pkg]; ok {
		return bin
	}
	if err, ok := built.errs[pkg]; ok {
		t.Fatal(err)
	}
	bin := filepath.Join(c.Dir(), "bin", filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		built.errs[pkg] = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		t.Fatal(built.errs[pkg])
	}
	built.bins[pkg] = bin
	return bin
}

// sidecarProc is a triage-sidecar process serving one pod's port 7070
// through the fake kubelet.
type sidecarProc struct {
	Namespace, Pod string
	// Addr is where it listens, 127.0.0.1:PORT.
	Addr string
	// AuditLog is its --audit-log file.
	AuditLog string
	// Log is its stdout and stderr.
	Log string

	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// Stop stops the sidecar (SIGTERM, then SIGKILL after 5 s) and waits for
// it. It is safe to call more than once.
func (s *sidecarProc) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// audit returns the sidecar's audit records so far: its complete lines
// (a line being written is left for the next call).
func (s *sidecarProc) audit(t *testing.T) []audit.Record {
	t.Helper()
	b, err := os.ReadFile(s.AuditLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading the audit log of %s/%s: %v", s.Namespace, s.Pod, err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []audit.Record
	for line := range bytes.Lines(b) {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit log %s: %v: %q", s.AuditLog, err, line)
		}
		out = append(out, r)
	}
	return out
}

// logTail is the end of the sidecar's own log, for failure messages.
func (s *sidecarProc) logTail() string {
	b, _ := os.ReadFile(s.Log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// fleetOptions says how startFleet runs the sidecars.
type fleetOptions struct {
	// Replicas is the number of pods (and sidecars).
	Replicas int
	// KubeAuth is --kube-auth: "jwks" (default) or "tokenreview".
	KubeAuth string
	// ServiceAccount is the sidecars' own ServiceAccount in the app's
	// namespace (created if missing), whose token (the API server's
	// audience) they use against the API server; "" means "default".
	ServiceAccount string
	// Classic puts the sidecar in the pod's containers rather than as a
	// native sidecar (an init container with restartPolicy Always).
	Classic bool
	// TLS also serves TLS on --tls-addr with a certificate for
	// DirectServerName from the cluster's CA, declared as the pod's port
	// triage-tls; the pods' IP is then 127.0.0.1, so --direct reaches them.
	TLS bool
}

// DirectServerName is the name in the sidecars' TLS certificate (fleetOptions.TLS).
const DirectServerName = "triage-sidecar.kubetest"

// workload is a Deployment's pods, each with a running sidecar process.
type workload struct {
	Namespace, App string
	Deployment     *appsv1.Deployment
	Pods           []*corev1.Pod
	Sidecars       []*sidecarProc
}

// startFleet creates Deployment app in ns (no controller runs: its pods are
// created here, app-0 ... app-N-1, labelled app=APP and owned by it) and
// starts one real triage-sidecar per pod on 127.0.0.1, exposed as the pod's
// port 7070 by the fake kubelet. Everything stops when the test ends.
func startFleet(t *testing.T, c *controlPlane, ns, app string, o fleetOptions) *workload {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the sidecar's process and runtime views need Linux")
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.KubeAuth == "" {
		o.KubeAuth = "jwks"
	}
	if o.ServiceAccount == "" {
		o.ServiceAccount = "default"
	}
	bin := buildBinary(t, c, "./cmd/triage-sidecar")
	k := c.node(t)
	if err := cluster.CreateServiceAccounts(ctx(t), c.Client(), ns, o.ServiceAccount); err != nil {
		t.Fatal(err)
	}
	tr, err := cluster.MintToken(ctx(t), c.Client(), ns, o.ServiceAccount, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, tokenFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	if err := os.WriteFile(caFile, c.CAData(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}

	labels := map[string]string{"app": app}
	template := podTemplate(labels, o.Classic)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(o.Replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: template,
		},
	}
	d, err = c.Client().AppsV1().Deployments(ns).Create(ctx(t), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Deployment %s/%s: %v", ns, app, err)
	}
	f := &workload{Namespace: ns, App: app, Deployment: d}
	ports, err := cluster.FreePorts(2 * o.Replicas)
	if err != nil {
		t.Fatal(err)
	}
	var tlsArgs []string
	if o.TLS {
		kp, err := c.CA().IssueServing("triage-sidecar", []string{DirectServerName}, nil)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		if err := os.WriteFile(certFile, kp.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		tlsArgs = []string{"--tls-cert=" + certFile, "--tls-key=" + keyFile}
	}
	for i := range o.Replicas {
		p := &corev1.Pod{
			ObjectMeta: *template.ObjectMeta.DeepCopy(),
			Spec:       *template.Spec.DeepCopy(),
		}
		p.Name, p.Namespace = fmt.Sprintf("%s-%d", app, i), ns
		p.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr(true),
		}}
		extra := tlsArgs
		if o.TLS {
			tlsPort := ports[o.Replicas+i]
			extra = append(slices.Clone(tlsArgs), fmt.Sprintf("--tls-addr=127.0.0.1:%d", tlsPort))
			sc := sidecarOfPod(p)
			sc.Ports = append(sc.Ports, corev1.ContainerPort{Name: "triage-tls", ContainerPort: int32(tlsPort), Protocol: corev1.ProtocolTCP})
			p.Status.PodIP = "127.0.0.1"
		}
		p, err := c.CreateRunningPod(ctx(t), p, k.NodeName())
		if err != nil {
			t.Fatal(err)
		}
		s, err := startSidecar(bin, dir, p, ports[i], o.KubeAuth, c.Host(), caFile, tokenFile, extra...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		k.Expose(ns, p.Name, sidecarPort, s.Addr)
		t.Cleanup(func() { k.Unexpose(ns, p.Name, sidecarPort) })
		f.Pods = append(f.Pods, p)
		f.Sidecars = append(f.Sidecars, s)
	}
	for _, s := range f.Sidecars {
		if err := s.waitListening(15 * time.Second); err != nil {
			t.Fatalf("sidecar of %s/%s: %v\n%s", ns, s.Pod, err, s.logTail())
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range f.Sidecars {
				t.Logf("---- sidecar of %s/%s ----\n%s", ns, s.Pod, s.logTail())
			}
		}
	})
	return f
}

// podTemplate is the pods' template: an app container and the sidecar
// with its port named "triage", as the injector makes it.
func podTemplate(labels map[string]string, classic bool) corev1.PodTemplateSpec {
	sc := corev1.Container{
		Name:  "triage-sidecar",
		Image: "ghcr.io/triage-sh/triage-sidecar:dev",
		Args:  []string{"--addr=127.0.0.1:7070", "--insecure-local", "--kube-auth=jwks"},
		Ports: []corev1.ContainerPort{{Name: "triage", ContainerPort: sidecarPort, Protocol: corev1.ProtocolTCP}},
	}
	spec := corev1.PodSpec{
		ServiceAccountName: "default",
		Containers:         []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
	}
	if classic {
		spec.Containers = append(spec.Containers, sc)
	} else {
		sc.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
		spec.InitContainers = []corev1.Container{sc}
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
}

// sidecarOfPod is the pod's triage-sidecar container (native or classic).
func sidecarOfPod(p *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == "triage-sidecar" {
				return &cs[i]
			}
		}
	}
	return nil
}

// startSidecar starts bin for pod p on 127.0.0.1:port, with extra flags.
func startSidecar(bin, dir string, p *corev1.Pod, port int, kubeAuth, apiServer, caFile, tokenFile string, extra ...string) (*sidecarProc, error) {
	s := &sidecarProc{
		Namespace: p.Namespace,
		Pod:       p.Name,
		Addr:      net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		AuditLog:  filepath.Join(dir, p.Name+".audit.jsonl"),
		Log:       filepath.Join(dir, p.Name+".log"),
		exited:    make(chan struct{}),
	}
	logf, err := os.Create(s.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(bin,
		"--addr="+s.Addr,
		"--insecure-local",
		"--kube-auth="+kubeAuth,
		"--kube-api-server="+apiServer,
		"--kube-ca-file="+caFile,
		"--kube-token-file="+tokenFile,
		"--pod-name="+p.Name,
		"--pod-namespace="+p.Namespace,
		"--pod-uid="+string(p.UID),
		"--audit-log="+s.AuditLog,
	)
	s.cmd.Args = append(s.cmd.Args, extra...)
	// Nothing from the test's environment configures it by accident.
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// waitListening waits until the sidecar accepts connections.
func (s *sidecarProc) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("exited before listening: %v", s.waitErr)
		default:
		}
		conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v: %w", s.Addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// accessManifest is deploy/base/access.yaml, from the test's directory.
var accessManifest = filepath.Join("..", "..", "deploy", "base", "access.yaml")

// decodeManifest decodes the YAML documents of path into typed objects;
// documents holding only comments are skipped.
func decodeManifest(path string) ([]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var objs []any
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, len(objs)+1, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" || s == "{}" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, len(objs)+1, err)
		}
		objs = append(objs, obj)
	}
}

// applyAccess creates deploy/base/access.yaml's objects as the admin: its
// namespaced objects in triage-system, its ClusterRole cluster-wide. An
// object that exists already (another test's, of the same name) is
// replaced for this test and restored when it ends; objects it created are
// deleted then, except ServiceAccounts, which other tests share.
func applyAccess(t *testing.T, c *controlPlane) {
	t.Helper()
	objs, err := decodeManifest(accessManifest)
	if err != nil {
		t.Fatal(err)
	}
	ns := cluster.TriageNamespace
	if err := cluster.CreateServiceAccounts(ctx(t), c.Client(), ns, "triage-viewer"); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			kinds["ServiceAccount"]++
			o.Namespace = ns
			if _, err := c.Client().CoreV1().ServiceAccounts(ns).Create(ctx(t), o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("creating ServiceAccount %s/%s: %v", ns, o.Name, err)
			}
		case *rbacv1.Role:
			kinds["Role"]++
			o.Namespace = ns
			roles := c.Client().RbacV1().Roles(ns)
			applyObject(t, "Role "+ns+"/"+o.Name, o,
				func(cx context.Context) (*rbacv1.Role, error) { return roles.Get(cx, o.Name, metav1.GetOptions{}) },
				func(cx context.Context, x *rbacv1.Role) error {
					_, err := roles.Create(cx, x, metav1.CreateOptions{})
					return err
				},
				func(cx context.Context, x *rbacv1.Role) error {
					_, err := roles.Update(cx, x, metav1.UpdateOptions{})
					return err
				},
				func(cx context.Context) error { return roles.Delete(cx, o.Name, metav1.DeleteOptions{}) })
		case *rbacv1.RoleBinding:
			kinds["RoleBinding"]++
			o.Namespace = ns
			bindings := c.Client().RbacV1().RoleBindings(ns)
			applyObject(t, "RoleBinding "+ns+"/"+o.Name, o,
				func(cx context.Context) (*rbacv1.RoleBinding, error) {
					return bindings.Get(cx, o.Name, metav1.GetOptions{})
				},
				func(cx context.Context, x *rbacv1.RoleBinding) error {
					_, err := bindings.Create(cx, x, metav1.CreateOptions{})
					return err
				},
				func(cx context.Context, x *rbacv1.RoleBinding) error {
					_, err := bindings.Update(cx, x, metav1.UpdateOptions{})
					return err
				},
				func(cx context.Context) error { return bindings.Delete(cx, o.Name, metav1.DeleteOptions{}) })
		case *rbacv1.ClusterRole:
			kinds["ClusterRole"]++
			crs := c.Client().RbacV1().ClusterRoles()
			applyObject(t, "ClusterRole "+o.Name, o,
				func(cx context.Context) (*rbacv1.ClusterRole, error) { return crs.Get(cx, o.Name, metav1.GetOptions{}) },
				func(cx context.Context, x *rbacv1.ClusterRole) error {
					_, err := crs.Create(cx, x, metav1.CreateOptions{})
					return err
				},
				func(cx context.Context, x *rbacv1.ClusterRole) error {
					_, err := crs.Update(cx, x, metav1.UpdateOptions{})
					return err
				},
				func(cx context.Context) error { return crs.Delete(cx, o.Name, metav1.DeleteOptions{}) })
		default:
			t.Fatalf("%s: unexpected object %T: teach applyAccess about it", accessManifest, obj)
		}
	}
	// The manifest is what the tests below assume: four tiers, a minter
	// Role and binding each, and the ClusterRole triage-user.
	want := map[string]int{"ServiceAccount": 4, "Role": 4, "RoleBinding": 4, "ClusterRole": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Fatalf("%s holds %v, want %v", accessManifest, kinds, want)
		}
	}
}

// applyObject creates want, or replaces the existing object of its name
// and puts it back when the test ends.
func applyObject[T interface {
	metav1.Object
	DeepCopy() T
}](t *testing.T, what string, want T, get func(context.Context) (T, error), create, update func(context.Context, T) error, del func(context.Context) error) {
	t.Helper()
	old, err := get(ctx(t))
	switch {
	case apierrors.IsNotFound(err):
		if err := create(ctx(t), want); err != nil {
			t.Fatalf("creating %s: %v", what, err)
		}
		t.Cleanup(func() {
			cx, cancel := cleanupCtx()
			defer cancel()
			if err := del(cx); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting %s: %v", what, err)
			}
		})
	case err != nil:
		t.Fatalf("getting %s: %v", what, err)
	default:
		saved := old.DeepCopy()
		w := want.DeepCopy()
		w.SetResourceVersion(old.GetResourceVersion())
		if err := update(ctx(t), w); err != nil {
			t.Fatalf("replacing %s: %v", what, err)
		}
		t.Cleanup(func() {
			cx, cancel := cleanupCtx()
			defer cancel()
			cur, err := get(cx)
			if err != nil {
				t.Errorf("restoring %s: %v", what, err)
				return
			}
			saved.SetResourceVersion(cur.GetResourceVersion())
			if err := update(cx, saved); err != nil {
				t.Errorf("restoring %s: %v", what, err)
			}
		})
	}
}

// cleanupCtx is a context for API calls in t.Cleanup, when the test's own
// context is already cancelled.
func cleanupCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// bindClusterRole binds ClusterRole role to subject (rbacv1.UserKind,
// GroupKind or ServiceAccountKind "ns:name") in namespace, or cluster-wide
// when namespace is "".
func bindClusterRole(t *testing.T, c *controlPlane, namespace, role, kind, subject string) {
	t.Helper()
	sub := rbacv1.Subject{Kind: kind, Name: subject}
	if kind == rbacv1.ServiceAccountKind {
		sub.Namespace, sub.Name, _ = strings.Cut(subject, ":")
	} else {
		sub.APIGroup = rbacv1.GroupName
	}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
	name := strings.NewReplacer(":", "-").Replace(role + "-" + strings.ToLower(kind) + "-" + subject)
	if namespace == "" {
		b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref, Subjects: []rbacv1.Subject{sub}}
		if _, err := c.Client().RbacV1().ClusterRoleBindings().Create(ctx(t), b, metav1.CreateOptions{}); err != nil {
			t.Fatalf("binding ClusterRole %s to %s %s: %v", role, kind, subject, err)
		}
		t.Cleanup(func() {
			cx, cancel := cleanupCtx()
			defer cancel()
			_ = c.Client().RbacV1().ClusterRoleBindings().Delete(cx, name, metav1.DeleteOptions{})
		})
		return
	}
	b := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, RoleRef: ref, Subjects: []rbacv1.Subject{sub}}
	if _, err := c.Client().RbacV1().RoleBindings(namespace).Create(ctx(t), b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("binding ClusterRole %s to %s %s in %s: %v", role, kind, subject, namespace, err)
	}
}

// eventually retries f until it returns nil or timeout passes (RBAC
// changes reach the API server's authorizer asynchronously); it returns
// f's last error.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
