// Package envoyadmin reads Envoy's admin API: the typed config dump (with
// secrets scrubbed), clusters, listeners, certificates, stats, server info,
// readiness, memory and log levels, and forwards the few mutations triage
// allows (log level, health-check fail/ok, reset counters, tap).
//
// The admin API is reached over HTTP on loopback (Istio: http://127.0.0.1:15000,
// plain Envoy: usually :9901) or over a Unix socket (unix:///path/admin.sock).
// Every call takes a context, has a timeout and a response-size limit, and
// fails with an *Error whose Kind a service maps to a gRPC code.
//
// Envoy's admin is unauthenticated and has dangerous endpoints
// (/quitquitquit, /runtime_modify, /drain_listeners). The client refuses them
// unless Options enables each one explicitly.
package envoyadmin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/triage-sh/triage/internal/envoyadmin/adminurl"
)

// Defaults used when Options leaves a field zero.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 64 << 20
)

// Options configure a Client.
type Options struct {
	// Timeout bounds each request (connect, headers and body). Zero means
	// DefaultTimeout. Tap streams are bounded by their context instead.
	Timeout time.Duration
	// MaxResponseBytes bounds each response body. Zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// AllowRemote permits an admin address that is not loopback. Envoy's
	// admin is unauthenticated, so it should never be reached across a
	// network; the default refuses.
	AllowRemote bool
	// AllowQuit enables Quit (POST /quitquitquit).
	AllowQuit bool
	// AllowRuntimeModify enables RuntimeModify (POST /runtime_modify).
	AllowRuntimeModify bool
	// AllowDrainListeners enables DrainListeners (POST /drain_listeners).
	AllowDrainListeners bool
	// Transport, when set, replaces the client's transport (tests).
	Transport http.RoundTripper
}

// Client talks to one Envoy's admin API. It is safe for concurrent use.
type Client struct {
	url     string // as given, for messages
	base    *url.URL
	http    *http.Client
	opts    Options
	timeout time.Duration
	max     int64
}

// New returns a client for the admin API at rawURL: http://host:port
// (loopback unless Options.AllowRemote), https://..., or unix:///path.
func New(rawURL string, opts Options) (*Client, error) {
	t, err := adminurl.Parse(rawURL, opts.AllowRemote)
	if err != nil {
		return nil, &Error{Kind: KindInvalidArgument, URL: rawURL, Msg: err.Error()}
	}
	c := &Client{url: rawURL, opts: opts, timeout: opts.Timeout, max: opts.MaxResponseBytes}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.max <= 0 {
		c.max = DefaultMaxResponseBytes
	}
	tr := opts.Transport
	switch t.Scheme {
	case "http", "https":
		c.base = &url.URL{Scheme: t.Scheme, Host: t.Host, Path: t.Path}
		if tr == nil {
			tr = newTransport(nil)
		}
	case "unix":
		c.base = &url.URL{Scheme: "http", Host: "envoy-admin"}
		if tr == nil {
			tr = newTransport(func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", t.Socket)
			})
		}
	}
	c.http = &http.Client{
		Transport: tr,
		// Envoy's admin never redirects; a redirect means something else answers.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = d.DialContext
	}
	return &http.Transport{
		Proxy:               nil, // never through a proxy: the admin is local
		DialContext:         dial,
		MaxIdleConns:        4,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// URL returns the admin URL the client was made with.
func (c *Client) URL() string { return c.url }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// ErrorKind classifies an Error for the service's status codes.
type ErrorKind int

// Error kinds, with the gRPC code the service should use.
const (
	// KindUnavailable: Envoy is not reachable (Unavailable).
	KindUnavailable ErrorKind = iota + 1
	// KindTimeout: Envoy did not answer in time (DeadlineExceeded).
	KindTimeout
	// KindTooLarge: the response is larger than the limit (ResourceExhausted).
	KindTooLarge
	// KindNotFound: Envoy answered 404, e.g. an unknown resource (NotFound).
	KindNotFound
	// KindStatus: Envoy answered another non-2xx status (Unavailable or Internal).
	KindStatus
	// KindDecode: the answer is not what Envoy's admin returns (Internal).
	KindDecode
	// KindUnsupported: a pre-v3 (v2alpha) config dump (FailedPrecondition).
	KindUnsupported
	// KindDisabled: a dangerous endpoint that Options does not enable
	// (FailedPrecondition).
	KindDisabled
	// KindInvalidArgument: a bad URL, level, logger name or filter
	// (InvalidArgument).
	KindInvalidArgument
)

func (k ErrorKind) String() string {
	switch k {
	case KindUnavailable:
		return "unavailable"
	case KindTimeout:
		return "timeout"
	case KindTooLarge:
		return "too-large"
	case KindNotFound:
		return "not-found"
	case KindStatus:
		return "status"
	case KindDecode:
		return "decode"
	case KindUnsupported:
		return "unsupported"
	case KindDisabled:
		return "disabled"
	case KindInvalidArgument:
		return "invalid-argument"
	}
	return "unknown"
}

// Error is every error the client returns. Its message names the URL and
// says what to do next.
type Error struct {
	Kind ErrorKind
	// Method and URL of the request, URL as the user gave it plus the path.
	Method, URL string
	// StatusCode is the HTTP status when Envoy answered.
	StatusCode int
	// Limit is the size limit for KindTooLarge.
	Limit int64
	// Msg is the human explanation.
	Msg string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Method != "" {
		b.WriteString(e.Method + " ")
	}
	if e.URL != "" {
		b.WriteString(e.URL + ": ")
	}
	b.WriteString(e.Msg)
	if e.Err != nil && !strings.Contains(e.Msg, e.Err.Error()) {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err if it is (or wraps) an *Error, else 0.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = q.Encode()
	return u.String()
}

// display is the URL as the user knows it, for error messages.
func (c *Client) display(path string, q url.Values) string {
	s := strings.TrimSuffix(c.url, "/") + path
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// do sends one request and reads the whole (limited) body. A non-2xx answer
// is an error unless okStatus accepts it.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, okStatus func(int) bool) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, q, body)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	disp := c.display(path, q)
	if resp.ContentLength > c.max {
		return nil, resp.StatusCode, c.tooLarge(method, disp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.max+1))
	if err != nil {
		return nil, resp.StatusCode, c.transportError(ctx, method, disp, err)
	}
	if int64(len(b)) > c.max {
		return nil, resp.StatusCode, c.tooLarge(method, disp)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if okStatus != nil {
		ok = okStatus(resp.StatusCode)
	}
	if !ok {
		return b, resp.StatusCode, c.statusError(method, disp, resp.StatusCode, b)
	}
	return b, resp.StatusCode, nil
}

func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), r)
	if err != nil {
		return nil, &Error{Kind: KindInvalidArgument, Method: method, URL: c.display(path, q), Msg: "bad request", Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "triage-envoyadmin")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, method, c.display(path, q), err)
	}
	return resp, nil
}

