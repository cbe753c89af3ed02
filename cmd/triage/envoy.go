package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// envoyCommand is `triage envoy`: the Envoy beside the app, through the
// sidecar (triage-sidecar --envoy-admin URL).
func (a *app) envoyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "envoy",
		Short: "What is the Envoy beside it doing? Config explained, clusters, routes, certificates, stats, log levels, tap",
		Long: `envoy asks the sidecar about the Envoy proxy in the pod, through its admin API
(the sidecar runs with --envoy-admin, e.g. http://127.0.0.1:15000 for Istio). Reads need the
viewer role; log-level changes, healthcheck and reset-counters the operator role; tap the
capturer role. Private keys and secrets never leave the pod.

  triage envoy explain                       findings, counts, listeners, routes, clusters
  triage envoy route --host reviews:9080 --path /api
  triage envoy clusters --endpoints
  triage envoy config --resource dynamic_active_clusters > clusters.json`,
	}
	cmd.AddCommand(a.envoyExplainCommand(), a.envoyConfigCommand(), a.envoyClustersCommand(), a.envoyListenersCommand(),
		a.envoyRoutesCommand(), a.envoyCertsCommand(), a.envoyStatsCommand(), a.envoyServerInfoCommand(), a.envoyRouteCommand(),
		a.envoyLogLevelCommand(), a.envoyHealthcheckCommand(), a.envoyResetCountersCommand(), a.envoyTapCommand())
	return cmd
}

// withClient dials the sidecar (with a token of tier in Kubernetes) and
// runs f with the client.
func (a *app) withClient(ctx context.Context, tier auth.Role, f func(*client.Client) error) error {
	c, err := a.dial(ctx, tier)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

func (a *app) envoyExplainCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "explain",
		Short: "Findings, counts, listeners → routes → clusters → endpoints, rejected and warming resources",
		Long: `explain reads Envoy's config dump (with endpoints), live cluster health, certificates and
the counters that matter, and explains them. Findings come first: resources Envoy rejected,
resources still warming, clusters without healthy hosts, routes to missing clusters, expiring
certificates, circuit breakers that tripped. -o json has counts (listeners, route_configs,
virtual_hosts, routes, clusters, endpoints, healthy_endpoints, secrets) and findings.`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyExplain(cmd.Context())
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyExplain(a.stdout, resp, time.Now(), a.style())
			})
		}),
	}
}

func (a *app) envoyConfigCommand() *cobra.Command {
	var (
		req triagev1.GetConfigDumpRequest
		out string
	)
	cmd := &cobra.Command{
		Use:   "config [--resource R] [--mask M] [--eds] [--name-regex RE] [-w FILE]",
		Short: "Envoy's config dump as JSON, secrets redacted",
		Long: `config writes Envoy's /config_dump as JSON (always JSON), with private keys and other
secrets replaced by "[redacted]", to stdout or FILE.

  triage envoy config --resource dynamic_active_clusters --mask cluster.name
  triage envoy config --eds -w dump.json`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				write := func(w io.Writer) error {
					art, err := c.EnvoyConfigDump(cmd.Context(), &req, w)
					if err != nil {
						return err
					}
					if n := art.Trailer.GetCounters()["redacted"]; n > 0 && out != "" && out != "-" {
						fmt.Fprintf(a.stderr, "%d secret values redacted\n", n)
					}
					return nil
				}
				if out == "" || out == "-" {
					return write(a.stdout)
				}
				if err := writeFileAtomic(out, write); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "wrote %s\n", out)
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Resource, "resource", "", "only this field of the dump, e.g. dynamic_active_clusters, dynamic_listeners")
	f.StringVar(&req.Mask, "mask", "", "a field mask applied to each config, e.g. cluster.name")
	f.BoolVar(&req.IncludeEds, "eds", false, "include the endpoint assignments (include_eds)")
	f.StringVar(&req.NameRegex, "name-regex", "", "only resources whose name matches this regular expression")
	f.StringVarP(&out, "write", "w", "", "write to FILE instead of stdout")
	return cmd
}

