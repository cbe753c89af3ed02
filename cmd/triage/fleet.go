package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"google.golang.org/protobuf/types/known/durationpb"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/client/fleet"
	"github.com/triage-sh/triage/client/kube"
	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// maxPodProfileBytes bounds one pod's profile held in memory for the merge.
const maxPodProfileBytes = 64 << 20

// podWork is what a fleet command does with one pod's sidecar. It starts
// holding a concurrency slot; timed work gives it back while the sidecar
// samples (see fleetProfile).
type podWork[T any] func(ctx context.Context, p kube.Pod, c *client.Client, s *kube.Slot) (T, error)

// fanOut asks every pod of the command's target, with a token of tier, at
// most --concurrency at a time, and prints the pods that failed or were
// skipped on stderr. It returns the results of the pods that answered (in
// pod order) and an error for the exit code when some did not.
func fanOut[T any](ctx context.Context, a *app, tier auth.Role, align bool, work podWork[T]) ([]kube.Result[T], error) {
	k, t, pods, err := a.resolve(ctx)
	if err != nil {
		return nil, err
	}
	if err := preflight(ctx, k, tier); err != nil {
		return nil, err
	}
	opts := kube.FanOutOptions{
		Concurrency: k.Flags.Concurrency, PodTimeout: k.Flags.PodTimeout, Timeout: k.Flags.Timeout,
		Progress: a.stderr, ProgressTTY: a.stderrTerminal, AlignStart: align,
	}
	results := kube.FanOut(ctx, pods, opts, func(ctx context.Context, p kube.Pod, s *kube.Slot) (T, error) {
		c, closeFn, err := k.Dial(ctx, p, string(tier))
		if err != nil {
			var zero T
			return zero, err
		}
		defer closeFn()
		return work(ctx, p, c, s)
	})
	var ok []kube.Result[T]
	failed := 0
	for _, r := range results {
		var skip *kube.SkipError
		switch {
		case r.Err == nil:
			ok = append(ok, r)
		case !errors.As(r.Err, &skip):
			failed++
		}
	}
	if len(ok) < len(results) {
		if _, err := kube.ErrorTable(a.stderr, results); err != nil {
			return nil, err
		}
	}
	switch {
	case len(ok) == 0:
		return nil, fmt.Errorf("no pod of %s answered (%d pods: see the table above)", t, len(results))
	case failed > 0:
		return ok, runError{fmt.Errorf("%d of %d pods of %s failed (listed above); the result covers the %d that answered", failed, len(results), t, len(ok))}
	}
	return ok, nil
}

// preflight checks once what every pod would need, so that a missing
// permission is one clear error rather than a table of a hundred: the
// tier's token can be minted, and (through the API server) port-forwarding
// is allowed in the namespace.
func preflight(ctx context.Context, k *kube.Kube, tier auth.Role) error {
	if _, err := k.Tokens.Token(ctx, string(tier), k.Namespace); err != nil {
		return err
	}
	if k.Flags.Direct {
		return nil
	}
	// create is what SPDY needs (the websocket upgrade also checks get,
	// and falls back to SPDY without it).
	review, err := k.Clientset.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: k.Namespace, Verb: "create", Resource: "pods", Subresource: "portforward",
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil // cannot ask: let the port-forwards say what is wrong
	}
	if !review.Status.Allowed {
		return fmt.Errorf("you may not create pods/portforward in namespace %s, which reaching the sidecars needs: ask for the ClusterRole triage-user bound there (or use --direct)", k.Namespace)
	}
	return nil
}

// values returns the results' values, in order.
func values[T any](results []kube.Result[T]) []T {
	vs := make([]T, len(results))
	for i, r := range results {
		vs[i] = r.Value
	}
	return vs
}

// fleetGoroutines merges the goroutine groups of every pod.
func (a *app) fleetGoroutines(ctx context.Context, req *goroutinesRequest) error {
	switch {
	case req.raw, req.file != "", req.diff != "", req.save != "":
		return usageError{"--raw, --file, --diff and --save work on one pod: give pod/NAME (a workload or -l merges every pod's groups)"}
	}
	r := &triagev1.GetGoroutinesRequest{Target: req.tgt, Path: req.pth, Filter: req.filter}
	if req.minWait > 0 {
		r.MinWait = durationpb.New(req.minWait)
	}
	results, ferr := fanOut(ctx, a, auth.Viewer, false, func(ctx context.Context, p kube.Pod, c *client.Client, _ *kube.Slot) (fleet.PodGoroutines, error) {
		sum, groups, err := c.Goroutines(ctx, r)
		return fleet.PodGoroutines{Pod: p.String(), Summary: sum, Groups: groups}, err
	})
	if results == nil {
		return ferr
	}
	m := fleet.MergeGoroutines(values(results))
	var err error
	if a.json() {
		err = render.WriteFleetJSON(a.stdout, m)
	} else {
		err = render.FleetGoroutines(a.stdout, m, render.FleetGoroutineOptions{Stacks: req.full, Goroutine: req.opts}, a.style())
	}
	return errors.Join(err, ferr)
}

