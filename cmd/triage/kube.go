package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/client/kube"
	"github.com/triage-sh/triage/internal/auth"
)

// kubeState is the Kubernetes side of a command: its target (pod/NAME,
// deploy/NAME, sts/NAME, ds/NAME or -l) and the connections it opened.
type kubeState struct {
	flags    kube.Flags
	selector string
	// targetArg is the target given on the command line; "" with no -l
	// means none: the command talks to --addr as before.
	targetArg string
	k         *kube.Kube
	closers   []func() error
}

// addKubeFlags registers the Kubernetes flags on the root command.
func (a *app) addKubeFlags(f *pflag.FlagSet) {
	a.kube.flags.AddFlags(f)
	f.StringVarP(&a.kube.selector, "selector", "l", "", "ask every pod matching this label selector (with -n)")
}

// isTargetArg reports whether s names a Kubernetes object (TYPE/NAME).
func isTargetArg(s string) bool {
	_, ok := kube.TypedKind(s)
	return ok
}

// targetArgs is the Args of a command that takes nothing but an optional
// target: TYPE/NAME, or a bare pod NAME. It records the target.
func (a *app) targetArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("%s takes at most one target (pod/NAME, deploy/NAME, sts/NAME, ds/NAME), got %q", cmd.Name(), args)
	}
	a.takeTarget(args, true)
	return nil
}

// takeTarget records a leading target of args and returns the rest. A bare
// NAME is a pod only where bare is true (commands without other
// arguments); elsewhere a target is TYPE/NAME.
func (a *app) takeTarget(args []string, bare bool) []string {
	if len(args) > 0 && (isTargetArg(args[0]) || bare) {
		a.kube.targetArg = args[0]
		return args[1:]
	}
	return args
}

// kubeMode reports whether the command asks pods in Kubernetes.
func (a *app) kubeMode() bool { return a.kube.targetArg != "" || a.kube.selector != "" }

// target parses the command's target.
func (a *app) target() (kube.Target, error) {
	var args []string
	if a.kube.targetArg != "" {
		args = []string{a.kube.targetArg}
	}
	t, err := kube.ParseTarget(args, a.kube.selector)
	if err != nil {
		return kube.Target{}, usageError{err.Error()}
	}
	return t, nil
}

// kubeClient builds the Kubernetes client once per command.
func (a *app) kubeClient() (*kube.Kube, error) {
	if a.kube.k != nil {
		return a.kube.k, nil
	}
	if a.conn.Addr != client.DefaultAddr && a.conn.Addr != "" && a.kubeMode() {
		return nil, usageError{"--addr names one sidecar and a target names pods: give one or the other"}
	}
	tmpl := a.conn
	tmpl.Timeout = a.timeout
	k, err := kube.New(a.kube.flags, tmpl)
	if err != nil {
		return nil, err
	}
	a.kube.k = k
	return k, nil
}

// resolve lists the target's pods; skipped pods stay in the list with
// their reason.
func (a *app) resolve(ctx context.Context) (*kube.Kube, kube.Target, []kube.Pod, error) {
	t, err := a.target()
	if err != nil {
		return nil, t, nil, err
	}
	k, err := a.kubeClient()
	if err != nil {
		return nil, t, nil, err
	}
	pods, err := k.Resolve(ctx, t)
	if err != nil {
		return nil, t, nil, err
	}
	return k, t, pods, nil
}

// dialKube connects to the one pod the target names, with a token of tier.
func (a *app) dialKube(ctx context.Context, tier auth.Role) (*client.Client, error) {
	k, t, pods, err := a.resolve(ctx)
	if err != nil {
		return nil, err
	}
	var live []kube.Pod
	var skipped []string
	for _, p := range pods {
		if p.Skip != "" {
			skipped = append(skipped, fmt.Sprintf("%s: %s", p.Name, p.Skip))
			continue
		}
		live = append(live, p)
	}
	switch {
	case len(live) == 0:
		return nil, fmt.Errorf("no pod of %s can be asked: %s", t, strings.Join(skipped, "; "))
	case len(live) > 1:
		names := make([]string, len(live))
		for i, p := range live {
			names[i] = "pod/" + p.Name
		}
		return nil, usageError{fmt.Sprintf("%s has %d pods and this command asks one: pick one of %s (goroutines, profile, explain and proc ask them all)",
			t, len(live), strings.Join(names, " "))}
	}
	c, closeFn, err := k.Dial(ctx, live[0], string(tier))
	if err != nil {
		return nil, err
	}
	a.kube.closers = append(a.kube.closers, closeFn)
	return c, nil
}

// fleetMode reports whether the target may name several pods: a workload
// or a selector. A pod target keeps the single-pod output.
func (a *app) fleetMode() bool {
	if a.kube.selector != "" {
		return true
	}
	kind, ok := kube.TypedKind(a.kube.targetArg)
	return ok && kind != kube.KindPod
}

// closeKube closes the port-forwards the command opened.
func (a *app) closeKube() error {
	var errs []error
	for _, f := range a.kube.closers {
		errs = append(errs, f())
	}
	a.kube.closers = nil
	return errors.Join(errs...)
}
