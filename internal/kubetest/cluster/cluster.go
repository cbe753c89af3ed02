package cluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// KubeVersion is the kube-apiserver scripts/kube-control-plane.sh builds
	// (k8s.io/kubernetes in test/kube-apiserver/go.mod).
	KubeVersion = "v1.37.2"
	// Script builds and caches the binaries.
	Script = "scripts/kube-control-plane.sh"
	// EnvAPIServer overrides where the kube-apiserver binary is.
	EnvAPIServer = "TRIAGE_KUBE_APISERVER"
	// DefaultIssuer is the ServiceAccount token issuer (--service-account-issuer)
	// and, since --api-audiences is left at its default, the only audience
	// the API server accepts.
	DefaultIssuer = "https://kubernetes.default.svc.cluster.local"
	// AdminUser is the static-token user RestConfig authenticates as, in
	// group system:masters.
	AdminUser = "kubetest-admin"
)

// User is a static-token user (--token-auth-file) the cluster creates.
type User struct {
	Name   string
	Groups []string
}

// DefaultUsers are the users Options.Users defaults to: "alice" is on call,
// "bob" is in no group; RBAC grants neither anything until a test does.
var DefaultUsers = []User{
	{Name: "alice", Groups: []string{"oncall"}},
	{Name: "bob"},
}

// Options configures Start. The zero value is a working cluster.
type Options struct {
	// Etcd and APIServer are the binaries; empty means FindBinaries'.
	Etcd, APIServer string
	// Users are the static-token users besides the admin; nil means
	// DefaultUsers.
	Users []User
	// TempDir is where the cluster's directory is made; empty means
	// /dev/shm when it has room (etcd fsyncs every write), else the
	// default temporary directory.
	TempDir string
	// Keep leaves the cluster's directory (data and logs) after Stop.
	Keep bool
	// StartTimeout bounds how long kube-apiserver may take to be ready;
	// zero means two minutes.
	StartTimeout time.Duration
	// ExtraAPIServerArgs are appended to kube-apiserver's flags (a later
	// flag overrides an earlier one).
	ExtraAPIServerArgs []string
}

// Cluster is etcd plus kube-apiserver on loopback ports in a temporary
// directory. Nothing else runs: no scheduler, controller manager or kubelet,
// so pods are API objects only (see StartKubelet and CreateRunningPod).
type Cluster struct {
	dir       string
	keep      bool
	etcd      *process
	apiserver *process
	ca        *KeyPair // serving CA: the API server, webhooks; client certs
	kubeletCA *KeyPair // signs fake kubelets' serving certificates
	host      string   // https://127.0.0.1:PORT
	tokens    map[string]string
	users     map[string]User
	client    kubernetes.Interface

	mu       sync.Mutex
	kubelets []*Kubelet
	podIPs   uint32
}

// FindBinaries returns etcd's and kube-apiserver's paths, or why they cannot
// be used (and how to get them) in why.
func FindBinaries() (etcd, apiserver, why string) {
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return "", "", "etcd is not in PATH: run " + Script + " (or make test) to install etcd-server and build kube-apiserver " + KubeVersion
	}
	apiserver = apiServerPath()
	if fi, err := os.Stat(apiserver); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", "", fmt.Sprintf("no kube-apiserver at %s ($%s overrides): run %s (or make test) to build kube-apiserver %s (~5 minutes the first time)", apiserver, EnvAPIServer, Script, KubeVersion)
	}
	return etcd, apiserver, ""
}