func (c *Client) tooLarge(method, disp string) error {
	return &Error{Kind: KindTooLarge, Method: method, URL: disp, Limit: c.max,
		Msg: fmt.Sprintf("response exceeds the %s limit (max response bytes %d); narrow it (config dump: resource= or mask=; stats: filter=) or raise the limit", humanBytes(c.max), c.max)}
}

func (c *Client) transportError(ctx context.Context, method, disp string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err) {
		return &Error{Kind: KindTimeout, Method: method, URL: disp, Err: err,
			Msg: fmt.Sprintf("envoy admin did not answer within %s; is Envoy overloaded or stuck?", c.timeout)}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Kind: KindTimeout, Method: method, URL: disp, Err: err, Msg: "canceled"}
	}
	msg := "envoy admin is unreachable; is Envoy running and is --envoy-admin right?"
	if errors.Is(err, syscall.ECONNREFUSED) {
		msg = "connection refused: nothing listens there; is Envoy running and is --envoy-admin right (Istio: http://127.0.0.1:15000)?"
	} else if errors.Is(err, syscall.ENOENT) {
		msg = "the Unix socket does not exist; is Envoy running with its admin on that socket?"
	}
	return &Error{Kind: KindUnavailable, Method: method, URL: disp, Err: err, Msg: msg}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Client) statusError(method, disp string, code int, body []byte) error {
	text := strings.TrimSpace(string(body))
	if len(text) > 300 {
		text = text[:300] + "..."
	}
	kind := KindStatus
	msg := fmt.Sprintf("envoy admin answered %d %s", code, http.StatusText(code))
	if code == http.StatusNotFound {
		kind = KindNotFound
		msg += " (unknown path or resource)"
	}
	if text != "" {
		msg += ": " + text
	}
	return &Error{Kind: kind, Method: method, URL: disp, StatusCode: code, Msg: msg}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// unmarshalOpts reads the admin's JSON: both snake_case and lowerCamelCase
// names, and fields newer than go-control-plane are skipped.
func unmarshalOpts() protojson.UnmarshalOptions {
	return protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: newResolver()}
}

