package kubetest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/triage-sh/triage/internal/kubetest/cluster"
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
	etcd, apiserver, why := cluster.FindBinaries()
	if why != "" {
		skipReason = why
		return m.Run()
	}
	start := time.Now()
	cx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := cluster.Start(cx, cluster.Options{
		Etcd:      etcd,
		APIServer: apiserver,
		Keep:      os.Getenv("TRIAGE_KUBETEST_KEEP") != "",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: starting the control plane: %v\n", err)
		return 1
	}
	c := &controlPlane{Cluster: cl}
	defer c.stop()
	// A broken webhook fails the webhook's tests, not the cluster's.
	if err := c.startWebhook(); err != nil {
		c.hookErr = fmt.Errorf("starting the webhook: %w", err)
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", c.hookErr)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "kubetest: control plane and webhook ready in %v (%s)\n", time.Since(start).Round(time.Millisecond), c.Dir())
	}
	cp = c
	code := m.Run()
	if code != 0 {
		c.DumpLogs(os.Stderr)
	}
	return code
}

// need skips t when there is no control plane, and fails it when the
// webhook did not start.
func need(t *testing.T) *controlPlane {
	t.Helper()
	c := needCluster(t)
	if c.hookErr != nil {
		t.Fatal(c.hookErr)
	}
	return c
}

// needCluster is need for tests that do not use the webhook.
func needCluster(t *testing.T) *controlPlane {
	t.Helper()
	if cp == nil {
		t.Skip(skipReason)
	}
	return cp
}

// controlPlane is the cluster, the webhook, and a fake kubelet started on
// first use.
type controlPlane struct {
	*cluster.Cluster
	hook    *webhook
	hookErr error // why hook is nil

	kubeletOnce sync.Once
	kubelet     *cluster.Kubelet
	kubeletErr  error
}

func (c *controlPlane) stop() {
	if c.hook != nil {
		c.hook.stop()
	}
	c.Stop()
}

// restConfig is the admin's configuration; warnings go to wh.
func (c *controlPlane) restConfig(wh rest.WarningHandler) *rest.Config {
	cfg := c.RestConfig()
	cfg.WarningHandler = wh
	return cfg
}

// node is the fake kubelet the port-forward tests share.
func (c *controlPlane) node(t *testing.T) *cluster.Kubelet {
	t.Helper()
	c.kubeletOnce.Do(func() { c.kubelet, c.kubeletErr = c.StartKubelet("kubetest-node") })
	if c.kubeletErr != nil {
		t.Fatalf("starting the fake kubelet: %v", c.kubeletErr)
	}
	return c.kubelet
}

// randomHex is n random bytes in hex.
func randomHex(n int) string { return cluster.RandomHex(n) }

// ctx is a context for one API call or wait in a test.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

var errTimeout = errors.New("timed out")