// apiServerPath is where the script caches kube-apiserver.
func apiServerPath() string {
	if p := os.Getenv(EnvAPIServer); p != "" {
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
	return filepath.Join(cache, "triage", "kube-apiserver-"+KubeVersion, "kube-apiserver")
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready. On error, everything started is stopped again (the logs are
// written to os.Stderr first unless ctx was cancelled).
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Etcd == "" || opts.APIServer == "" {
		etcd, apiserver, why := FindBinaries()
		if why != "" {
			return nil, errors.New(why)
		}
		if opts.Etcd == "" {
			opts.Etcd = etcd
		}
		if opts.APIServer == "" {
			opts.APIServer = apiserver
		}
	}
	if opts.Users == nil {
		opts.Users = DefaultUsers
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.TempDir == "" {
		opts.TempDir = tempBase()
	}
	dir, err := os.MkdirTemp(opts.TempDir, "triage-kubetest-")
	if err != nil {
		return nil, fmt.Errorf("creating the cluster's directory: %w", err)
	}
	c := &Cluster{dir: dir, keep: opts.Keep, tokens: map[string]string{}, users: map[string]User{}}
	if err := c.start(ctx, opts); err != nil {
		if ctx.Err() == nil {
			c.DumpLogs(os.Stderr)
		}
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	ports, err := FreePorts(3)
	if err != nil {
		return err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.host = fmt.Sprintf("https://127.0.0.1:%d", ports[2])

	// etcd first: it starts while the keys are made.
	c.etcd, err = startProcess("etcd", c.dir, opts.Etcd,
		"--name=kubetest",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdClient,
		"--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer,
		"--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=kubetest="+etcdPeer,
		"--initial-cluster-state=new",
		"--logger=zap",
	)
	if err != nil {
		return err
	}

	// One CA signs the API server's serving certificate, webhooks' serving
	// certificates and the API server's client certificate towards
	// kubelets; another signs kubelets' serving certificates, as in a
	// kubeadm cluster; an ECDSA key signs ServiceAccount tokens.
	if c.ca, err = NewCA("triage-kubetest-ca"); err != nil {
		return err
	}
	if c.kubeletCA, err = NewCA("triage-kubetest-kubelet-ca"); err != nil {
		return err
	}
	serving, err := c.ca.IssueServing("kube-apiserver", []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	kubeletClient, err := c.ca.IssueClient("kube-apiserver-kubelet-client")
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saPriv, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	tokens, err := c.tokenFile(opts.Users)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":             c.ca.CertPEM,
		"kubelet-ca.crt":     c.kubeletCA.CertPEM,
		"serving.crt":        serving.CertPEM,
		"serving.key":        serving.KeyPEM,
		"kubelet-client.crt": kubeletClient.CertPEM,
		"kubelet-client.key": kubeletClient.KeyPEM,
		"sa.key":             pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saPriv}),
		"sa.pub":             pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"tokens.csv":         tokens,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), b, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	if err := waitHTTP(ctx, etcdClient+"/health", nil, "", 30*time.Second, c.etcd); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	f := func(name string) string { return filepath.Join(c.dir, name) }
	args := []string{
		"--etcd-servers=" + etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir=" + f("apiserver-certs"),
		"--tls-cert-file=" + f("serving.crt"),
		"--tls-private-key-file=" + f("serving.key"),
		"--token-auth-file=" + f("tokens.csv"),
		"--authorization-mode=RBAC",
		// MutatingAdmissionWebhook and PodSecurity are on by default;
		// naming them makes the tests' premise explicit.
		"--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,PodSecurity",
		// Bare pods without a service account (and no controller to make
		// the default one).
		"--disable-admission-plugins=ServiceAccount",
		// --api-audiences stays at its default, the issuer alone: tokens
		// minted for another audience (triage.dev) are refused.
		"--service-account-issuer=" + DefaultIssuer,
		"--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		// Fake kubelets (StartKubelet): the API server verifies their
		// serving certificates and presents a client certificate.
		"--kubelet-certificate-authority=" + f("kubelet-ca.crt"),
		"--kubelet-client-certificate=" + f("kubelet-client.crt"),
		"--kubelet-client-key=" + f("kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
	}
	c.apiserver, err = startProcess("kube-apiserver", c.dir, opts.APIServer, append(args, opts.ExtraAPIServerArgs...)...)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, c.host+"/readyz", c.ca.CertPEM, c.tokens[AdminUser], opts.StartTimeout, c.apiserver); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	cfg := c.RestConfig()
	cfg.WarningHandler = rest.NoWarnings{}
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	return nil
}

// tokenFile makes the --token-auth-file: the admin and users, each with a
// random token.
func (c *Cluster) tokenFile(users []User) ([]byte, error) {
	var b bytes.Buffer
	add := func(u User) error {
		if u.Name == "" || strings.ContainsAny(u.Name, ",\"\n") {
			return fmt.Errorf("static user %q: the name must be non-empty, without commas, quotes or newlines", u.Name)
		}
		if _, dup := c.users[u.Name]; dup {
			return fmt.Errorf("static user %q listed twice", u.Name)
		}
		for _, g := range u.Groups {
			if g == "" || strings.ContainsAny(g, ",\"\n") {
				return fmt.Errorf("static user %q: group %q must be non-empty, without commas, quotes or newlines", u.Name, g)
			}
		}
		tok := RandomHex(16)
		c.tokens[u.Name], c.users[u.Name] = tok, u
		// token,user,uid[,"group1,group2"]
		fmt.Fprintf(&b, "%s,%s,%s", tok, u.Name, u.Name)
		if len(u.Groups) > 0 {
			fmt.Fprintf(&b, ",%q", strings.Join(u.Groups, ","))
		}
		b.WriteByte('\n')
		return nil
	}
	if err := add(User{Name: AdminUser, Groups: []string{"system:masters"}}); err != nil {
		return nil, err
	}
	for _, u := range users {
		if err := add(u); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// Stop stops the fake kubelets, kube-apiserver and etcd, and removes the
// directory unless Options.Keep. It is safe to call more than once.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	c.mu.Lock()
	kubelets := c.kubelets
	c.kubelets = nil
	c.mu.Unlock()
	for _, k := range kubelets {
		k.Stop()
	}
	c.apiserver.stop()
	c.etcd.stop()
	if c.dir != "" && !c.keep {
		os.RemoveAll(c.dir)
	}
}

// Dir is the cluster's directory: certificates, etcd's data and the logs
// (etcd.log, kube-apiserver.log). Tests may put their own files there.
func (c *Cluster) Dir() string { return c.dir }

// Host is the API server's URL, https://127.0.0.1:PORT.
func (c *Cluster) Host() string { return c.host }

// CA is the certificate authority the API server's serving certificate
// chains to; it also signs webhooks' serving certificates (IssueServing).
func (c *Cluster) CA() *KeyPair { return c.ca }

// CAData is the serving CA's certificate, PEM-encoded: what a client puts
// in rest.Config.CAData or a kubeconfig's certificate-authority-data.
func (c *Cluster) CAData() []byte { return bytes.Clone(c.ca.CertPEM) }

// IssuerURL is the ServiceAccount token issuer: tokens' iss claim, and the
// API server's only accepted audience.
func (c *Cluster) IssuerURL() string { return DefaultIssuer }

// Client is an admin client (system:masters) that drops warnings.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// RestConfig is a new admin (system:masters) configuration.
func (c *Cluster) RestConfig() *rest.Config {
	return c.TokenConfig(c.tokens[AdminUser])
}

// TokenConfig is a new configuration that authenticates with a bearer
// token, such as a ServiceAccount token from MintToken.
func (c *Cluster) TokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData()},
		// A loopback API server for one user: set up hundreds of pods
		// without client-side throttling.
		QPS:     1000,
		Burst:   2000,
		Timeout: 30 * time.Second,
	}
}

// UserConfig is a new configuration acting as user. With no groups and a
// static user (Options.Users), it authenticates with that user's token, so
// the user has the groups Options gave it; otherwise the admin impersonates
// user in groups (system:authenticated is added by the API server either
// way). RBAC applies to the result as to any user.
func (c *Cluster) UserConfig(user string, groups ...string) *rest.Config {
	if tok, ok := c.tokens[user]; ok && len(groups) == 0 && user != AdminUser {
		return c.TokenConfig(tok)
	}
	cfg := c.RestConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return cfg
}

// DumpLogs writes the tail of etcd's and kube-apiserver's logs to w.
func (c *Cluster) DumpLogs(w io.Writer) {
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

// waitHTTP polls url until it answers 200, p exits, ctx ends or timeout
// passes.
func waitHTTP(ctx context.Context, url string, caPEM []byte, token string, timeout time.Duration, p *process) error {
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(io.LimitReader(resp.Body, 1<<20))
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
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %s)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// FreePorts returns n distinct loopback ports that were free a moment ago.
func FreePorts(n int) ([]int, error) {
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
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RandomHex is n random bytes, hex-encoded.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
