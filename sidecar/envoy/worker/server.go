package worker

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/envoyadmin"
	"github.com/triage-sh/triage/internal/envoyexplain"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/envoy"
)

// chunkSize is the shared artifact chunk size (see capability.ChunkBytes).
const chunkSize = capability.ChunkBytes

type server struct {
	triagev1.UnimplementedEnvoyServiceServer
	o    envoy.Options
	c    *envoyadmin.Client
	log  *slog.Logger
	now  func() time.Time
	taps chan struct{}

	mu      sync.Mutex
	running map[*tapRun]struct{}
}

// New returns the EnvoyService implementation for the admin o names, and
// a function that releases it. The worker process (cmd/triage-envoy) serves
// it; the sidecar only forwards to it (see package envoy).
func New(o envoy.Options, logger *slog.Logger) (triagev1.EnvoyServiceServer, func(), error) {
	c, err := envoyadmin.New(o.AdminURL, envoyadmin.Options{
		Timeout:             o.Timeout,
		MaxResponseBytes:    o.MaxResponseBytes,
		AllowRemote:         o.AllowRemote,
		AllowQuit:           o.AllowQuit,
		AllowRuntimeModify:  o.AllowRuntimeModify,
		AllowDrainListeners: o.AllowDrainListeners,
	})
	if err != nil {
		msg := err.Error()
		if envoyadmin.KindOf(err) == envoyadmin.KindInvalidArgument && !o.AllowRemote {
			msg += " (--envoy-allow-remote permits another address)"
		}
		return nil, nil, fmt.Errorf("--envoy-admin: %s", msg)
	}
	s := &server{o: o, c: c, log: logger, now: time.Now, taps: make(chan struct{}, o.TapMaxConcurrent), running: map[*tapRun]struct{}{}}
	return s, s.close, nil
}

func (s *server) close() {
	s.mu.Lock()
	for r := range s.running {
		r.cancel()
	}
	s.mu.Unlock()
	s.c.Close()
}

// parts says what gather reads besides the config dump.
type parts struct {
	eds, clusters, certs, stats bool
}

// explainStats are the counters and gauges explain's findings read
// (circuit breakers, upstream resets, outlier ejections); the filter keeps
// /stats small however many clusters Envoy has.
const explainStats = `^cluster\..*\.(upstream_cx_overflow|upstream_rq_pending_overflow|upstream_rq_retry_overflow|upstream_cx_pool_overflow|` +
	`upstream_rq_rx_reset|upstream_rq_tx_reset|upstream_cx_destroy_local_with_active_rq|upstream_cx_destroy_remote_with_active_rq|` +
	`upstream_rq_pending_failure_eject|circuit_breakers\.[a-z_]+\.(cx_open|rq_pending_open|rq_open|rq_retry_open|cx_pool_open)|` +
	`outlier_detection\.ejections_active)$`

// gather reads the config dump and, at the same time, what p asks for.
// Only the dump is required; what else fails becomes a note.
func (s *server) gather(ctx context.Context, p parts) (envoyexplain.Input, []string, error) {
	var (
		wg       sync.WaitGroup
		dump     *envoyadmin.ConfigDump
		dumpErr  error
		clusters *adminv3.Clusters
		certs    *adminv3.Certificates
		stats    []envoyadmin.Stat
		notes    [3]string
	)
	wg.Go(func() { dump, dumpErr = s.c.ConfigDump(ctx, envoyadmin.ConfigDumpOptions{IncludeEDS: p.eds}) })
	if p.clusters {
		wg.Go(func() {
			var err error
			if clusters, err = s.c.Clusters(ctx); err != nil {
				clusters, notes[0] = nil, "live cluster health (/clusters) is unavailable, health comes from EDS: "+err.Error()
			}
		})
	}
	if p.certs {
		wg.Go(func() {
			var err error
			if certs, err = s.c.Certs(ctx); err != nil {
				certs, notes[1] = nil, "certificates (/certs) are unavailable: "+err.Error()
			}
		})
	}
	if p.stats {
		wg.Go(func() {
			var err error
			if stats, err = s.c.Stats(ctx, envoyadmin.StatsOptions{Filter: explainStats, UsedOnly: true}); err != nil {
				stats, notes[2] = nil, "circuit breaker and reset counters (/stats) are unavailable: "+err.Error()
			}
		})
	}
	wg.Wait()
	if dumpErr != nil {
		return envoyexplain.Input{}, nil, dumpErr
	}
	in := envoyexplain.FromConfigDump(dump)
	in.Clusters, in.Certs, in.Stats, in.Now = clusters, certs, stats, s.now()
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return in, out, nil
}

