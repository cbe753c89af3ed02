package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/triage-sh/triage/internal/inject"
	"github.com/triage-sh/triage/internal/version"
)

// injectFlags are the flags of `triage inject`.
type injectFlags struct {
	file, namespace, nsLabels, image string
}

func (a *app) injectCommand() *cobra.Command {
	var f injectFlags
	cmd := &cobra.Command{
		Use:   "inject -f FILE|- [--namespace NS] [--namespace-labels k=v,...] [--image IMAGE]",
		Short: "Add the triage sidecar to manifests, as the admission webhook would",
		Long: `inject reads Kubernetes manifests (YAML or JSON, one or many documents, Lists) and writes
them to stdout as YAML with the triage sidecar added to the Pods and pod templates (Deployments,
StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs) that opt in, for clusters without the
webhook:  triage inject -f app.yaml | kubectl apply -f -

Objects that do not opt in come out unchanged. A pod opts in with the label
triage.dev/inject=true, or by living in a namespace labelled triage.dev/injection=enabled: give
the namespace's labels with --namespace-labels (pod-security.kubernetes.io/enforce included) and
the decision is the webhook's, capture profile and all. What was done to each object is said on
stderr.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error { return a.inject(f) }),
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "filename", "f", "", "manifests to read (- for stdin); required")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "namespace of objects that name none (default: default)")
	fl.StringVar(&f.nsLabels, "namespace-labels", "", "labels of the objects' namespace, k=v,k2=v2, to decide as the webhook would")
	fl.StringVar(&f.image, "image", "", "the sidecar image (default: the injector's)")
	return cmd
}

func (a *app) inject(f injectFlags) error {
	if f.file == "" {
		return usageError{"-f FILE is required (-f - reads stdin)"}
	}
	labels, err := inject.ParseLabels(f.nsLabels)
	if err != nil {
		return usageError{fmt.Sprintf("--namespace-labels: %v", err)}
	}
	cfg := inject.DefaultConfig()
	cfg.Version = version.Build().GetVersion()
	if f.image != "" {
		cfg.Image = f.image
	}
	var r io.Reader = a.stdin
	if f.file != "-" {
		fh, err := os.Open(f.file)
		if err != nil {
			return runError{fmt.Errorf("read manifests: %w", err)}
		}
		defer fh.Close()
		r = fh
	} else if r == nil {
		r = strings.NewReader("")
	}
	out, reports, err := inject.InjectManifests(r, inject.ManifestOptions{Config: cfg, Namespace: f.namespace, NamespaceLabels: labels})
	if err != nil {
		return runError{fmt.Errorf("inject %s: %w", f.file, err)}
	}
	if _, err := a.stdout.Write(out); err != nil {
		return runError{fmt.Errorf("write output: %w", err)}
	}
	for _, rep := range reports {
		what := fmt.Sprintf("%s/%s", strings.ToLower(rep.Kind), rep.Name)
		if rep.Namespace != "" {
			what = rep.Namespace + "/" + what
		}
		switch {
		case rep.Injected:
			capture := "capture off"
			if rep.Status.Capture {
				capture = "capture on"
			} else if rep.Status.CaptureWithheld != "" {
				capture = "capture withheld: " + rep.Status.CaptureWithheld
			}
			fmt.Fprintf(a.stderr, "%s: injected (%s sidecar, uid %d, %s; %s)\n", what, rep.Status.Mode, rep.Status.RunAsUser, capture, rep.Decision.Reason)
		default:
			fmt.Fprintf(a.stderr, "%s: unchanged (%s)\n", what, rep.Decision.Reason)
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(a.stderr, "%s: warning: %s\n", what, w)
		}
	}
	return nil
}
