package main

import (
	"github.com/spf13/cobra"

	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
)

func (a *app) runtimeCommand() *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:   "runtime [pod/NAME] [--target app|self]",
		Short: "How is the Go runtime doing? GC, heap, goroutines, scheduling, settings, build",
		Long: `runtime shows a snapshot of the target's Go runtime: GOMAXPROCS, GOGC, GOMEMLIMIT, the
number of goroutines, the live heap and the GC's goal, GC cycles, CPU share and pauses,
scheduling latency, uptime and build. -o json adds every runtime/metrics sample.`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			tgt, err := parseTarget(target)
			if err != nil {
				return err
			}
			c, err := a.dial(cmd.Context(), auth.Viewer)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.RuntimeStats(cmd.Context(), tgt)
			if err != nil {
				return err
			}
			if a.json() {
				return render.JSON(a.stdout, resp)
			}
			return render.Runtime(a.stdout, resp, a.style())
		}),
	}
	cmd.Flags().StringVar(&target, "target", "", targetHelp)
	return cmd
}