// Explain implements EnvoyService.Explain.
func (s *server) Explain(ctx context.Context, _ *triagev1.EnvoyServiceExplainRequest) (*triagev1.EnvoyServiceExplainResponse, error) {
	in, notes, err := s.gather(ctx, parts{eds: true, clusters: true, certs: true, stats: true})
	if err != nil {
		return nil, grpcError(err)
	}
	resp := explanationProto(envoyexplain.Explain(in))
	resp.AdminUrl, resp.Time, resp.Notes = s.c.URL(), timestamppb.New(in.Now), notes
	return resp, nil
}

// GetConfigDump implements EnvoyService.GetConfigDump: the scrubbed JSON as
// an artifact.
func (s *server) GetConfigDump(req *triagev1.GetConfigDumpRequest, stream grpc.ServerStreamingServer[triagev1.GetConfigDumpResponse]) error {
	ctx := stream.Context()
	start := s.now()
	d, err := s.c.ConfigDump(ctx, envoyadmin.ConfigDumpOptions{
		IncludeEDS: req.GetIncludeEds(), Resource: req.GetResource(), Mask: req.GetMask(), NameRegex: req.GetNameRegex(),
	})
	if err != nil {
		return grpcError(err)
	}
	attrs := map[string]string{"admin_url": s.c.URL()}
	for k, v := range map[string]string{"resource": req.GetResource(), "mask": req.GetMask(), "name_regex": req.GetNameRegex()} {
		if v != "" {
			attrs[k] = v
		}
	}
	if req.GetIncludeEds() {
		attrs["include_eds"] = "true"
	}
	hdr := &triagev1.ArtifactHeader{MediaType: "application/json", FileName: "envoy_config_dump.json", Started: timestamppb.New(start), Attributes: attrs}
	if err := stream.Send(&triagev1.GetConfigDumpResponse{Part: &triagev1.GetConfigDumpResponse_Header{Header: hdr}}); err != nil {
		return err
	}
	for b := d.Raw; len(b) > 0; {
		n := min(len(b), chunkSize)
		if err := stream.Send(&triagev1.GetConfigDumpResponse{Part: &triagev1.GetConfigDumpResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: b[:n]}}}); err != nil {
			return err
		}
		b = b[n:]
	}
	legacy := 0
	for _, l := range d.Legacy {
		legacy += l.Count
	}
	var notes []string
	if d.Redacted > 0 {
		notes = append(notes, fmt.Sprintf("%d secret values were replaced by [redacted]", d.Redacted))
	}
	tr := &triagev1.ArtifactTrailer{
		Bytes: uint64(len(d.Raw)), Duration: durationSince(start, s.now()), StopReason: "complete", Notes: notes,
		Counters: map[string]uint64{"redacted": uint64(d.Redacted), "unknown_types": uint64(len(d.Unknown)), "legacy_types": uint64(legacy)},
	}
	return stream.Send(&triagev1.GetConfigDumpResponse{Part: &triagev1.GetConfigDumpResponse_Trailer{Trailer: tr}})
}

// ListClusters implements EnvoyService.ListClusters.
func (s *server) ListClusters(ctx context.Context, req *triagev1.ListClustersRequest) (*triagev1.ListClustersResponse, error) {
	var re *regexp.Regexp
	if r := req.GetNameRegex(); r != "" {
		var err error
		if re, err = regexp.Compile(r); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "name_regex %q: %v", r, err)
		}
	}
	in, notes, err := s.gather(ctx, parts{eds: true, clusters: true})
	if err != nil {
		return nil, grpcError(err)
	}
	e := envoyexplain.Explain(in)
	resp := &triagev1.ListClustersResponse{Notes: notes}
	for _, c := range clustersProto(append(e.Clusters, e.EDSOnly...)) {
		if re == nil || re.MatchString(c.Name) {
			resp.Clusters = append(resp.Clusters, c)
		}
	}
	return resp, nil
}

// ListListeners implements EnvoyService.ListListeners.
func (s *server) ListListeners(ctx context.Context, _ *triagev1.ListListenersRequest) (*triagev1.ListListenersResponse, error) {
	in, _, err := s.gather(ctx, parts{})
	if err != nil {
		return nil, grpcError(err)
	}
	return &triagev1.ListListenersResponse{Listeners: listenersProto(envoyexplain.Explain(in).Listeners)}, nil
}