func (c *Client) getProto(ctx context.Context, path string, q url.Values, m proto.Message) error {
	b, _, err := c.do(ctx, http.MethodGet, path, q, nil, nil)
	if err != nil {
		return err
	}
	if err := unmarshalOpts().Unmarshal(b, m); err != nil {
		return &Error{Kind: KindDecode, Method: http.MethodGet, URL: c.display(path, q), Err: err,
			Msg: "the answer is not the JSON Envoy's admin returns; is this an Envoy admin endpoint?"}
	}
	return nil
}

// ConfigDumpOptions select what /config_dump returns.
type ConfigDumpOptions struct {
	// IncludeEDS adds the EndpointsConfigDump (include_eds).
	IncludeEDS bool
	// Resource limits the dump to one field, e.g. "dynamic_listeners"
	// (resource=).
	Resource string
	// Mask is a comma-separated field mask applied to each config (mask=).
	Mask string
	// NameRegex keeps only resources whose name matches (name_regex=).
	NameRegex string
}

// ConfigDump fetches /config_dump and decodes it (see Decode): the typed dump,
// and the raw JSON, both with secrets scrubbed.
func (c *Client) ConfigDump(ctx context.Context, o ConfigDumpOptions) (*ConfigDump, error) {
	q := url.Values{}
	if o.IncludeEDS {
		q.Set("include_eds", "")
	}
	if o.Resource != "" {
		q.Set("resource", o.Resource)
	}
	if o.Mask != "" {
		q.Set("mask", o.Mask)
	}
	if o.NameRegex != "" {
		if _, err := regexp.Compile(o.NameRegex); err != nil {
			return nil, &Error{Kind: KindInvalidArgument, URL: c.display("/config_dump", q), Msg: "name regex does not compile", Err: err}
		}
		q.Set("name_regex", o.NameRegex)
	}
	b, _, err := c.do(ctx, http.MethodGet, "/config_dump", q, nil, nil)
	if err != nil {
		return nil, err
	}
	d, err := Decode(b)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Method, e.URL = http.MethodGet, c.display("/config_dump", q)
		}
		return nil, err
	}
	return d, nil
}

// Clusters fetches /clusters?format=json: each cluster's hosts with their
// health flags and counters.
func (c *Client) Clusters(ctx context.Context) (*adminv3.Clusters, error) {
	m := &adminv3.Clusters{}
	return m, c.getProto(ctx, "/clusters", url.Values{"format": {"json"}}, m)
}

// Listeners fetches /listeners?format=json.
func (c *Client) Listeners(ctx context.Context) (*adminv3.Listeners, error) {
	m := &adminv3.Listeners{}
	return m, c.getProto(ctx, "/listeners", url.Values{"format": {"json"}}, m)
}

// ServerInfo fetches /server_info.
func (c *Client) ServerInfo(ctx context.Context) (*adminv3.ServerInfo, error) {
	m := &adminv3.ServerInfo{}
	return m, c.getProto(ctx, "/server_info", nil, m)
}

// Certs fetches /certs: the certificates Envoy holds, with expiry.
func (c *Client) Certs(ctx context.Context) (*adminv3.Certificates, error) {
	m := &adminv3.Certificates{}
	return m, c.getProto(ctx, "/certs", nil, m)
}

// Memory fetches /memory.
func (c *Client) Memory(ctx context.Context) (*adminv3.Memory, error) {
	m := &adminv3.Memory{}
	return m, c.getProto(ctx, "/memory", nil, m)
}

// Readiness is /ready's answer.
type Readiness struct {
	// State is Envoy's server state: LIVE, DRAINING, PRE_INITIALIZING, INITIALIZING.
	State string `json:"state"`
	// Ready is true when Envoy answered 200.
	Ready      bool `json:"ready"`
	StatusCode int  `json:"status_code"`
}

// Ready fetches /ready. A 503 is an answer (not ready), not an error.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	b, code, err := c.do(ctx, http.MethodGet, "/ready", nil, nil, func(code int) bool {
		return code == http.StatusOK || code == http.StatusServiceUnavailable
	})
	if err != nil {
		return nil, err
	}
	return &Readiness{State: strings.TrimSpace(string(b)), Ready: code == http.StatusOK, StatusCode: code}, nil
}

