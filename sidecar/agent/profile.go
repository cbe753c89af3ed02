package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// profileSpec is a validated ProfileRequest.
type profileSpec struct {
	typ      agentv1.ProfileType
	name     string // "wall", "cpu", ...
	duration time.Duration
	rate     int64
	last     bool
	holder   string
}

// timed reports whether the profile samples for a duration (the others are
// snapshots).
func timed(t agentv1.ProfileType) bool {
	switch t {
	case agentv1.ProfileType_PROFILE_TYPE_WALL, agentv1.ProfileType_PROFILE_TYPE_CPU,
		agentv1.ProfileType_PROFILE_TYPE_BLOCK, agentv1.ProfileType_PROFILE_TYPE_MUTEX,
		agentv1.ProfileType_PROFILE_TYPE_TRACE:
		return true
	}
	return false
}

// spec validates req against the limits; errors are InvalidArgument.
func (a *Agent) spec(req *agentv1.ProfileRequest) (profileSpec, error) {
	t := req.GetType()
	name, ok := strings.CutPrefix(t.String(), "PROFILE_TYPE_")
	if !ok || t == agentv1.ProfileType_PROFILE_TYPE_UNSPECIFIED {
		return profileSpec{}, invalidArgf("profile type %v is not one of wall, cpu, heap, allocs, block, mutex, goroutine, threadcreate, trace", t)
	}
	sp := profileSpec{typ: t, name: strings.ToLower(name), rate: req.GetRate(), last: req.GetLast(), holder: req.GetHolder()}
	if sp.rate < 0 {
		return sp, invalidArgf("rate %d is negative: use 0 for the default", sp.rate)
	}
	if sp.last {
		if t != agentv1.ProfileType_PROFILE_TYPE_TRACE {
			return sp, invalidArgf("last is for traces only (the flight recorder), not %s profiles", sp.name)
		}
		if req.GetDuration() != nil {
			sp.duration = req.GetDuration().AsDuration()
		}
		return sp, nil
	}
	if !timed(t) {
		return sp, nil
	}
	max := a.opts.MaxProfileDuration
	if t == agentv1.ProfileType_PROFILE_TYPE_TRACE {
		max = a.opts.MaxTraceDuration
	}
	if req.GetDuration() != nil {
		sp.duration = req.GetDuration().AsDuration()
	}
	if sp.duration <= 0 || sp.duration > max {
		return sp, invalidArgf("%s profile duration %s is outside the allowed range (0s, %s]: pass a duration up to %s", sp.name, sp.duration, max, max)
	}
	return sp, nil
}

// profile validates req, takes its exclusive slot and streams the profile.
func (a *Agent) profile(ctx context.Context, req *agentv1.ProfileRequest, s sender) error {
	sp, err := a.spec(req)
	if err != nil {
		return err
	}
	if group, what := exclusiveGroup(sp); group != "" {
		release, err := a.slots.acquire(group, what, sp.holder, sp.duration)
		if err != nil {
			return err
		}
		defer release()
	}
	media := mediaPprof
	if sp.typ == agentv1.ProfileType_PROFILE_TYPE_TRACE {
		media = mediaTrace
	}
	art := newArtifact(media)
	art.attrs["type"] = sp.name
	if sp.duration > 0 {
		art.attrs["duration"] = sp.duration.String()
	}
	w := newChunkWriter(s, art)
	err = a.runProfile(ctx, sp, w, art)
	if err == nil {
		err = w.finish()
	}
	return toStatus(ctx, err)
}

func exclusiveGroup(sp profileSpec) (group, what string) {
	switch sp.typ {
	case agentv1.ProfileType_PROFILE_TYPE_WALL, agentv1.ProfileType_PROFILE_TYPE_CPU:
		return groupCPUWall, "a " + sp.name + " profile"
	case agentv1.ProfileType_PROFILE_TYPE_TRACE:
		if sp.last {
			return groupFlight, "a flight-recorder snapshot"
		}
		return groupTrace, "an execution trace"
	case agentv1.ProfileType_PROFILE_TYPE_BLOCK:
		return groupBlock, "a block profile"
	case agentv1.ProfileType_PROFILE_TYPE_MUTEX:
		return groupMutex, "a mutex profile"
	}
	return "", ""
}

// runProfile dispatches to the engine of sp.typ.
func (a *Agent) runProfile(ctx context.Context, sp profileSpec, w *chunkWriter, art *artifact) error {
	switch sp.typ {
	case agentv1.ProfileType_PROFILE_TYPE_WALL:
		cfg := wallConfig{hz: int(sp.rate), budget: a.opts.WallCPUBudget, fgprofMax: a.opts.WallFgprofMaxGoroutines}
		return wallProfile(ctx, w, sp.duration, cfg, art)
	case agentv1.ProfileType_PROFILE_TYPE_CPU:
		return cpuProfile(ctx, w, sp.duration, int(sp.rate), art)
	case agentv1.ProfileType_PROFILE_TYPE_BLOCK:
		return blockProfile(ctx, w, sp.duration, int(sp.rate), a.opts.BlockProfileRate, art)
	case agentv1.ProfileType_PROFILE_TYPE_MUTEX:
		return mutexProfile(ctx, w, sp.duration, int(sp.rate), art)
	case agentv1.ProfileType_PROFILE_TYPE_TRACE:
		if sp.last {
			return a.flightSnapshot(w, sp.duration, art)
		}
		return traceFor(ctx, w, sp.duration, art)
	default: // heap, allocs, goroutine, threadcreate
		if sp.rate != 0 {
			art.notef("rate %d ignored: %s is a snapshot", sp.rate, sp.name)
		}
		return snapshotProfile(w, sp.name, art)
	}
}

// sleepCtx waits for d or ctx, whichever ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopped early, the client is gone: %w", ctx.Err())
	}
}
