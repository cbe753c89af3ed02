package main

import (
	"github.com/spf13/cobra"

	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func (a *app) procCommand() *cobra.Command {
	var (
		pid     int
		sockets bool
		deps    bool
	)
	cmd := &cobra.Command{
		Use:   "proc [TARGET] [--pid N [--sockets] [--deps]]",
		Short: "Process state: the visible processes, or everything about one (--pid)",
		Long: `Without --pid, proc lists the processes the sidecar can see. With --pid N it shows
everything about one: command line, uptime, threads, memory, file descriptors, sockets,
cgroup limits, usage, throttling and pressure, OOM kills, Go build and environment.
--pid 0 is the sidecar itself.`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			hasPid := cmd.Flags().Changed("pid")
			switch {
			case hasPid && pid < 0:
				return usageError{"--pid must be 0 (the sidecar) or a pid from `triage proc`"}
			case !hasPid && (sockets || deps):
				return usageError{"--sockets and --deps need --pid"}
			}
			if a.fleetMode() {
				if hasPid {
					return usageError{"--pid names a process in one pod: give pod/NAME, or drop --pid for one row per pod"}
				}
				return a.fleetProc(cmd.Context())
			}
			c, err := a.dial(cmd.Context(), auth.Viewer)
			if err != nil {
				return err
			}
			defer c.Close()
			if !hasPid {
				resp, err := c.ListProcesses(cmd.Context())
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.Processes(a.stdout, resp, a.style())
			}
			p, err := c.GetProcess(cmd.Context(), pid, sockets)
			if err != nil {
				return err
			}
			if a.json() {
				return render.JSON(a.stdout, &triagev1.GetProcessResponse{Process: p})
			}
			return render.Process(a.stdout, p, render.ProcessOptions{Deps: deps}, a.style())
		}),
	}
	f := cmd.Flags()
	f.IntVar(&pid, "pid", 0, "show everything about this process (0: the sidecar itself)")
	f.BoolVar(&sockets, "sockets", false, "with --pid, list every TCP and UDP socket")
	f.BoolVar(&deps, "deps", false, "with --pid, list the Go module dependencies")
	return cmd
}
