package client

import (
	"context"
	"io"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// The Envoy calls: the sidecar reads the Envoy admin beside the app
// (--envoy-admin) for viewers, forwards the few mutations for operators and
// taps HTTP traffic for capturers. A sidecar without --envoy-admin answers
// Unimplemented (triage explain says why the capability is off); an Envoy
// that does not answer is Unavailable, naming the admin URL.

// EnvoyExplain explains the Envoy's configuration: counts, the listener →
// route → cluster → endpoint tree, rejected and warming resources, findings.
func (c *Client) EnvoyExplain(ctx context.Context) (*triagev1.EnvoyServiceExplainResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.Explain(ctx, &triagev1.EnvoyServiceExplainRequest{})
	return resp, c.wrap("envoy explain", err)
}

// EnvoyConfigDump streams Envoy's config dump (JSON, secrets scrubbed) into w.
func (c *Client) EnvoyConfigDump(ctx context.Context, req *triagev1.GetConfigDumpRequest, w io.Writer, opts ...ArtifactOption) (*Artifact, error) {
	const op = "envoy config dump"
	ctx, cancel := c.call(ctx)
	defer cancel()
	stream, err := c.envoy.GetConfigDump(ctx, req)
	if err != nil {
		return nil, c.wrap(op, err)
	}
	a, err := ReadArtifact(stream, w, opts...)
	return a, c.wrap(op, err)
}

// EnvoyClusters lists the clusters whose name matches nameRegex ("" for
// all), with their endpoints and health.
func (c *Client) EnvoyClusters(ctx context.Context, nameRegex string) (*triagev1.ListClustersResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.ListClusters(ctx, &triagev1.ListClustersRequest{NameRegex: nameRegex})
	return resp, c.wrap("envoy clusters", err)
}

// EnvoyListeners lists the listeners with their filter chains.
func (c *Client) EnvoyListeners(ctx context.Context) (*triagev1.ListListenersResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.ListListeners(ctx, &triagev1.ListListenersRequest{})
	return resp, c.wrap("envoy listeners", err)
}

// EnvoyRouteConfigs lists the route configurations with their virtual
// hosts and routes.
func (c *Client) EnvoyRouteConfigs(ctx context.Context) (*triagev1.ListRouteConfigsResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.ListRouteConfigs(ctx, &triagev1.ListRouteConfigsRequest{})
	return resp, c.wrap("envoy routes", err)
}

// EnvoyCertificates lists Envoy's certificates with expiry.
func (c *Client) EnvoyCertificates(ctx context.Context) (*triagev1.GetCertificatesResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.GetCertificates(ctx, &triagev1.GetCertificatesRequest{})
	return resp, c.wrap("envoy certificates", err)
}

// EnvoyStats returns Envoy's statistics.
func (c *Client) EnvoyStats(ctx context.Context, req *triagev1.GetStatsRequest) (*triagev1.GetStatsResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.GetStats(ctx, req)
	return resp, c.wrap("envoy stats", err)
}

// EnvoyServerInfo returns Envoy's version, state, uptime, readiness and memory.
func (c *Client) EnvoyServerInfo(ctx context.Context) (*triagev1.GetServerInfoResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.GetServerInfo(ctx, &triagev1.GetServerInfoRequest{})
	return resp, c.wrap("envoy server info", err)
}

// EnvoyMatchRoute answers where a request goes: route, cluster, healthy endpoints.
func (c *Client) EnvoyMatchRoute(ctx context.Context, req *triagev1.MatchRouteRequest) (*triagev1.MatchRouteResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.MatchRoute(ctx, req)
	return resp, c.wrap("envoy route", err)
}

// EnvoyLogLevels lists Envoy's loggers and their levels.
func (c *Client) EnvoyLogLevels(ctx context.Context) ([]*triagev1.EnvoyLogger, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.GetLogLevels(ctx, &triagev1.GetLogLevelsRequest{})
	if err != nil {
		return nil, c.wrap("envoy log levels", err)
	}
	return resp.GetLoggers(), nil
}

// EnvoySetLogLevel sets every logger's level (logger "") or one logger's,
// and returns the loggers after the change. It needs the operator role.
func (c *Client) EnvoySetLogLevel(ctx context.Context, level, logger string) ([]*triagev1.EnvoyLogger, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.envoy.SetLogLevel(ctx, &triagev1.SetLogLevelRequest{Level: level, Logger: logger})
	if err != nil {
		return nil, c.wrap("envoy set log level", err)
	}
	return resp.GetLoggers(), nil
}

// EnvoySetHealthCheck makes Envoy fail its health checks (taking the pod
// out of load balancing) or pass them again. It needs the operator role.
func (c *Client) EnvoySetHealthCheck(ctx context.Context, action triagev1.EnvoyHealthCheck) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.envoy.SetHealthCheck(ctx, &triagev1.SetHealthCheckRequest{Action: action})
	return c.wrap("envoy health check", err)
}

// EnvoyResetCounters zeroes Envoy's counters. It needs the operator role.
func (c *Client) EnvoyResetCounters(ctx context.Context) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.envoy.ResetCounters(ctx, &triagev1.ResetCountersRequest{})
	return c.wrap("envoy reset counters", err)
}

// EnvoyTap streams the traces of a tap filter (newline-delimited JSON) into
// w. The client's timeout is extended by the requested duration; without
// one, the server's maximum bounds the call.
func (c *Client) EnvoyTap(ctx context.Context, req *triagev1.TapRequest, w io.Writer, opts ...ArtifactOption) (*Artifact, error) {
	const op = "envoy tap"
	var cancel context.CancelFunc
	if d := req.GetDuration().AsDuration(); d > 0 {
		ctx, cancel = c.callFor(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	stream, err := c.envoy.Tap(ctx, req)
	if err != nil {
		return nil, c.wrap(op, err)
	}
	a, err := ReadArtifact(stream, w, opts...)
	return a, c.wrap(op, err)
}

// EnvoyQuit asks Envoy to exit. The sidecar forwards it only when started
// with --envoy-allow-quit; it needs the operator role.
func (c *Client) EnvoyQuit(ctx context.Context) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.envoy.Quit(ctx, &triagev1.QuitRequest{})
	return c.wrap("envoy quit", err)
}

// EnvoyModifyRuntime sets runtime keys. The sidecar forwards it only when
// started with --envoy-allow-runtime-modify; it needs the operator role.
func (c *Client) EnvoyModifyRuntime(ctx context.Context, values map[string]string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.envoy.ModifyRuntime(ctx, &triagev1.ModifyRuntimeRequest{Values: values})
	return c.wrap("envoy runtime modify", err)
}

// EnvoyDrainListeners drains Envoy's listeners. The sidecar forwards it
// only when started with --envoy-allow-drain-listeners; it needs the
// operator role.
func (c *Client) EnvoyDrainListeners(ctx context.Context, req *triagev1.DrainListenersRequest) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.envoy.DrainListeners(ctx, req)
	return c.wrap("envoy drain listeners", err)
}