func (a *app) envoyClustersCommand() *cobra.Command {
	var (
		name      string
		endpoints bool
	)
	cmd := &cobra.Command{
		Use:   "clusters [--name RE] [--endpoints]",
		Short: "Clusters with healthy/total endpoints, outlier ejections, state and version",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyClusters(cmd.Context(), name)
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyClusters(a.stdout, resp, render.EnvoyClustersOptions{Endpoints: endpoints}, a.style())
			})
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "only clusters whose name matches this regular expression")
	cmd.Flags().BoolVar(&endpoints, "endpoints", false, "list every endpoint with its health")
	return cmd
}

func (a *app) envoyListenersCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "listeners",
		Short: "Listeners, their filter chains, and where each sends traffic",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyListeners(cmd.Context())
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyListeners(a.stdout, resp, a.style())
			})
		}),
	}
}

func (a *app) envoyRoutesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "routes",
		Short: "Route configurations: virtual hosts and routes in the order Envoy tries them",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyRouteConfigs(cmd.Context())
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyRouteConfigs(a.stdout, resp, a.style())
			})
		}),
	}
}

func (a *app) envoyCertsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "certs",
		Short: "Certificates Envoy holds, with expiry",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyCertificates(cmd.Context())
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyCertificates(a.stdout, resp, time.Now(), a.style())
			})
		}),
	}
}

func (a *app) envoyStatsCommand() *cobra.Command {
	var (
		req    triagev1.GetStatsRequest
		format string
	)
	cmd := &cobra.Command{
		Use:   "stats [--filter RE] [--used-only] [--max N]",
		Short: "Envoy's statistics, filtered",
		Long: `stats prints Envoy's statistics as Envoy's text form does, "name: value" a line, at most
--max of them (and at most the sidecar's --envoy-max-stats).

  triage envoy stats --filter 'cluster\..*\.upstream_rq_5xx$' --used-only`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "text":
				req.Format = triagev1.EnvoyStatsFormat_ENVOY_STATS_FORMAT_TEXT
			case "json":
				req.Format = triagev1.EnvoyStatsFormat_ENVOY_STATS_FORMAT_JSON
			default:
				return usageError{fmt.Sprintf("--source %q: use text or json", format)}
			}
			if req.MaxStats < 0 {
				return usageError{"--max must not be negative"}
			}
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyStats(cmd.Context(), &req)
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyStats(a.stdout, resp)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Filter, "filter", "", "only stats whose name matches this regular expression")
	f.BoolVar(&req.UsedOnly, "used-only", false, "only stats that were updated at least once")
	f.Int32Var(&req.MaxStats, "max", 0, "at most N stats (0: the sidecar's limit)")
	f.StringVar(&format, "source", "text", "which form of Envoy's /stats the sidecar reads: text (with histogram quantiles) or json")
	return cmd
}

func (a *app) envoyServerInfoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "server-info",
		Short: "Envoy's version, state, readiness, uptime, node and memory",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyServerInfo(cmd.Context())
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyServerInfo(a.stdout, resp, a.style())
			})
		}),
	}
}

func (a *app) envoyRouteCommand() *cobra.Command {
	var (
		req     triagev1.MatchRouteRequest
		headers []string
	)
	cmd := &cobra.Command{
		Use:   "route --host H [--path P] [--method M] [--header K=V]...",
		Short: "Where does this request go? The route, the cluster and its healthy endpoints",
		Long: `route walks Envoy's route configuration as Envoy does: the virtual host by domain
(exact, then wildcards), then the first route whose path, headers and query match, and shows
the route, its cluster and the cluster's healthy endpoints. The host's port, when given,
chooses the route configurations of the listeners on that port.

  triage envoy route --host reviews.default.svc.cluster.local:9080 --path /reviews/1
  triage envoy route --host shop.example.com --path /api --header x-canary=true`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if req.Host == "" {
				return usageError{"--host is required"}
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok || k == "" {
					return usageError{fmt.Sprintf("--header %q: use NAME=VALUE", h)}
				}
				if req.Headers == nil {
					req.Headers = map[string]string{}
				}
				req.Headers[strings.ToLower(k)] = v
			}
			return a.withClient(cmd.Context(), auth.Viewer, func(c *client.Client) error {
				resp, err := c.EnvoyMatchRoute(cmd.Context(), &req)
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, resp)
				}
				return render.EnvoyRoute(a.stdout, &req, resp, a.style())
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Host, "host", "", "the request's :authority (Host header), with or without :port")
	f.StringVar(&req.Path, "path", "/", "the request's :path, with the query string if any")
	f.StringVar(&req.Method, "method", "GET", "the request's :method")
	f.StringArrayVar(&headers, "header", nil, "a request header NAME=VALUE (repeatable)")
	f.StringVar(&req.RouteConfig, "route-config", "", "search only route configurations of this name")
	f.Uint32Var(&req.Port, "port", 0, "search only route configurations of listeners on this port")
	return cmd
}

