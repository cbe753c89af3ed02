package agent

import (
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// TestIdleRunsNothing: an idle agent adds one goroutine, the gRPC accept
// loop, and is back to that once a client has come and gone.
func TestIdleRunsNothing(t *testing.T) {
	settle := func() int {
		// Goroutines of earlier tests may still be exiting: take the minimum.
		n := runtime.NumGoroutine()
		for range 20 {
			time.Sleep(10 * time.Millisecond)
			n = min(n, runtime.NumGoroutine())
		}
		return n
	}
	before := settle()
	a, err := Start(t.Context(), Options{Socket: t.TempDir() + "/agent.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if d := settle() - before; d > 1 {
		t.Errorf("an idle agent runs %d goroutines, want 1 (the accept loop)", d)
	}
	conn, err := grpc.NewClient("unix://"+a.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentv1.NewAgentServiceClient(conn).GetInfo(testCtx(t), &agentv1.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for settle()-before > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after a client left, the agent runs %d goroutines, want 1", settle()-before)
		}
	}
}
