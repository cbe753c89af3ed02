package kube_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/client/kube"
)

// A fleet command: resolve the target, then profile every pod at once.
// Each function holds its slot while connecting, gives it back while the
// sidecars sample (all starting together), and takes one again to
// download.
func ExampleFanOut() {
	ctx := context.Background()
	k, err := kube.New(kube.Flags{Namespace: "shop"}, client.Options{Timeout: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	target, err := kube.ParseTarget([]string{"deploy/web"}, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	pods, err := k.Resolve(ctx, target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	opts := kube.FanOutOptions{Concurrency: k.Flags.Concurrency, PodTimeout: k.Flags.PodTimeout, Timeout: k.Flags.Timeout, Progress: os.Stderr, AlignStart: true}
	results := kube.FanOut(ctx, pods, opts, func(ctx context.Context, p kube.Pod, s *kube.Slot) (string, error) {
		c, closeFn, err := k.Dial(ctx, p, "profiler")
		if err != nil {
			return "", err
		}
		defer closeFn()
		if err := s.WaitStart(ctx); err != nil { // releases the slot
			return "", err
		}
		// ... start the profile; the sidecar samples with no slot held ...
		if err := s.Reacquire(ctx); err != nil {
			return "", err
		}
		// ... download the profile ...
		b, err := c.Version(ctx)
		return b.GetVersion(), err
	})
	if n, _ := kube.ErrorTable(os.Stderr, results); n > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d pods failed\n", n, len(results))
	}
}
