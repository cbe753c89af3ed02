// Command triage-sidecar is the triage daemon that runs beside the app in a
// pod: an authenticated, audited gRPC admin API. See `triage-sidecar --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

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

// The command line is parsed with pflag alone: cobra (and the
// text/template of its help) made the binary about 260 KB larger, and the
// resident pages of a binary are most of the sidecar's idle memory.
const long = `triage-sidecar serves triage's admin API beside an app.

Every setting is a flag, a TRIAGE_* environment variable (--tls-cert is
TRIAGE_TLS_CERT) and a key of the optional --config YAML file; flags win over
the environment, which wins over the file. For local use, --dev DIR makes a
development CA, certificates and a policy in DIR once and serves mTLS on
loopback; point the CLI at the same DIR with triage --dev DIR.`

// run is the whole program: it returns the exit code (0, 1 for a failure,
// 2 for a usage error).
func run(args []string) int {
	err := dispatch(args, os.Stdout)
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "triage-sidecar: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// dispatch runs the command args name: the server (no command), healthcheck
// or help.
func dispatch(args []string, stdout io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "healthcheck":
			return runHealthcheck(args[1:], stdout)
		case "help":
			if len(args) > 1 && args[1] == "healthcheck" {
				return runHealthcheck([]string{"--help"}, stdout)
			}
			return runServer([]string{"--help"}, stdout)
		}
		return usageError{fmt.Errorf("unknown command %q: the commands are healthcheck and help (see triage-sidecar --help)", args[0])}
	}
	return runServer(args, stdout)
}

// runServer parses the server's flags and serves until SIGINT or SIGTERM.
func runServer(args []string, stdout io.Writer) error {
	var (
		opts        sidecar.Options
		configFile  string
		showVersion bool
	)
	caps := sidecar.DefaultCapabilities()
	fs := newFlagSet("triage-sidecar")
	opts.AddFlags(fs)
	for _, c := range caps {
		if c.AddFlags != nil {
			c.AddFlags(fs)
		}
	}
	fs.StringVar(&configFile, "config", "", "YAML configuration file (keys are flag names); also TRIAGE_CONFIG")
	fs.BoolVarP(&showVersion, "version", "v", false, "print the version and exit")
	usage := func() {
		fmt.Fprintf(stdout, "%s\n\nUsage:\n  triage-sidecar [flags]\n  triage-sidecar healthcheck [flags]   exit 0 when a sidecar answers health SERVING (exec probes)\n  triage-sidecar help [healthcheck]\n\nFlags:\n%s", long, fs.FlagUsages())
	}
	if done, err := parse(fs, args, usage); done || err != nil {
		return err
	}
	if showVersion {
		fmt.Fprintf(stdout, "triage-sidecar version %s\n", version.Build().Version)
		return nil
	}
	if !fs.Changed("config") {
		configFile = os.Getenv("TRIAGE_CONFIG")
	}
	settings, err := config.Resolve(fs, config.Options{EnvPrefix: "TRIAGE_", File: configFile, Skip: []string{"config", "version"}})
	if err != nil {
		return usageError{err}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
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
}

// newFlagSet returns a flag set that reports errors to its caller only.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args into fs. With -h or --help it calls usage and reports
// done; flag errors and positional arguments are usage errors.
func parse(fs *pflag.FlagSet, args []string, usage func()) (done bool, err error) {
	// With help defined, pflag never answers ErrHelp: -h and --help are
	// read below like any flag.
	fs.BoolP("help", "h", false, "help for "+fs.Name())
	if err := fs.Parse(args); err != nil {
		return false, usageError{err}
	}
	if help, _ := fs.GetBool("help"); help {
		usage()
		return true, nil
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Errorf("%s takes no arguments, got %q (settings are flags: see --help)", fs.Name(), fs.Args())}
	}
	return false, nil
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
