package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// kubeVersion is the kube-apiserver scripts/kube-control-plane.sh builds
	// (k8s.io/kubernetes in test/kube-apiserver/go.mod).
	kubeVersion = "v1.37.2"
	script      = "scripts/kube-control-plane.sh"
	// envAPIServer overrides where the kube-apiserver binary is.
	envAPIServer = "TRIAGE_KUBE_APISERVER"
)

var (
	// cp is the running control plane; nil when the tests skip.
	cp *controlPlane
	// skipReason says why cp is nil.
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		skipReason = "control-plane tests skipped with -short"
		return m.Run()
	}
	etcd, apiserver, why := findBinaries()
	if why != "" {
		skipReason = why
		return m.Run()
	}
	start := time.Now()
	c, err := startControlPlane(etcd, apiserver)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: starting the control plane: %v\n", err)
		if c != nil {
			c.dumpLogs(os.Stderr)
			c.stop()
		}
		return 1
	}
	defer c.stop()
	if err := c.startWebhook(); err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: starting the webhook: %v\n", err)
		c.dumpLogs(os.Stderr)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "kubetest: control plane and webhook ready in %v (%s)\n", time.Since(start).Round(time.Millisecond), c.dir)
	}
	cp = c
	code := m.Run()
	if code != 0 {
		c.dumpLogs(os.Stderr)
	}
	return code
}

// need skips t when there is no control plane.
func need(t *testing.T) *controlPlane {
	t.Helper()
	if cp == nil {
		t.Skip(skipReason)
	}
	return cp
}

// apiServerPath is where the script caches kube-apiserver.
func apiServerPath() string {
	if p := os.Getenv(envAPIServer); p != "" {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "triage", "kube-apiserver-"+kubeVersion, "kube-apiserver")
}

// findBinaries returns etcd's and kube-apiserver's paths, or why not.
func findBinaries() (etcd, apiserver, why string) {
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return "", "", "etcd is not in PATH: run " + script + " (or make test) to install etcd-server and build kube-apiserver " + kubeVersion
	}
	apiserver = apiServerPath()
	if fi, err := os.Stat(apiserver); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", "", fmt.Sprintf("no kube-apiserver at %s ($%s overrides): run %s (or make test) to build kube-apiserver %s (~5 minutes the first time)", apiserver, envAPIServer, script, kubeVersion)
	}
	return etcd, apiserver, ""
}

// controlPlane is etcd plus kube-apiserver on loopback, and the webhook.
type controlPlane struct {
	dir       string
	etcd      *process
	apiserver *process
	ca        *keyPair
	host      string // https://127.0.0.1:PORT
	token     string // an admin (system:masters) bearer token
	client    kubernetes.Interface
	hook      *webhook
}

// process is a child process and its log.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done is closed
}

func startProcess(name, dir, bin string, args ...string) (*process, error) {
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Dir = dir
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v (log: %s)", p.name, p.err, p.log)
	default:
		return nil
	}
}

func (p *process) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *controlPlane) stop() {
	if c.hook != nil {
		c.hook.stop()
	}
	c.apiserver.stop()
	c.etcd.stop()
	if c.dir != "" && os.Getenv("TRIAGE_KUBETEST_KEEP") == "" {
		os.RemoveAll(c.dir)
	}
}

// dumpLogs writes the tail of each log, for failures.
func (c *controlPlane) dumpLogs(w *os.File) {
	for _, p := range []*process{c.etcd, c.apiserver} {
		if p == nil {
			continue
		}
		b, _ := os.ReadFile(p.log)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		fmt.Fprintf(w, "---- tail of %s ----\n%s\n", p.log, b)
	}
}

func startControlPlane(etcdBin, apiserverBin string) (*controlPlane, error) {
	dir, err := os.MkdirTemp(tempBase(), "triage-kubetest-")
	if err != nil {
		return nil, err
	}
	c := &controlPlane{dir: dir}
	ports, err := freePorts(3)
	if err != nil {
		return c, err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.host = fmt.Sprintf("https://127.0.0.1:%d", ports[2])

	c.etcd, err = startProcess("etcd", dir, etcdBin,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdClient,
		"--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer,
		"--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=kubetest="+etcdPeer,
		"--initial-cluster-state=new",
		"--logger=zap",
	)
	if err != nil {
		return c, err
	}

	// Certificates: one CA signs the API server's and the webhook's serving
	// certificates; an ECDSA key signs service account tokens.
	if c.ca, err = newCA(); err != nil {
		return c, err
	}
	serving, err := c.ca.issue("kube-apiserver", []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return c, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return c, err
	}
	saPriv, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return c, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return c, err
	}
	c.token = randomHex(16)
	files := map[string][]byte{
		"ca.crt":      c.ca.certPEM,
		"serving.crt": serving.certPEM,
		"serving.key": serving.keyPEM,
		"sa.key":      pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saPriv}),
		"sa.pub":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"tokens.csv":  []byte(c.token + ",kubetest-admin,kubetest-admin,system:masters\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return c, err
		}
	}
	if err := waitHTTP(etcdClient+"/health", nil, "", 30*time.Second, c.etcd); err != nil {
		return c, fmt.Errorf("etcd: %w", err)
	}

	c.apiserver, err = startProcess("kube-apiserver", dir, apiserverBin,
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file="+filepath.Join(dir, "serving.key"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		// MutatingAdmissionWebhook and PodSecurity are on by default;
		// naming them makes the test's premise explicit.
		"--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,PodSecurity",
		// Bare pods without a service account (and no controller to make
		// the default one).
		"--disable-admission-plugins=ServiceAccount",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
	)
	if err != nil {
		return c, err
	}
	if err := waitHTTP(c.host+"/readyz", c.ca.certPEM, c.token, 120*time.Second, c.apiserver); err != nil {
		return c, fmt.Errorf("kube-apiserver: %w", err)
	}
	c.client, err = kubernetes.NewForConfig(c.restConfig(rest.NoWarnings{}))
	if err != nil {
		return c, err
	}
	return c, nil
}

// restConfig is the admin's configuration; warnings go to wh.
func (c *controlPlane) restConfig(wh rest.WarningHandler) *rest.Config {
	return &rest.Config{
		Host:            c.host,
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.ca.certPEM},
		QPS:             100,
		Burst:           200,
		Timeout:         30 * time.Second,
		WarningHandler:  wh,
	}
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes.
func waitHTTP(url string, caPEM []byte, token string, timeout time.Duration, p *process) error {
	tr := &http.Transport{}
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		if err := p.exited(); err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, lastLines(b.String(), 5))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %s", url, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// keyPair is a certificate and its key, PEM-encoded.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

func newCA() (*keyPair, error) {
	return makeCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "triage-kubetest-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
}

// issue signs a serving certificate for the names and IPs.
func (ca *keyPair) issue(cn string, dns []string, ips []net.IP) (*keyPair, error) {
	return makeCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dns,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
}

func makeCert(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ctx is a context for one API call or wait in a test.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

var errTimeout = errors.New("timed out")
