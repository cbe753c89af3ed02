package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// env is the process's surroundings, passed in so tests run the command
// in-process.
type env struct {
	stdout, stderr io.Writer
	// stdin is read by --file -; nil reads as empty.
	stdin  io.Reader
	getenv func(string) string
	// terminal is whether stdout is a terminal (colour is then allowed).
	terminal bool
	// stderrTerminal is whether stderr is a terminal (a live progress line
	// is then drawn there).
	stderrTerminal bool
}

// app holds the global flags and the environment.
type app struct {
	env
	conn    client.Options
	kube    kubeState
	output  string
	timeout time.Duration
}

// Output formats.
const (
	outputText = "text"
	outputJSON = "json"
)

// runError marks an error of the operation itself (exit 1); any other
// error from cobra is bad usage (exit 2).
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// usageError is bad usage found by a command itself.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run executes the command line args and returns the exit code. Errors are
// printed as one line on stderr.
func run(ctx context.Context, args []string, e env) int {
	a := &app{env: e}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if cerr := a.closeKube(); cerr != nil && err == nil {
		err = runError{cerr}
	}
	if err == nil {
		return exitOK
	}
	var re runError
	if errors.As(err, &re) {
		fmt.Fprintln(e.stderr, "triage: "+client.Describe(re.err))
		return exitError
	}
	help := "triage --help"
	if cmd != nil {
		help = cmd.CommandPath() + " --help"
	}
	fmt.Fprintf(e.stderr, "triage: %s (see '%s')\n", oneLine(err.Error()), help)
	return exitUsage
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// rootCommand builds the command tree.
func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "triage",
		Short: "Ask a pod's triage sidecar what is going on",
		Long: `triage asks a pod's triage sidecar what the pod believes and what state it is in.

In Kubernetes, name the pods with your kubeconfig's credentials:
  triage explain pod/checkout-7d9f -n shop
  triage goroutines deploy/checkout -n shop      every pod, groups merged, the odd pod out marked
  triage profile deploy/checkout --type wall -w checkout.pb.gz
triage port-forwards through the API server and mints a short-lived token for the tier the
command needs (triage-viewer, -profiler, -capturer, -operator); your RBAC decides.

Without a target it asks the sidecar at --addr (127.0.0.1:7070); for a local sidecar
started with --dev DIR, pass the same --dev DIR.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch a.output {
			case outputText, outputJSON:
			default:
				return usageError{fmt.Sprintf("invalid --output %q: use text or json", a.output)}
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	f := root.PersistentFlags()
	f.StringVar(&a.conn.Addr, "addr", a.envOr("TRIAGE_ADDR", client.DefaultAddr), "sidecar address: host:port or unix:///path (env TRIAGE_ADDR)")
	f.StringVar(&a.conn.Dev, "dev", a.getenv("TRIAGE_DEV"), "development mode directory: use its CA and client certificate, creating them if missing (env TRIAGE_DEV)")
	f.StringVar(&a.conn.CA, "ca", a.getenv("TRIAGE_CA"), "CA bundle (PEM) the sidecar's certificate must chain to (env TRIAGE_CA)")
	f.StringVar(&a.conn.Cert, "cert", a.getenv("TRIAGE_CERT"), "client certificate (PEM) for mTLS (env TRIAGE_CERT)")
	f.StringVar(&a.conn.Key, "key", a.getenv("TRIAGE_KEY"), "client private key (PEM) for mTLS (env TRIAGE_KEY)")
	f.StringVar(&a.conn.TokenFile, "token-file", a.getenv("TRIAGE_TOKEN_FILE"), "file holding a bearer token (env TRIAGE_TOKEN_FILE)")
	f.StringVar(&a.conn.ServerName, "server-name", "", "name to check the sidecar's certificate against (default: the host of --addr)")
	f.BoolVar(&a.conn.Insecure, "insecure", false, "plaintext, for a sidecar run with --insecure-local (loopback and unix sockets only)")
	f.StringVarP(&a.output, "output", "o", outputText, "output format: text or json")
	f.DurationVar(&a.timeout, "timeout", 30*time.Second, "how long to wait for the sidecar; 0 waits forever")
	a.addKubeFlags(f)
	root.AddCommand(a.explainCommand(), a.procCommand(), a.versionCommand(),
		a.goroutinesCommand(), a.profileCommand(), a.runtimeCommand(), a.captureCommand(), a.injectCommand(), a.envoyCommand())
	return root
}

func (a *app) envOr(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

// dial connects to the sidecar: the pod the command's target names, with a
// token of tier, or else the sidecar at --addr with the global flags.
func (a *app) dial(ctx context.Context, tier auth.Role) (*client.Client, error) {
	if a.kubeMode() {
		return a.dialKube(ctx, tier)
	}
	o := a.conn
	o.Timeout = a.timeout
	c, err := client.Dial(ctx, o)
	if err != nil {
		return nil, runError{err}
	}
	return c, nil
}

// style is plain unless stdout is a terminal and NO_COLOR is unset.
func (a *app) style() render.Style {
	return render.Style{Color: a.terminal && a.getenv("NO_COLOR") == "" && a.getenv("TERM") != "dumb"}
}

// json reports whether the output is JSON.
func (a *app) json() bool { return a.output == outputJSON }

// runE adapts a command's function so its errors are run errors (exit 1).
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd, args); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return ue
			}
			return runError{err}
		}
		return nil
	}
}
