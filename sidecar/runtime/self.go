package runtime

import (
	"context"
	"fmt"

	"google.golang.org/grpc/test/bufconn"

	"github.com/triage-sh/triage/sidecar/agent"
)

// startSelf serves the triage agent inside the sidecar over an in-memory
// listener, so TARGET_SELF goes through exactly the code path an app's agent
// does, with no socket on disk (the sidecar's root filesystem is read-only).
func startSelf() (*agentTarget, func(), error) {
	lis := bufconn.Listen(1 << 20)
	a, err := agent.Start(context.Background(), agent.Options{Listener: lis})
	if err != nil {
		return nil, nil, fmt.Errorf("in-process agent: %w", err)
	}
	t, err := dialInProcess(lis.DialContext)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return t, func() { t.conn.Close(); a.Close() }, nil
}