// ListRouteConfigs implements EnvoyService.ListRouteConfigs.
func (s *server) ListRouteConfigs(ctx context.Context, _ *triagev1.ListRouteConfigsRequest) (*triagev1.ListRouteConfigsResponse, error) {
	in, _, err := s.gather(ctx, parts{})
	if err != nil {
		return nil, grpcError(err)
	}
	return &triagev1.ListRouteConfigsResponse{RouteConfigs: routeConfigsProto(envoyexplain.Explain(in).RouteConfigs)}, nil
}

// GetCertificates implements EnvoyService.GetCertificates.
func (s *server) GetCertificates(ctx context.Context, _ *triagev1.GetCertificatesRequest) (*triagev1.GetCertificatesResponse, error) {
	certs, err := s.c.Certs(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	now := s.now()
	e := envoyexplain.Explain(envoyexplain.Input{Dump: &adminv3.ConfigDump{}, Certs: certs, Now: now})
	resp := &triagev1.GetCertificatesResponse{Certificates: certificatesProto(e.Certificates), Time: timestamppb.New(now)}
	for _, f := range e.Findings {
		if f.Code == envoyexplain.CodeCertExpired || f.Code == envoyexplain.CodeCertExpiring {
			resp.Findings = append(resp.Findings, findingProto(f))
		}
	}
	return resp, nil
}

// GetStats implements EnvoyService.GetStats.
func (s *server) GetStats(ctx context.Context, req *triagev1.GetStatsRequest) (*triagev1.GetStatsResponse, error) {
	limit := int(req.GetMaxStats())
	switch {
	case limit < 0:
		return nil, status.Error(codes.InvalidArgument, "max_stats must not be negative")
	case limit == 0 || limit > s.o.MaxStats:
		limit = s.o.MaxStats
	}
	o := envoyadmin.StatsOptions{Filter: req.GetFilter(), UsedOnly: req.GetUsedOnly()}
	var (
		stats []envoyadmin.Stat
		err   error
	)
	switch req.GetFormat() {
	case triagev1.EnvoyStatsFormat_ENVOY_STATS_FORMAT_UNSPECIFIED, triagev1.EnvoyStatsFormat_ENVOY_STATS_FORMAT_TEXT:
		stats, err = s.c.Stats(ctx, o)
	case triagev1.EnvoyStatsFormat_ENVOY_STATS_FORMAT_JSON:
		stats, err = s.c.StatsJSON(ctx, o)
	default:
		return nil, status.Errorf(codes.InvalidArgument, "format %v is not TEXT or JSON", req.GetFormat())
	}
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &triagev1.GetStatsResponse{Total: int32(len(stats))}
	if len(stats) > limit {
		stats, resp.Truncated = stats[:limit], true
	}
	resp.Stats = make([]*triagev1.EnvoyStat, len(stats))
	for i, st := range stats {
		ps := &triagev1.EnvoyStat{Name: st.Name, Value: st.Value, Text: st.Text, Histogram: st.Histogram}
		for _, q := range st.Quantiles {
			ps.Quantiles = append(ps.Quantiles, &triagev1.EnvoyQuantile{Quantile: q.Quantile, Interval: q.Interval, Cumulative: q.Cumulative})
		}
		resp.Stats[i] = ps
	}
	return resp, nil
}

// GetServerInfo implements EnvoyService.GetServerInfo.
func (s *server) GetServerInfo(ctx context.Context, _ *triagev1.GetServerInfoRequest) (*triagev1.GetServerInfoResponse, error) {
	var (
		wg    sync.WaitGroup
		ready *envoyadmin.Readiness
		mem   *adminv3.Memory
		notes [2]string
	)
	wg.Go(func() {
		var err error
		if ready, err = s.c.Ready(ctx); err != nil {
			notes[0] = "readiness (/ready) is unavailable: " + err.Error()
		}
	})
	wg.Go(func() {
		var err error
		if mem, err = s.c.Memory(ctx); err != nil {
			notes[1] = "memory (/memory) is unavailable: " + err.Error()
		}
	})
	si, err := s.c.ServerInfo(ctx)
	wg.Wait()
	if err != nil {
		return nil, grpcError(err)
	}
	envoyadmin.Scrub(si)
	resp := &triagev1.GetServerInfoResponse{
		AdminUrl:           s.c.URL(),
		Version:            si.GetVersion(),
		State:              si.GetState().String(),
		UptimeCurrentEpoch: si.GetUptimeCurrentEpoch(),
		UptimeAllEpochs:    si.GetUptimeAllEpochs(),
		HotRestartVersion:  si.GetHotRestartVersion(),
	}
	if n := si.GetNode(); n != nil {
		resp.Node = &triagev1.EnvoyNode{Id: n.GetId(), Cluster: n.GetCluster(), EnvoyVersion: envoyVersion(si.GetVersion())}
		if v := n.GetMetadata().GetFields()["ISTIO_VERSION"]; v != nil {
			resp.Node.IstioVersion = v.GetStringValue()
		}
	}
	if o := si.GetCommandLineOptions(); o != nil {
		// An inline bootstrap (--config-yaml) may hold credentials that no
		// field annotation marks; the bootstrap is in the (scrubbed) config
		// dump anyway.
		if o.GetConfigYaml() != "" {
			o.ConfigYaml = "[redacted]"
		}
		if b, err := (protojson.MarshalOptions{UseProtoNames: true}).Marshal(o); err == nil {
			resp.CommandLineOptionsJson = string(b)
		}
	}
	if ready != nil {
		resp.Ready = ready.Ready
	}
	if mem != nil {
		resp.MemoryAllocatedBytes, resp.MemoryHeapBytes = mem.GetAllocated(), mem.GetHeapSize()
	}
	for _, n := range notes {
		if n != "" {
			resp.Notes = append(resp.Notes, n)
		}
	}
	return resp, nil
}

// envoyVersion is the version in a build string such as
// "a975561b.../1.15.0/Clean/RELEASE/BoringSSL".
func envoyVersion(build string) string {
	if parts := strings.Split(build, "/"); len(parts) >= 2 && parts[1] != "" {
		return parts[1]
	}
	return build
}

// MatchRoute implements EnvoyService.MatchRoute.
func (s *server) MatchRoute(ctx context.Context, req *triagev1.MatchRouteRequest) (*triagev1.MatchRouteResponse, error) {
	if strings.TrimSpace(req.GetHost()) == "" {
		return nil, status.Error(codes.InvalidArgument, "host is required: the request's :authority (Host header), e.g. reviews.default.svc.cluster.local:9080")
	}
	if p := req.GetPath(); p != "" && !strings.HasPrefix(p, "/") {
		return nil, status.Errorf(codes.InvalidArgument, "path %q must start with /", p)
	}
	in, _, err := s.gather(ctx, parts{eds: true, clusters: true})
	if err != nil {
		return nil, grpcError(err)
	}
	q := envoyexplain.Query{
		Host: req.GetHost(), Path: req.GetPath(), Method: req.GetMethod(), Headers: req.GetHeaders(),
		RouteConfig: req.GetRouteConfig(), Port: req.GetPort(), StripPort: req.GetStripPort(),
	}
	return matchProto(envoyexplain.Match(in, q)), nil
}

func loggersProto(ls []envoyadmin.Logger) []*triagev1.EnvoyLogger {
	out := make([]*triagev1.EnvoyLogger, len(ls))
	for i, l := range ls {
		out[i] = &triagev1.EnvoyLogger{Name: l.Name, Level: l.Level}
	}
	return out
}

// GetLogLevels implements EnvoyService.GetLogLevels.
func (s *server) GetLogLevels(ctx context.Context, _ *triagev1.GetLogLevelsRequest) (*triagev1.GetLogLevelsResponse, error) {
	ls, err := s.c.Logging(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	return &triagev1.GetLogLevelsResponse{Loggers: loggersProto(ls)}, nil
}

// SetLogLevel implements EnvoyService.SetLogLevel.
func (s *server) SetLogLevel(ctx context.Context, req *triagev1.SetLogLevelRequest) (*triagev1.SetLogLevelResponse, error) {
	if req.GetLevel() == "" {
		return nil, status.Error(codes.InvalidArgument, "level is required: trace, debug, info, warning, error, critical or off")
	}
	ls, err := s.c.SetLogLevel(ctx, req.GetLevel(), req.GetLogger())
	if err != nil {
		return nil, grpcError(err)
	}
	s.logMutation(ctx, "envoy log level set", "level", req.GetLevel(), "logger", req.GetLogger())
	return &triagev1.SetLogLevelResponse{Loggers: loggersProto(ls)}, nil
}

// SetHealthCheck implements EnvoyService.SetHealthCheck.
func (s *server) SetHealthCheck(ctx context.Context, req *triagev1.SetHealthCheckRequest) (*triagev1.SetHealthCheckResponse, error) {
	var err error
	switch req.GetAction() {
	case triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_FAIL:
		err = s.c.HealthcheckFail(ctx)
	case triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_OK:
		err = s.c.HealthcheckOk(ctx)
	default:
		return nil, status.Error(codes.InvalidArgument, "action is required: FAIL (take the pod out of load balancing) or OK")
	}
	if err != nil {
		return nil, grpcError(err)
	}
	s.logMutation(ctx, "envoy health check set", "action", req.GetAction().String())
	return &triagev1.SetHealthCheckResponse{}, nil
}

// ResetCounters implements EnvoyService.ResetCounters.
func (s *server) ResetCounters(ctx context.Context, _ *triagev1.ResetCountersRequest) (*triagev1.ResetCountersResponse, error) {
	if err := s.c.ResetCounters(ctx); err != nil {
		return nil, grpcError(err)
	}
	s.logMutation(ctx, "envoy counters reset")
	return &triagev1.ResetCountersResponse{}, nil
}

// off is the answer of a dangerous endpoint no flag turned on.
func off(endpoint, flag string) error {
	return status.Errorf(codes.FailedPrecondition,
		"Envoy's %s is not forwarded: it is dangerous and off by default; start the sidecar with %s to allow operators to call it", endpoint, flag)
}

// Quit implements EnvoyService.Quit; off unless --envoy-allow-quit.
func (s *server) Quit(ctx context.Context, _ *triagev1.QuitRequest) (*triagev1.QuitResponse, error) {
	if !s.o.AllowQuit {
		return nil, off("/quitquitquit", "--envoy-allow-quit")
	}
	if err := s.c.Quit(ctx); err != nil {
		return nil, grpcError(err)
	}
	s.logMutation(ctx, "envoy asked to quit")
	return &triagev1.QuitResponse{}, nil
}

// ModifyRuntime implements EnvoyService.ModifyRuntime; off unless
// --envoy-allow-runtime-modify.
func (s *server) ModifyRuntime(ctx context.Context, req *triagev1.ModifyRuntimeRequest) (*triagev1.ModifyRuntimeResponse, error) {
	if !s.o.AllowRuntimeModify {
		return nil, off("/runtime_modify", "--envoy-allow-runtime-modify")
	}
	if len(req.GetValues()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "values are required: the runtime keys to set")
	}
	if err := s.c.RuntimeModify(ctx, req.GetValues()); err != nil {
		return nil, grpcError(err)
	}
	s.logMutation(ctx, "envoy runtime modified", "keys", strconv.Itoa(len(req.GetValues())))
	return &triagev1.ModifyRuntimeResponse{}, nil
}

// DrainListeners implements EnvoyService.DrainListeners; off unless
// --envoy-allow-drain-listeners.
func (s *server) DrainListeners(ctx context.Context, req *triagev1.DrainListenersRequest) (*triagev1.DrainListenersResponse, error) {
	if !s.o.AllowDrainListeners {
		return nil, off("/drain_listeners", "--envoy-allow-drain-listeners")
	}
	if err := s.c.DrainListeners(ctx, envoyadmin.DrainOptions{InboundOnly: req.GetInboundOnly(), Graceful: req.GetGraceful()}); err != nil {
		return nil, grpcError(err)
	}
	s.logMutation(ctx, "envoy listeners draining", "inbound_only", strconv.FormatBool(req.GetInboundOnly()))
	return &triagev1.DrainListenersResponse{}, nil
}

// logMutation notes a mutation in the operational log (the audit log has every call).
func (s *server) logMutation(ctx context.Context, msg string, kv ...string) {
	if s.log == nil {
		return
	}
	args := []any{"admin", s.c.URL()}
	if id, ok := capability.IdentityFrom(ctx); ok {
		args = append(args, "identity", id.Name)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, kv[i], kv[i+1])
	}
	s.log.InfoContext(ctx, msg, args...)
}

func durationSince(start, end time.Time) *durationpb.Duration { return durationpb.New(end.Sub(start)) }
