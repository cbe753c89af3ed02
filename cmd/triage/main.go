// Command triage is the incident responder's tool for the triage sidecar:
// it asks a pod's sidecar what the pod believes (explain), what state its
// processes are in (proc), what every goroutine is doing (goroutines),
// where the time goes (profile), how the Go runtime is doing (runtime),
// and which versions run (version).
//
// Exit codes: 0 success, 1 the operation failed (one line on stderr:
// "triage: <what failed>: <Code>: <what to do>"), 2 bad usage.
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
	"k8s.io/klog/v2"
)

func main() {
	quietKlog()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdout:         os.Stdout,
		stderr:         os.Stderr,
		stdin:          os.Stdin,
		getenv:         os.Getenv,
		terminal:       term.IsTerminal(int(os.Stdout.Fd())),
		stderrTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	})
	stop()
	os.Exit(code)
}

// quietKlog silences client-go's internal logging (port-forward and
// websocket chatter): every error that matters reaches the user through
// triage's own one-line messages and the per-pod error table.
func quietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}
