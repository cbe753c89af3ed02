package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
)

func (a *app) explainCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "explain [pod/NAME | deploy/NAME | sts/NAME | ds/NAME | -l SELECTOR]",
		Short: "What does this pod believe? Findings, build, caller, capabilities, certificates, settings, processes",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if a.fleetMode() {
				return a.fleetExplain(cmd.Context())
			}
			c, err := a.dial(cmd.Context(), auth.Viewer)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Explain(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return render.JSON(a.stdout, resp)
			}
			return render.Explain(a.stdout, resp, time.Now(), a.style())
		}),
	}
}