// StatsOptions select what /stats returns.
type StatsOptions struct {
	// Filter is a regular expression on stat names (filter=).
	Filter string
	// UsedOnly keeps stats that were updated at least once (usedonly).
	UsedOnly bool
	// Type is "Counters", "Gauges", "Histograms", "TextReadouts" or "" for all
	// (type=, Envoy 1.22+).
	Type string
}

func (o StatsOptions) query() (url.Values, error) {
	q := url.Values{}
	if o.Filter != "" {
		if _, err := regexp.Compile(o.Filter); err != nil {
			return nil, &Error{Kind: KindInvalidArgument, Msg: "stats filter is not a valid regular expression", Err: err}
		}
		q.Set("filter", o.Filter)
	}
	if o.UsedOnly {
		q.Set("usedonly", "")
	}
	switch o.Type {
	case "", "Counters", "Gauges", "Histograms", "TextReadouts", "All":
		if o.Type != "" {
			q.Set("type", o.Type)
		}
	default:
		return nil, &Error{Kind: KindInvalidArgument, Msg: fmt.Sprintf("stats type %q is not Counters, Gauges, Histograms, TextReadouts or All", o.Type)}
	}
	return q, nil
}

// Stats fetches /stats in text form and parses it.
func (c *Client) Stats(ctx context.Context, o StatsOptions) ([]Stat, error) {
	b, err := c.StatsText(ctx, o)
	if err != nil {
		return nil, err
	}
	st, err := ParseStatsText(b)
	if err != nil {
		return nil, &Error{Kind: KindDecode, Method: http.MethodGet, URL: c.display("/stats", nil), Err: err, Msg: "stats text does not parse"}
	}
	return st, nil
}

// StatsText fetches /stats in Envoy's text form, unparsed.
func (c *Client) StatsText(ctx context.Context, o StatsOptions) ([]byte, error) {
	q, err := o.query()
	if err != nil {
		return nil, err
	}
	b, _, err := c.do(ctx, http.MethodGet, "/stats", q, nil, nil)
	return b, err
}

// StatsJSON fetches /stats?format=json and parses it.
func (c *Client) StatsJSON(ctx context.Context, o StatsOptions) ([]Stat, error) {
	q, err := o.query()
	if err != nil {
		return nil, err
	}
	q.Set("format", "json")
	b, _, err := c.do(ctx, http.MethodGet, "/stats", q, nil, nil)
	if err != nil {
		return nil, err
	}
	st, err := ParseStatsJSON(b)
	if err != nil {
		return nil, &Error{Kind: KindDecode, Method: http.MethodGet, URL: c.display("/stats", q), Err: err, Msg: "stats JSON does not parse"}
	}
	return st, nil
}

// Logging returns the active loggers and their levels (POST /logging with no
// arguments, which changes nothing; GET /logging on Envoys before 1.17).
func (c *Client) Logging(ctx context.Context) ([]Logger, error) {
	b, _, err := c.do(ctx, http.MethodPost, "/logging", nil, nil, nil)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.StatusCode == http.StatusMethodNotAllowed {
			b, _, err = c.do(ctx, http.MethodGet, "/logging", nil, nil, nil)
		}
		if err != nil {
			return nil, err
		}
	}
	return ParseLogging(b), nil
}

// Log levels Envoy accepts.
var logLevels = map[string]bool{"trace": true, "debug": true, "info": true, "warning": true, "warn": true, "error": true, "critical": true, "off": true}

var loggerName = regexp.MustCompile(`^[A-Za-z0-9_.]+$`)

// SetLogLevel sets the level of every logger (logger == "") or of one logger,
// and returns the loggers after the change.
func (c *Client) SetLogLevel(ctx context.Context, level, logger string) ([]Logger, error) {
	level = strings.ToLower(level)
	if !logLevels[level] {
		return nil, &Error{Kind: KindInvalidArgument, URL: c.display("/logging", nil), Msg: fmt.Sprintf("log level %q is not one of trace, debug, info, warning, error, critical, off", level)}
	}
	q := url.Values{}
	if logger == "" {
		q.Set("level", level)
	} else {
		if !loggerName.MatchString(logger) {
			return nil, &Error{Kind: KindInvalidArgument, URL: c.display("/logging", nil), Msg: fmt.Sprintf("logger name %q is not a word; see `triage envoy log-level` for the names", logger)}
		}
		q.Set(logger, level)
	}
	b, _, err := c.do(ctx, http.MethodPost, "/logging", q, nil, nil)
	if err != nil {
		return nil, err
	}
	return ParseLogging(b), nil
}

