package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/triage-sh/triage/client/fleet"
	"github.com/triage-sh/triage/client/kube"
	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

// fleetReplicas is the size of the Deployment the fleet tests ask.
const fleetReplicas = 5

// cli runs the triage CLI binary with a kubeconfig.
type cli struct {
	bin, kubeconfig, home string
	// env is added to the CLI's otherwise empty environment.
	env []string
}

// cliResult is one run of the CLI.
type cliResult struct {
	code           int
	stdout, stderr string
}

// newCLI builds cmd/triage and writes a kubeconfig for user in groups,
// namespace ns.
func newCLI(t *testing.T, c *controlPlane, ns, user string, groups ...string) *cli {
	t.Helper()
	bin := buildBinary(t, c, "./cmd/triage")
	home := t.TempDir()
	kc := filepath.Join(home, "kubeconfig")
	if err := c.WriteKubeconfig(kc, ns, user, groups...); err != nil {
		t.Fatal(err)
	}
	return &cli{bin: bin, kubeconfig: kc, home: home}
}

// run runs the CLI with args (and --kubeconfig), bounded by a minute.
func (x *cli) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	cx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cx, x.bin, append(slices.Clone(args), "--kubeconfig", x.kubeconfig)...)
	// Only what the test sets: no KUBECONFIG, TRIAGE_* or terminal.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + x.home}, x.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("triage %s: %v\nstderr:\n%s", strings.Join(args, " "), err, res.stderr)
	}
	return res
}

