package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

type registeredKind int

const (
	kindConfig registeredKind = iota
	kindState
)

// RegisterConfig registers what the app believes its configuration is (the
// "explain yourself" endpoint). f is called on every GetRegistered request,
// with a timeout (Options.CallbackTimeout) and panic recovery; its value is
// JSON-encoded with secrets redacted: object keys whose names look secret
// and struct fields tagged `triage:"secret"`. Registering a name again
// replaces it.
func (a *Agent) RegisterConfig(name string, f func() any) { a.registry.add(kindConfig, name, f) }

// RegisterState registers a state snapshot (queue depths, connections,
// leader or not), encoded and redacted like RegisterConfig's.
func (a *Agent) RegisterState(name string, f func() any) { a.registry.add(kindState, name, f) }

// registry holds the registered callbacks in registration order.
type registry struct {
	mu      sync.Mutex
	timeout time.Duration
	entries [2][]registeredEntry
}

type registeredEntry struct {
	name string
	f    func() any
}

func (r *registry) add(k registeredKind, name string, f func() any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.entries[k] {
		if e.name == name {
			r.entries[k][i].f = f
			return
		}
	}
	r.entries[k] = append(r.entries[k], registeredEntry{name: name, f: f})
}

func (r *registry) names(k registeredKind) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.entries[k]))
	for i, e := range r.entries[k] {
		out[i] = e.name
	}
	return out
}

func (r *registry) list(k registeredKind) []registeredEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]registeredEntry(nil), r.entries[k]...)
}

// snapshot evaluates every callback.
func (r *registry) snapshot(ctx context.Context) *agentv1.GetRegisteredResponse {
	resp := &agentv1.GetRegisteredResponse{}
	for _, e := range r.list(kindConfig) {
		resp.Config = append(resp.Config, r.evaluate(ctx, e))
	}
	for _, e := range r.list(kindState) {
		resp.State = append(resp.State, r.evaluate(ctx, e))
	}
	return resp
}

// evaluate calls one callback and encodes its value, on a goroutine so a
// callback that hangs costs the caller at most the timeout. (A callback that
// never returns keeps its goroutine: Go cannot stop it.)
func (r *registry) evaluate(ctx context.Context, e registeredEntry) *agentv1.Registered {
	out := &agentv1.Registered{Name: e.name}
	if e.f == nil {
		out.Error = "registered a nil callback"
		return out
	}
	var enc encoded
	done := goSafe(func() error {
		var err error
		enc, err = encodeRedacted(e.f())
		return err
	})
	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			out.Error = err.Error()
			return out
		}
		out.Json, out.Redacted = enc.json, enc.redacted
	case <-timer.C:
		out.Error = fmt.Sprintf("the callback did not return within %s", r.timeout)
	case <-ctx.Done():
		out.Error = fmt.Sprintf("the client went away: %v", ctx.Err())
	}
	return out
}