// fleetExplain shows what differs between the pods.
func (a *app) fleetExplain(ctx context.Context) error {
	results, ferr := fanOut(ctx, a, auth.Viewer, false, func(ctx context.Context, p kube.Pod, c *client.Client, _ *kube.Slot) (fleet.PodExplain, error) {
		resp, err := c.Explain(ctx)
		return fleet.PodExplain{Pod: p.String(), Explain: resp}, err
	})
	if results == nil {
		return ferr
	}
	pods := values(results)
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Pod
	}
	d := fleet.DiffExplain(pods)
	var err error
	if a.json() {
		err = render.WriteFleetJSON(a.stdout, d)
	} else {
		err = render.FleetExplain(a.stdout, d, names, a.style())
	}
	return errors.Join(err, ferr)
}

// fleetProc shows one row per pod: its app process (or the sidecar).
func (a *app) fleetProc(ctx context.Context) error {
	results, ferr := fanOut(ctx, a, auth.Viewer, false, func(ctx context.Context, p kube.Pod, c *client.Client, _ *kube.Slot) (fleet.PodProc, error) {
		list, err := c.ListProcesses(ctx)
		if err != nil {
			return fleet.PodProc{}, err
		}
		restarts := p.Restarts
		pp := fleet.PodProc{Pod: p.String(), List: list, Restarts: &restarts}
		if sel := fleet.SelectProcess(list); sel != nil {
			if pp.Process, err = c.GetProcess(ctx, int(sel.GetPid()), false); err != nil {
				return fleet.PodProc{}, err
			}
		}
		return pp, nil
	})
	if results == nil {
		return ferr
	}
	rows := fleet.ProcRows(values(results))
	var err error
	if a.json() {
		err = render.WriteFleetJSON(a.stdout, rows)
	} else {
		err = render.FleetProcs(a.stdout, rows, a.style())
	}
	return errors.Join(err, ferr)
}

// fleetProfile takes one profile per pod over the same window and merges
// them, each sample labelled pod=NAMESPACE/NAME. Every pod connects first
// (at most --concurrency at a time), then all start sampling together with
// no slot held, and each takes a slot again to download: a 5-second profile
// of 100 pods takes about 5 seconds plus the connections, not 50.
func (a *app) fleetProfile(ctx context.Context, f profileFlags, req *triagev1.ProfileRequest, name string) error {
	if err := fleet.Mergeable(req.GetType()); err != nil {
		return usageError{err.Error() + " (or give pod/NAME)"}
	}
	if f.perPodDir != "" {
		if err := os.MkdirAll(f.perPodDir, 0o755); err != nil {
			return fmt.Errorf("--per-pod-dir: %w", err)
		}
	}
	results, ferr := fanOut(ctx, a, auth.Profiler, true, func(ctx context.Context, p kube.Pod, c *client.Client, s *kube.Slot) (fleet.PodProfile, error) {
		if err := s.WaitStart(ctx); err != nil {
			return fleet.PodProfile{}, err
		}
		var once sync.Once
		w := &limitedBuffer{max: maxPodProfileBytes}
		_, err := c.Profile(ctx, req, w, client.OnProgress(func(int64) {
			once.Do(func() { _ = s.Reacquire(ctx) })
		}))
		if err != nil {
			return fleet.PodProfile{}, err
		}
		return fleet.PodProfile{Pod: p.String(), Data: w.buf}, nil
	})
	if results == nil {
		return ferr
	}
	pods := values(results)
	for _, p := range pods {
		if f.perPodDir != "" {
			file := filepath.Join(f.perPodDir, strings.ReplaceAll(p.Pod, "/", "_")+".pb.gz")
			data := p.Data
			if err := writeFileAtomic(file, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
				return err
			}
		}
	}
	merged, excluded, err := fleet.MergeProfiles(pods)
	if err != nil {
		return errors.Join(err, ferr)
	}
	for _, e := range excluded {
		fmt.Fprintf(a.stderr, "warning: %s left out of the merged %s: %v\n", e.Pod, name, e.Err)
	}
	if f.out == "-" {
		err = merged.Write(a.stdout)
	} else {
		err = writeFileAtomic(f.out, merged.Write)
	}
	if err != nil {
		return errors.Join(err, ferr)
	}
	if f.out == "-" {
		return ferr
	}
	sum := fleet.SummarizeProfile(merged, excluded)
	if a.json() {
		err = render.WriteFleetJSON(a.stdout, sum)
	} else {
		err = render.FleetProfile(a.stdout, sum, f.out, a.style())
	}
	return errors.Join(err, ferr)
}

// limitedBuffer holds at most max bytes; more is an error.
type limitedBuffer struct {
	buf []byte
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > b.max {
		return 0, fmt.Errorf("the profile is larger than %d MiB: take it from one pod (pod/NAME) with -w FILE", b.max>>20)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}
