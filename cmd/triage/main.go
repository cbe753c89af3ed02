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
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
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
