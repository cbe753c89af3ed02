package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	tapv3 "github.com/envoyproxy/go-control-plane/envoy/config/tap/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/envoyadmin"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// defaultTapConfig taps every request to the streaming admin sink.
const defaultTapConfig = `{"match":{"any_match":true},"output_config":{"sinks":[{"streaming_admin":{}}]}}`

// Stop reasons, as the trailer's stop_reason gives them.
const (
	stopComplete = "complete"
	stopDuration = "duration"
	stopBytes    = "bytes"
	stopClient   = "client"
	stopError    = "error"
)

// tapRun is one tap in progress.
type tapRun struct {
	configID string
	owner    string
	started  time.Time
	cancel   context.CancelFunc
}

// tapPlan is a validated tap request with the server's limits applied.
type tapPlan struct {
	req      *adminv3.TapRequest
	duration time.Duration
	maxBytes int64
	notes    []string
}

func (s *server) tapPlan(req *triagev1.TapRequest) (*tapPlan, error) {
	id := strings.TrimSpace(req.GetConfigId())
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "config_id is required: the admin config_id of a tap filter in Envoy's config (envoy.filters.http.tap with admin_config)")
	}
	raw := strings.TrimSpace(req.GetTapConfigJson())
	if raw == "" {
		raw = defaultTapConfig
	}
	cfg := &tapv3.TapConfig{}
	if err := (protojson.UnmarshalOptions{Resolver: envoyadmin.Resolver()}).Unmarshal([]byte(raw), cfg); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "tap_config_json is not an envoy.config.tap.v3.TapConfig: %v", err)
	}
	p := &tapPlan{req: &adminv3.TapRequest{ConfigId: id, TapConfig: cfg}}
	if d := req.GetDuration(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "duration must be a positive duration up to %s (--envoy-tap-max-duration)", s.o.TapMaxDuration)
		}
	}
	switch p.duration = req.GetDuration().AsDuration(); {
	case p.duration == 0:
		p.duration = s.o.TapMaxDuration
	case p.duration > s.o.TapMaxDuration:
		p.notes = append(p.notes, fmt.Sprintf("duration lowered from %s to %s (--envoy-tap-max-duration)", p.duration, s.o.TapMaxDuration))
		p.duration = s.o.TapMaxDuration
	}
	switch p.maxBytes = req.GetMaxBytes(); {
	case p.maxBytes < 0:
		return nil, status.Error(codes.InvalidArgument, "max_bytes must not be negative")
	case p.maxBytes == 0:
		p.maxBytes = s.o.TapMaxBytes
	case p.maxBytes > s.o.TapMaxBytes:
		p.notes = append(p.notes, fmt.Sprintf("max bytes lowered from %d to %d (--envoy-tap-max-bytes)", p.maxBytes, s.o.TapMaxBytes))
		p.maxBytes = s.o.TapMaxBytes
	}
	return p, nil
}