func (a *app) envoyLogLevelCommand() *cobra.Command {
	var logger string
	cmd := &cobra.Command{
		Use:   "log-level [LEVEL] [--logger L]",
		Short: "Envoy's log levels; with LEVEL, set every logger's (or --logger's) level (operator)",
		Long: `log-level lists Envoy's loggers and their levels. With LEVEL (trace, debug, info, warning,
error, critical, off) it sets every logger's level, or only --logger's; that needs the operator
role and is audited.

  triage envoy log-level debug --logger router`,
		Args: cobra.MaximumNArgs(2),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			args = a.takeTarget(args, false)
			if len(args) > 1 {
				return usageError{fmt.Sprintf("log-level takes one LEVEL, got %q", args)}
			}
			if len(args) == 0 && logger != "" {
				return usageError{"--logger needs a LEVEL"}
			}
			tier := auth.Viewer
			if len(args) == 1 {
				tier = auth.Operator
			}
			return a.withClient(cmd.Context(), tier, func(c *client.Client) error {
				var (
					ls  []*triagev1.EnvoyLogger
					err error
				)
				if len(args) == 1 {
					ls, err = c.EnvoySetLogLevel(cmd.Context(), args[0], logger)
				} else {
					ls, err = c.EnvoyLogLevels(cmd.Context())
				}
				if err != nil {
					return err
				}
				if a.json() {
					return render.JSON(a.stdout, &triagev1.GetLogLevelsResponse{Loggers: ls})
				}
				return render.EnvoyLoggers(a.stdout, ls, a.style())
			})
		}),
	}
	cmd.Flags().StringVar(&logger, "logger", "", "set only this logger's level (see the list for names)")
	return cmd
}

func (a *app) envoyHealthcheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "healthcheck fail|ok",
		Short: "Make Envoy fail its health checks (out of load balancing) or pass them again (operator)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 && isTargetArg(args[0]) {
				args = args[1:]
			}
			if len(args) != 1 {
				return usageError{"healthcheck takes fail or ok (after an optional target such as pod/NAME)"}
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			args = a.takeTarget(args, false)
			var action triagev1.EnvoyHealthCheck
			msg := ""
			switch args[0] {
			case "fail":
				action, msg = triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_FAIL, "Envoy now fails its health checks: load balancers take the pod out; undo with: triage envoy healthcheck ok"
			case "ok":
				action, msg = triagev1.EnvoyHealthCheck_ENVOY_HEALTH_CHECK_OK, "Envoy passes its health checks again"
			default:
				return usageError{fmt.Sprintf("healthcheck %q: use fail or ok", args[0])}
			}
			return a.withClient(cmd.Context(), auth.Operator, func(c *client.Client) error {
				if err := c.EnvoySetHealthCheck(cmd.Context(), action); err != nil {
					return err
				}
				return a.done(args[0], msg)
			})
		}),
	}
}

func (a *app) envoyResetCountersCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "reset-counters",
		Short: "Zero Envoy's counters (operator)",
		Args:  a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), auth.Operator, func(c *client.Client) error {
				if err := c.EnvoyResetCounters(cmd.Context()); err != nil {
					return err
				}
				return a.done("reset", "Envoy's counters are zero")
			})
		}),
	}
}

// done reports a mutation: {"done": what} for scripts, msg for people.
func (a *app) done(what, msg string) error {
	if a.json() {
		b, _ := json.Marshal(what)
		return render.Object(a.stdout, []string{"done"}, map[string]json.RawMessage{"done": b})
	}
	_, err := fmt.Fprintln(a.stdout, msg)
	return err
}

