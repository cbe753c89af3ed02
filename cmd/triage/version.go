package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/internal/version"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "The versions of this client and of the sidecar",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			mine := version.Build()
			c, err := a.dial(cmd.Context(), auth.Viewer)
			if err != nil {
				// Still say who we are; the error follows on stderr.
				a.printVersion(mine, nil)
				return err
			}
			defer c.Close()
			server, serr := c.Version(cmd.Context())
			if err := a.printVersion(mine, server); err != nil {
				return err
			}
			return serr
		}),
	}
}

// printVersion writes the client's and (when known) the server's build.
func (a *app) printVersion(mine, server *triagev1.Build) error {
	if !a.json() {
		return render.Version(a.stdout, mine, server, a.style())
	}
	parts := map[string]json.RawMessage{}
	var err error
	if parts["client"], err = render.MarshalJSON(mine); err != nil {
		return err
	}
	if server != nil {
		if parts["server"], err = render.MarshalJSON(server); err != nil {
			return err
		}
	}
	return render.Object(a.stdout, []string{"client", "server"}, parts)
}
