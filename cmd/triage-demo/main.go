// Command triage-demo is a small sample workload for trying triage: an HTTP
// service with background goroutines, open files and an idle outbound TCP
// connection, so `triage proc --pid N` has something to show.
//
//	triage-demo [--addr 127.0.0.1:8080] [--config demo.yaml]
//
// Endpoints: / (hello), /healthz, /work?ms=N (burns CPU for N ms),
// /sleep?ms=N (waits N ms). When ready it prints one line,
// "triage-demo listening on ADDR pid=PID"; SIGTERM or SIGINT stops it
// gracefully with exit code 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/triage-sh/triage/sidecar/agent"
)

// shutdownTimeout bounds the graceful stop.
const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "triage-demo:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "triage-demo:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// run parses args, starts the demo, prints the ready line to stdout and
// serves until ctx is done, then stops gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("triage-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "HTTP listen address (host:port; port 0 picks one)")
	configFile := fs.String("config", "", "optional configuration file (YAML or JSON)")
	agentSocket := fs.String("agent-socket", os.Getenv(agent.SocketEnv), "serve the triage agent on this Unix socket (default $TRIAGE_AGENT_SOCKET; empty: no agent)")
	flight := fs.Bool("flight-recorder", false, "keep the execution-trace flight recorder running (triage profile --type trace --last)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := LoadConfig(*configFile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	d, err := Start(*addr, cfg, log)
	if err != nil {
		return err
	}
	if *agentSocket != "" {
		// The two lines an app adds to link the triage agent.
		a, err := agent.Start(ctx, agent.Options{Socket: *agentSocket, FlightRecorder: *flight, Logger: log})
		if err != nil {
			d.Shutdown(context.Background())
			return err
		}
		defer a.Close()
		a.RegisterConfig("demo", func() any { return cfg })
		a.RegisterState("demo", func() any { return d.State() })
		log.Info("triage agent serving", "socket", *agentSocket)
	}
	fmt.Fprintf(stdout, "triage-demo listening on %s pid=%d\n", d.Addr(), os.Getpid())
	serveErr := d.Wait(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	log.Info("shutting down")
	if err := d.Shutdown(sctx); err != nil {
		return errors.Join(serveErr, err)
	}
	return serveErr
}
