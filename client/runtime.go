package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// MaxGoroutineGroups is how many groups Goroutines accepts from one
// stream; a server that sends more is broken or hostile, and the client
// stops rather than grow without bound.
const MaxGoroutineGroups = 1_000_000

// ErrGoroutineStream is wrapped by the errors Goroutines returns when the
// stream breaks the summary-then-groups convention.
var ErrGoroutineStream = errors.New("goroutine stream out of order")

// Goroutines returns the target's goroutines grouped by identical stack
// and state: the server's summary (total, path used, notes) and the groups,
// largest first as the server sends them. The stream must start with
// exactly one summary; at most MaxGoroutineGroups groups are accepted.
func (c *Client) Goroutines(ctx context.Context, req *triagev1.GetGoroutinesRequest) (*triagev1.GoroutineSummary, []*triagev1.GoroutineGroup, error) {
	const op = "get goroutines"
	ctx, cancel := c.call(ctx)
	defer cancel()
	stream, err := c.runtime.GetGoroutines(ctx, req)
	if err != nil {
		return nil, nil, c.wrap(op, err)
	}
	var (
		sum    *triagev1.GoroutineSummary
		groups []*triagev1.GoroutineGroup
	)
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, groups, c.wrap(op, fmt.Errorf("receive after %d groups: %w", len(groups), err))
		}
		switch s, g := m.GetSummary(), m.GetGroup(); {
		case s != nil:
			if sum != nil {
				return sum, groups, c.wrap(op, fmt.Errorf("%w: a second summary", ErrGoroutineStream))
			}
			sum = s
			groups = make([]*triagev1.GoroutineGroup, 0, min(max(s.GetGroups(), 0), 1024))
		case g != nil:
			if sum == nil {
				return nil, groups, c.wrap(op, fmt.Errorf("%w: a group before the summary", ErrGoroutineStream))
			}
			if len(groups) >= MaxGoroutineGroups {
				return sum, groups, c.wrap(op, fmt.Errorf("%w: more than %d groups; narrow the dump with a filter", ErrGoroutineStream, MaxGoroutineGroups))
			}
			groups = append(groups, g)
		default:
			return sum, groups, c.wrap(op, fmt.Errorf("%w: a message with neither summary nor group", ErrGoroutineStream))
		}
	}
	if sum == nil {
		return nil, nil, c.wrap(op, fmt.Errorf("%w: the stream ended without a summary", ErrGoroutineStream))
	}
	return sum, groups, nil
}

// GoroutineDump streams the target's full text goroutine dump (debug=2)
// into w. The world stops in the target for the whole dump: prefer
// Goroutines unless the exact text is needed.
func (c *Client) GoroutineDump(ctx context.Context, target triagev1.Target, w io.Writer, opts ...ArtifactOption) (*Artifact, error) {
	const op = "get goroutine dump"
	ctx, cancel := c.call(ctx)
	defer cancel()
	stream, err := c.runtime.GetGoroutineDump(ctx, &triagev1.GetGoroutineDumpRequest{Target: target})
	if err != nil {
		return nil, c.wrap(op, err)
	}
	a, err := ReadArtifact(stream, w, opts...)
	return a, c.wrap(op, err)
}

// Profile streams a profile or execution trace into w. The client's
// Timeout is extended by the requested duration, so a 30-second profile
// is not cut by a 30-second timeout.
func (c *Client) Profile(ctx context.Context, req *triagev1.ProfileRequest, w io.Writer, opts ...ArtifactOption) (*Artifact, error) {
	op := "profile"
	if t := req.GetType(); t != triagev1.ProfileType_PROFILE_TYPE_UNSPECIFIED {
		op = "profile " + strings.ToLower(strings.TrimPrefix(t.String(), "PROFILE_TYPE_"))
	}
	ctx, cancel := c.callFor(ctx, req.GetDuration().AsDuration())
	defer cancel()
	stream, err := c.runtime.Profile(ctx, req)
	if err != nil {
		return nil, c.wrap(op, err)
	}
	a, err := ReadArtifact(stream, w, opts...)
	return a, c.wrap(op, err)
}

// RuntimeStats returns a snapshot of the target's Go runtime: metrics,
// settings, build and uptime.
func (c *Client) RuntimeStats(ctx context.Context, target triagev1.Target) (*triagev1.GetRuntimeStatsResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.runtime.GetRuntimeStats(ctx, &triagev1.GetRuntimeStatsRequest{Target: target})
	if err != nil {
		return nil, c.wrap("get runtime stats", err)
	}
	return resp, nil
}

// callFor bounds ctx by the client's timeout plus extra, the time the
// server is asked to spend before it answers.
func (c *Client) callFor(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout+max(extra, 0))
}
