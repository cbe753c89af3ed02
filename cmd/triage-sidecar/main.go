// Command triage-sidecar is the triage daemon that runs beside the app in a
// pod: an authenticated, audited gRPC admin API. See `triage-sidecar --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/triage-sh/triage/internal/config"
	"github.com/triage-sh/triage/internal/procfs"
	"github.com/triage-sh/triage/internal/version"
	"github.com/triage-sh/triage/sidecar"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// usageError marks errors that are the caller's (exit code 2).
type usageError struct{ error }

func run(args []string) int {
	var (
		opts       sidecar.Options
		configFile string
	)
	caps := sidecar.DefaultCapabilities()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cmd := &cobra.Command{
		Use:   "triage-sidecar",
		Short: "triage's diagnostics sidecar: an authenticated, audited gRPC admin API",
		Long: `triage-sidecar serves triage's admin API beside an app.

Every setting is a flag, a TRIAGE_* environment variable (--tls-cert is
TRIAGE_TLS_CERT) and a key of the optional --config YAML file; flags win over
the environment, which wins over the file. For local use, --dev DIR makes a
development CA, certificates and a policy in DIR once and serves mTLS on
loopback; point the CLI at the same DIR with triage --dev DIR.`,
		Version:       version.Build().Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("config") {
				configFile = os.Getenv("TRIAGE_CONFIG")
			}
			settings, err := config.Resolve(cmd.Flags(), config.Options{EnvPrefix: "TRIAGE_", File: configFile, Skip: []string{"config", "version"}})
			if err != nil {
				return usageError{err}
			}
			setMemoryLimit(log, opts.ProcRoot, opts.CgroupRoot)
			srv, err := sidecar.New(sidecar.Config{Options: opts, Settings: settings, Capabilities: caps, Logger: log})
			if err != nil {
				return err
			}
			for _, a := range srv.Addrs() {
				log.Info("serving", "addr", a.String(), "network", a.Network(), "version", version.Build().Version)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return srv.Serve(ctx)
		},
	}
	cmd.SetArgs(args)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	opts.AddFlags(cmd.Flags())
	for _, c := range caps {
		if c.AddFlags != nil {
			c.AddFlags(cmd.Flags())
		}
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML configuration file (keys are flag names); also TRIAGE_CONFIG")
	cmd.AddCommand(healthcheckCommand())
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "triage-sidecar: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// setMemoryLimit gives the sidecar's garbage collector its container's
// memory limit (90% of memory.max) when GOMEMLIMIT is not set, so a burst is
// collected before the kernel OOM-kills it. This is the advice explain's
// gomemlimit-unset finding gives apps; the sidecar follows it itself.
func setMemoryLimit(log *slog.Logger, procRoot, cgroupRoot string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	cg, err := procfs.New(procRoot, cgroupRoot).Cgroup(os.Getpid())
	if err != nil || cg.MemoryMax == 0 {
		return
	}
	limit := int64(cg.MemoryMax / 10 * 9)
	debug.SetMemoryLimit(limit)
	log.Info("GOMEMLIMIT set from the cgroup memory limit", "limit_bytes", limit, "memory_max", cg.MemoryMax)
}