func (a *app) envoyTapCommand() *cobra.Command {
	var (
		req      triagev1.TapRequest
		duration time.Duration
		config   string
		out      string
	)
	cmd := &cobra.Command{
		Use:   "tap --config-id ID [--config JSON|@FILE] [--duration D] [--max-bytes N] -w FILE|-",
		Short: "Tap HTTP traffic through a tap filter: traces as newline-delimited JSON (capturer)",
		Long: `tap asks Envoy, through the sidecar, to stream the HTTP traces of a tap filter configured
with admin_config.config_id ID, and writes them one JSON object a line. --config is a
TapConfig (JSON, or @FILE); without it every request is tapped. The tap ends at --duration
or --max-bytes, each capped by the sidecar.

  triage envoy tap --config-id http_tap --duration 10s -w - | jq .http_buffered_trace.request`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			switch {
			case req.ConfigId == "":
				return usageError{"--config-id is required: the admin config_id of a tap filter in Envoy's config"}
			case out == "":
				return usageError{"-w FILE is required (-w - writes the traces to stdout)"}
			case out == "-" && a.json():
				return usageError{"-w - writes the traces to stdout: drop -o json"}
			case duration < 0 || req.MaxBytes < 0:
				return usageError{"--duration and --max-bytes must not be negative"}
			}
			if strings.HasPrefix(config, "@") {
				b, err := os.ReadFile(config[1:])
				if err != nil {
					return usageError{fmt.Sprintf("--config %s: %v", config, err)}
				}
				config = string(b)
			}
			req.TapConfigJson = config
			if duration > 0 {
				req.Duration = durationpb.New(duration)
			}
			return a.withClient(cmd.Context(), auth.Capturer, func(c *client.Client) error {
				return a.tap(cmd.Context(), c, &req, out)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.ConfigId, "config-id", "", "the admin config_id of a tap filter in Envoy's config")
	f.StringVar(&config, "config", "", "a TapConfig as JSON, or @FILE (default: every request, to the streaming admin sink)")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to tap (capped by the sidecar's --envoy-tap-max-duration)")
	f.Int64Var(&req.MaxBytes, "max-bytes", 0, "stop before the output exceeds this size (0: the sidecar's maximum)")
	f.StringVarP(&out, "write", "w", "", "write the traces to FILE (- for stdout); required")
	return cmd
}

func (a *app) tap(ctx context.Context, c *client.Client, req *triagev1.TapRequest, out string) error {
	msg := a.stdout
	var art *client.Artifact
	var err error
	if out == "-" {
		msg = a.stderr
		art, err = c.EnvoyTap(ctx, req, a.stdout)
	} else {
		err = writeFileAtomic(out, func(w io.Writer) error {
			var terr error
			art, terr = c.EnvoyTap(ctx, req, w)
			return terr
		})
	}
	if err != nil {
		return err
	}
	t := art.Trailer
	for _, n := range t.GetNotes() {
		fmt.Fprintf(a.stderr, "note: %s\n", n)
	}
	if a.json() {
		parts := map[string]json.RawMessage{}
		parts["file"], _ = json.Marshal(out)
		parts["traces"], _ = json.Marshal(t.GetCounters()["traces"])
		parts["bytes"], _ = json.Marshal(art.Written)
		parts["stop_reason"], _ = json.Marshal(t.GetStopReason())
		if parts["trailer"], err = render.MarshalJSON(t); err != nil {
			return err
		}
		return render.Object(a.stdout, []string{"file", "traces", "bytes", "stop_reason", "trailer"}, parts)
	}
	fmt.Fprintf(msg, "tapped %d traces (%s) from config_id %s, stopped by %s\n",
		t.GetCounters()["traces"], render.Bytes(uint64(art.Written)), req.GetConfigId(), tapStopWords(t.GetStopReason()))
	return nil
}

func tapStopWords(r string) string {
	switch r {
	case "duration":
		return "its duration"
	case "bytes":
		return "its byte limit"
	case "complete":
		return "Envoy (the tap ended)"
	case "client":
		return "the sidecar"
	}
	return r
}