// ok runs the CLI and fails the test unless it exits 0.
func (x *cli) ok(t *testing.T, args ...string) cliResult {
	t.Helper()
	r := x.run(t, args...)
	if r.code != 0 {
		t.Fatalf("triage %s: exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r
}

// decodeJSON decodes the CLI's -o json output into v.
func decodeJSON(t *testing.T, r cliResult, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("the CLI's JSON: %v\n%s", err, r.stdout)
	}
}

// podKeys are the workload's pods as the CLI names them, NAMESPACE/NAME.
func (w *workload) podKeys() []string {
	keys := make([]string, len(w.Pods))
	for i, p := range w.Pods {
		keys[i] = p.Namespace + "/" + p.Name
	}
	return keys
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// startShop starts Deployment shop with fleetReplicas sidecars and a CLI
// for alice (on call, and in triage:profilers, whose minter Role in
// deploy/base/access.yaml lets her mint viewer and profiler tokens) with
// the ClusterRole triage-user in the namespace.
func startShop(t *testing.T, c *controlPlane) (*workload, *cli) {
	t.Helper()
	applyAccess(t, c)
	ns := namespace(t, c, nil)
	w := startFleet(t, c, ns, "shop", fleetOptions{Replicas: fleetReplicas})
	bindClusterRole(t, c, ns, "triage-user", rbacv1.GroupKind, "oncall")
	x := newCLI(t, c, ns, "alice", "oncall", "triage:profilers")
	// The bindings reach the authorizer asynchronously: wait until the
	// CLI gets through to every pod, while it is refused.
	var last cliResult
	deadline := time.Now().Add(15 * time.Second)
	for {
		last = x.run(t, "explain", "deploy/shop", "-o", "json")
		refused := strings.Contains(last.stderr, "forbidden") || strings.Contains(last.stderr, "may not")
		if last.code == 0 || !refused || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if last.code != 0 {
		t.Fatalf("the CLI could not reach deploy/shop's pods: exit %d\nstderr:\n%s", last.code, last.stderr)
	}
	return w, x
}

// checkMergedGoroutines checks a merged goroutine result over pods: every
// pod is there once, and goroutines are conserved (the merged total is the
// pods' totals, each group's total its pods' counts, the groups' totals
// the pods' matched goroutines).
func checkMergedGoroutines(t *testing.T, m *fleet.MergedGoroutines, pods []string) {
	t.Helper()
	if m.Pods != len(pods) || len(m.Totals) != len(pods) {
		t.Fatalf("merged %d pods with %d totals, want %d", m.Pods, len(m.Totals), len(pods))
	}
	var names []string
	var total, matched int64
	for _, pt := range m.Totals {
		names = append(names, pt.Pod)
		total += pt.Total
		matched += pt.Matched
		if pt.Total <= 0 {
			t.Errorf("pod %s: %d goroutines", pt.Pod, pt.Total)
		}
	}
	if !sameSet(names, pods) {
		t.Errorf("pods %v, want %v", names, pods)
	}
	if m.Total != total {
		t.Errorf("merged total %d, the pods' totals add up to %d", m.Total, total)
	}
	var grouped int64
	for _, g := range m.Groups {
		var sum int64
		for _, pc := range g.Counts {
			sum += pc.Count
			if !slices.Contains(pods, pc.Pod) {
				t.Errorf("group %s counts unknown pod %s", g.Key, pc.Pod)
			}
		}
		if sum != g.Total || len(g.Counts) != g.Pods || g.OfPods != len(pods) {
			t.Errorf("group %s: total %d over %d/%d pods, its counts add up to %d over %d pods", g.Key, g.Total, g.Pods, g.OfPods, sum, len(g.Counts))
		}
		grouped += g.Total
	}
	if grouped != matched || len(m.Groups) == 0 {
		t.Errorf("%d groups hold %d goroutines, the pods matched %d", len(m.Groups), grouped, matched)
	}
}

// The triage CLI asks every pod of a Deployment (five real sidecars behind
// the real API server's port-forward) with tokens it mints from the
// kubeconfig, and merges their answers; a pod that does not answer makes a
// partial result, exit code 1, and a line in the error table.
func TestFleetCLI(t *testing.T) {
	c := needCluster(t)
	w, x := startShop(t, c)
	pods := w.podKeys()

	t.Run("goroutines", func(t *testing.T) {
		var m fleet.MergedGoroutines
		decodeJSON(t, x.ok(t, "goroutines", "deploy/shop", "-n", w.Namespace, "-o", "json"), &m)
		checkMergedGoroutines(t, &m, pods)
	})

	t.Run("goroutines over spdy", func(t *testing.T) {
		spdy := *x
		spdy.env = []string{kube.TransportEnv + "=" + kube.TransportSPDY}
		var m fleet.MergedGoroutines
		decodeJSON(t, spdy.ok(t, "goroutines", "deploy/shop", "-o", "json"), &m)
		checkMergedGoroutines(t, &m, pods)
	})

	t.Run("missing rights are one line", func(t *testing.T) {
		// A fleet command checks the rights every pod would need before it
		// asks any: one line naming what to ask for, not a table of pods.
		// carol has triage-user but may mint only viewer tokens; dave may
		// mint and read the workload but not port-forward.
		bindClusterRole(t, c, w.Namespace, "triage-user", rbacv1.UserKind, "carol")
		if err := cluster.GrantRole(ctx(t), c.Client(), w.Namespace, "reader", rbacv1.UserKind, "dave",
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
		); err != nil {
			t.Fatal(err)
		}
		carol := newCLI(t, c, w.Namespace, "carol", "triage:viewers")
		dave := newCLI(t, c, w.Namespace, "dave", "triage:viewers")
		for _, tc := range []struct {
			who  *cli
			args []string
			want string
		}{
			{carol, []string{"profile", "deploy/shop", "--type", "heap", "-w", filepath.Join(t.TempDir(), "p.pb.gz")}, "triage-profiler-minter"},
			{dave, []string{"goroutines", "deploy/shop"}, "may not create pods/portforward"},
		} {
			var r cliResult
			// The bindings reach the authorizer asynchronously.
			err := eventually(15*time.Second, func() error {
				r = tc.who.run(t, tc.args...)
				if !strings.Contains(r.stderr, tc.want) {
					return errors.New(r.stderr)
				}
				return nil
			})
			if err != nil || r.code != 1 || strings.Contains(r.stderr, "POD") || strings.Contains(strings.TrimSpace(r.stderr), "\n") {
				t.Errorf("triage %s: exit %d, stderr %q; want exit 1 and one line naming %s", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
			}
		}
	})

	t.Run("direct", func(t *testing.T) {
		// --direct: the pod IP over TLS (the sidecar's --tls-addr, the
		// pod's port triage-tls), no port-forward at all.
		ns := namespace(t, c, nil)
		d := startFleet(t, c, ns, "direct", fleetOptions{Replicas: 2, TLS: true})
		bindClusterRole(t, c, ns, "triage-user", rbacv1.GroupKind, "oncall")
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, c.CAData(), 0o600); err != nil {
			t.Fatal(err)
		}
		streams := c.node(t).Streams()
		var m fleet.MergedGoroutines
		var r cliResult
		if err := eventually(15*time.Second, func() error {
			r = x.run(t, "goroutines", "deploy/direct", "-n", ns, "--direct", "--ca", caFile, "--server-name", DirectServerName, "-o", "json")
			if r.code != 0 {
				return errors.New(r.stderr)
			}
			return nil
		}); err != nil {
			t.Fatalf("goroutines --direct: exit %d: %v", r.code, err)
		}
		decodeJSON(t, r, &m)
		checkMergedGoroutines(t, &m, d.podKeys())
		if got := c.node(t).Streams(); got != streams {
			t.Errorf("--direct went through the kubelet's port-forward (%d streams)", got-streams)
		}
		// A wrong name is refused by TLS, not silently accepted.
		bad := x.run(t, "explain", "pod/"+d.Pods[0].Name, "-n", ns, "--direct", "--ca", caFile, "--server-name", "someone-else")
		if bad.code != 1 || !strings.Contains(bad.stderr, "someone-else") {
			t.Errorf("--direct with the wrong --server-name: exit %d, stderr %q", bad.code, bad.stderr)
		}
	})

	t.Run("goroutines of one pod", func(t *testing.T) {
		var one struct {
			Total   int64             `json:"total"`
			Matched int64             `json:"matched"`
			Groups  []json.RawMessage `json:"groups"`
		}
		decodeJSON(t, x.ok(t, "goroutines", "pod/"+w.Pods[1].Name, "-o", "json"), &one)
		if one.Total <= 0 || len(one.Groups) == 0 || one.Matched > one.Total {
			t.Errorf("one pod: total %d, matched %d, %d groups", one.Total, one.Matched, len(one.Groups))
		}
	})

	t.Run("profile", func(t *testing.T) {
		dir := t.TempDir()
		out, perPod := filepath.Join(dir, "heap.pb.gz"), filepath.Join(dir, "pods")
		marks := make([]int, len(w.Sidecars))
		for i, sc := range w.Sidecars {
			marks[i] = auditMark(t, sc)
		}
		var sum fleet.ProfileSummary
		decodeJSON(t, x.ok(t, "profile", "deploy/shop", "--type", "heap", "-w", out, "--per-pod-dir", perPod, "-o", "json"), &sum)
		if sum.Pods != len(pods) || len(sum.Excluded) != 0 {
			t.Errorf("summary: %d pods merged, %d excluded (%+v), want %d and none", sum.Pods, len(sum.Excluded), sum.Excluded, len(pods))
		}
		// The CLI minted the profiler's token for it, not the viewer's.
		for i, sc := range w.Sidecars {
			rec := awaitAudit(t, sc, profileMethod, marks[i])
			if want := saUser(cluster.TriageNamespace, "triage-profiler"); rec.Identity != want || rec.Code != "OK" {
				t.Errorf("pod %s: profile audited as %s (%s), want %s OK", sc.Pod, rec.Identity, rec.Code, want)
			}
		}
		merged := readProfile(t, out)
		// Each pod's values in the merged profile, by its label.
		mergedSums := map[string][]int64{}
		for _, s := range merged.Sample {
			labels := s.Label[fleet.PodLabel]
			if len(labels) != 1 || !slices.Contains(pods, labels[0]) {
				t.Fatalf("a merged sample is labelled pod=%q, want one of %v", labels, pods)
			}
			mergedSums[labels[0]] = addValues(mergedSums[labels[0]], s.Value)
		}
		if len(mergedSums) != len(pods) {
			t.Errorf("the merged profile has samples of %d pods, want %d", len(mergedSums), len(pods))
		}
		files, err := os.ReadDir(perPod)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != len(pods) {
			t.Errorf("--per-pod-dir holds %d files, want %d", len(files), len(pods))
		}
		for _, f := range files {
			pod := strings.Replace(strings.TrimSuffix(f.Name(), ".pb.gz"), "_", "/", 1)
			if !slices.Contains(pods, pod) {
				t.Errorf("--per-pod-dir file %s names no pod of %v", f.Name(), pods)
				continue
			}
			p := readProfile(t, filepath.Join(perPod, f.Name()))
			if len(p.SampleType) != len(merged.SampleType) {
				t.Fatalf("%s has %d sample types, the merged profile %d", f.Name(), len(p.SampleType), len(merged.SampleType))
			}
			var own []int64
			for _, s := range p.Sample {
				own = addValues(own, s.Value)
			}
			// The merge keeps every value of every pod, under its label.
			if !slices.Equal(own, mergedSums[pod]) {
				t.Errorf("pod %s: its own profile sums to %v, its samples in the merged one to %v", pod, own, mergedSums[pod])
			}
		}
	})

	t.Run("explain", func(t *testing.T) {
		var d fleet.ExplainDiff
		decodeJSON(t, x.ok(t, "explain", "deploy/shop", "-o", "json"), &d)
		if d.Pods != len(pods) {
			t.Errorf("explain compared %d pods, want %d", d.Pods, len(pods))
		}
		// The harness runs every sidecar on its own loopback port (in a
		// cluster each pod has its own 127.0.0.1:7070): --addr is the one
		// setting that may differ.
		for _, diff := range d.Differences {
			if diff.Kind != fleet.KindSetting || diff.Name != "addr" {
				t.Errorf("identical sidecars disagree on %s %s: %+v", diff.Kind, diff.Name, diff.Values)
			}
		}
		if len(d.Differences) > 1 {
			t.Errorf("%d differences, want at most the addr setting", len(d.Differences))
		}
	})

	t.Run("proc", func(t *testing.T) {
		var rows []fleet.ProcRow
		decodeJSON(t, x.ok(t, "proc", "-l", "app=shop", "-o", "json"), &rows)
		var names []string
		for _, r := range rows {
			names = append(names, r.Pod)
			if r.Pid <= 0 || r.Threads <= 0 || r.RSSBytes == 0 {
				t.Errorf("row %+v: want a process with threads and memory", r)
			}
		}
		if !sameSet(names, pods) {
			t.Errorf("proc rows for %v, want one per pod %v", names, pods)
		}
	})

	// Last: it stops a sidecar.
	t.Run("a pod down", func(t *testing.T) {
		down := w.Sidecars[2]
		down.Stop()
		r := x.run(t, "goroutines", "deploy/shop", "-o", "json")
		if r.code != 1 {
			t.Fatalf("exit %d with a pod down, want 1\nstderr:\n%s", r.code, r.stderr)
		}
		var m fleet.MergedGoroutines
		decodeJSON(t, r, &m)
		var up []string
		for _, p := range pods {
			if p != down.Namespace+"/"+down.Pod {
				up = append(up, p)
			}
		}
		checkMergedGoroutines(t, &m, up)
		var row string
		for line := range strings.Lines(r.stderr) {
			if strings.HasPrefix(line, down.Pod+" ") {
				row = line
			}
		}
		if !strings.Contains(r.stderr, "POD") || row == "" {
			t.Errorf("stderr has no error table row for %s:\n%s", down.Pod, r.stderr)
		}
		if !strings.Contains(row, "not listening") {
			t.Errorf("the row for %s does not say the sidecar is not listening: %q", down.Pod, row)
		}
		if !strings.Contains(r.stderr, "1 of 5 pods") {
			t.Errorf("stderr does not count the failed pods:\n%s", r.stderr)
		}
	})
}

// addValues adds v to sum element-wise, growing sum as needed.
func addValues(sum, v []int64) []int64 {
	for len(sum) < len(v) {
		sum = append(sum, 0)
	}
	for i, x := range v {
		sum[i] += x
	}
	return sum
}

// readProfile parses and validates a pprof file.
func readProfile(t *testing.T, path string) *profile.Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}
