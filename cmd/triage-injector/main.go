// Command triage-injector is triage's mutating admission webhook: it adds the
// triage sidecar to pods that opt in. See `triage-injector -h` and
// internal/injector.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/triage-sh/triage/internal/injector"
	"github.com/triage-sh/triage/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := injector.Run(ctx, os.Args[1:], version.Build().GetVersion(), os.Stderr)
	stop()
	os.Exit(code)
}