// start takes a tap slot, or says who holds them.
func (s *server) start(ctx context.Context, p *tapPlan) (*tapRun, context.Context, error) {
	owner := "unknown"
	if id, ok := capability.IdentityFrom(ctx); ok {
		owner = id.Name
	}
	select {
	case s.taps <- struct{}{}:
	default:
		s.mu.Lock()
		var running []string
		for r := range s.running {
			running = append(running, fmt.Sprintf("config_id %s by %s since %s", r.configID, r.owner, r.started.UTC().Format(time.RFC3339)))
		}
		s.mu.Unlock()
		sort.Strings(running)
		return nil, nil, status.Errorf(codes.ResourceExhausted, "%d Envoy tap(s) already running (%s), the limit is --envoy-tap-max-concurrent=%d; wait for it to end",
			len(running), strings.Join(running, "; "), s.o.TapMaxConcurrent)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &tapRun{configID: p.req.GetConfigId(), owner: owner, started: s.now(), cancel: cancel}
	s.mu.Lock()
	s.running[r] = struct{}{}
	s.mu.Unlock()
	return r, ctx, nil
}

func (s *server) finish(r *tapRun) {
	r.cancel()
	s.mu.Lock()
	delete(s.running, r)
	s.mu.Unlock()
	<-s.taps
}

// Tap implements EnvoyService.Tap: Envoy's streamed traces, one compact JSON
// object a line, sent as they come, until the duration, the byte limit, the
// caller or Envoy ends it.
func (s *server) Tap(req *triagev1.TapRequest, stream grpc.ServerStreamingServer[triagev1.TapResponse]) error {
	p, err := s.tapPlan(req)
	if err != nil {
		return err
	}
	r, ctx, err := s.start(stream.Context(), p)
	if err != nil {
		return err
	}
	defer s.finish(r)
	s.logMutation(ctx, "envoy tap started", "config_id", p.req.GetConfigId(), "duration", p.duration.String())
	tctx, cancel := context.WithTimeout(ctx, p.duration)
	defer cancel()
	body, err := s.c.Tap(tctx, p.req)
	if err != nil {
		return grpcError(err)
	}
	defer body.Close()

	hdr := &triagev1.ArtifactHeader{
		MediaType: "application/x-ndjson", FileName: "envoy-tap-" + p.req.GetConfigId() + ".ndjson", Started: timestamppb.New(r.started),
		Attributes: map[string]string{"config_id": p.req.GetConfigId(), "duration": p.duration.String(), "max_bytes": strconv.FormatInt(p.maxBytes, 10), "admin_url": s.c.URL()},
	}
	if err := stream.Send(&triagev1.TapResponse{Part: &triagev1.TapResponse_Header{Header: hdr}}); err != nil {
		return err
	}
	// Envoy's traces are bounded by its own buffers; reading at most twice
	// the output limit bounds the sidecar's memory whatever Envoy sends.
	lr := &io.LimitedReader{R: body, N: 2*p.maxBytes + chunkSize}
	dec := json.NewDecoder(lr)
	var (
		sent, traces int64
		line         bytes.Buffer
		reason       string
		notes        = p.notes
	)
	for reason == "" {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			switch {
			case stream.Context().Err() != nil:
				return status.FromContextError(stream.Context().Err()).Err()
			case errors.Is(tctx.Err(), context.DeadlineExceeded):
				reason = stopDuration
			case ctx.Err() != nil:
				reason, notes = stopClient, append(notes, "the sidecar is shutting down")
			case lr.N <= 0:
				reason = stopBytes
			case errors.Is(err, io.EOF):
				reason = stopComplete
			default:
				reason, notes = stopError, append(notes, "reading Envoy's tap output: "+err.Error())
			}
			continue
		}
		line.Reset()
		if err := json.Compact(&line, raw); err != nil {
			line.Write(raw)
		}
		line.WriteByte('\n')
		if sent+int64(line.Len()) > p.maxBytes {
			reason = stopBytes
			break
		}
		for b := line.Bytes(); len(b) > 0; {
			n := min(len(b), chunkSize)
			// Copy: the stream may hold the slice after Send returns.
			chunk := append([]byte(nil), b[:n]...)
			if err := stream.Send(&triagev1.TapResponse{Part: &triagev1.TapResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: chunk}}}); err != nil {
				return err
			}
			b = b[n:]
		}
		sent += int64(line.Len())
		traces++
	}
	tr := &triagev1.ArtifactTrailer{
		Bytes: uint64(sent), Duration: durationSince(r.started, s.now()), StopReason: reason, Notes: notes,
		Truncated: reason == stopBytes, Counters: map[string]uint64{"traces": uint64(traces)},
	}
	if reason == stopBytes {
		tr.TruncatedReason = fmt.Sprintf("max bytes %d reached", p.maxBytes)
	}
	return stream.Send(&triagev1.TapResponse{Part: &triagev1.TapResponse_Trailer{Trailer: tr}})
}