// HealthcheckFail makes Envoy fail its health checks (POST /healthcheck/fail),
// which takes the pod out of load balancing.
func (c *Client) HealthcheckFail(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodPost, "/healthcheck/fail", nil, nil, nil)
	return err
}

// HealthcheckOk undoes HealthcheckFail (POST /healthcheck/ok).
func (c *Client) HealthcheckOk(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodPost, "/healthcheck/ok", nil, nil, nil)
	return err
}

// ResetCounters zeroes every counter (POST /reset_counters).
func (c *Client) ResetCounters(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodPost, "/reset_counters", nil, nil, nil)
	return err
}

// Tap starts an HTTP tap (POST /tap) for a tap filter configured with an
// admin config_id, and returns Envoy's streamed output: one JSON trace per
// tapped request, until ctx ends or the match limit is reached. The caller
// closes the stream and bounds its duration and size; the client's timeout
// applies only until the response headers arrive.
func (c *Client) Tap(ctx context.Context, req *adminv3.TapRequest) (io.ReadCloser, error) {
	if req.GetConfigId() == "" {
		return nil, &Error{Kind: KindInvalidArgument, URL: c.display("/tap", nil), Msg: "tap needs the config_id of a tap filter configured with admin_config"}
	}
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(req)
	if err != nil {
		return nil, &Error{Kind: KindInvalidArgument, URL: c.display("/tap", nil), Msg: "tap request does not marshal", Err: err}
	}
	hctx, cancelHeaders := context.WithCancel(ctx)
	timer := time.AfterFunc(c.timeout, cancelHeaders)
	resp, err := c.send(hctx, http.MethodPost, "/tap", nil, body)
	fired := !timer.Stop()
	if err == nil && fired {
		resp.Body.Close()
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancelHeaders()
		if fired {
			return nil, &Error{Kind: KindTimeout, Method: http.MethodPost, URL: c.display("/tap", nil), Msg: fmt.Sprintf("envoy admin did not start the tap within %s", c.timeout), Err: err}
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		defer cancelHeaders()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, c.statusError(http.MethodPost, c.display("/tap", nil), resp.StatusCode, b)
	}
	return &tapStream{ReadCloser: resp.Body, cancel: cancelHeaders}, nil
}

type tapStream struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (t *tapStream) Close() error {
	err := t.ReadCloser.Close()
	t.cancel()
	return err
}

func (c *Client) disabled(path, option string) error {
	return &Error{Kind: KindDisabled, Method: http.MethodPost, URL: c.display(path, nil),
		Msg: fmt.Sprintf("%s is dangerous and disabled; the sidecar forwards it only when started with the flag that sets Options.%s", path, option)}
}

// Quit asks Envoy to exit (POST /quitquitquit). Disabled unless
// Options.AllowQuit.
func (c *Client) Quit(ctx context.Context) error {
	if !c.opts.AllowQuit {
		return c.disabled("/quitquitquit", "AllowQuit")
	}
	_, _, err := c.do(ctx, http.MethodPost, "/quitquitquit", nil, nil, nil)
	return err
}

// RuntimeModify sets runtime keys (POST /runtime_modify?k=v). Disabled
// unless Options.AllowRuntimeModify.
func (c *Client) RuntimeModify(ctx context.Context, kv map[string]string) error {
	if !c.opts.AllowRuntimeModify {
		return c.disabled("/runtime_modify", "AllowRuntimeModify")
	}
	if len(kv) == 0 {
		return &Error{Kind: KindInvalidArgument, URL: c.display("/runtime_modify", nil), Msg: "no runtime keys to modify"}
	}
	q := url.Values{}
	for k, v := range kv {
		q.Set(k, v)
	}
	_, _, err := c.do(ctx, http.MethodPost, "/runtime_modify", q, nil, nil)
	return err
}

// DrainOptions are /drain_listeners' parameters.
type DrainOptions struct {
	InboundOnly bool // inboundonly
	Graceful    bool // graceful
}

// DrainListeners drains listeners (POST /drain_listeners). Disabled unless
// Options.AllowDrainListeners.
func (c *Client) DrainListeners(ctx context.Context, o DrainOptions) error {
	if !c.opts.AllowDrainListeners {
		return c.disabled("/drain_listeners", "AllowDrainListeners")
	}
	q := url.Values{}
	if o.InboundOnly {
		q.Set("inboundonly", "")
	}
	if o.Graceful {
		q.Set("graceful", "")
	}
	_, _, err := c.do(ctx, http.MethodPost, "/drain_listeners", q, nil, nil)
	return err
}
