package envoyexplain

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Query is a request to route: "where does this request go?".
type Query struct {
	// Host is the :authority (Host header), with or without a port.
	Host string `json:"host"`
	// Path is the :path, with the query string if any. Empty means "/".
	Path string `json:"path"`
	// Method is the :method; empty means GET.
	Method string `json:"method,omitempty"`
	// Headers are request headers (names case-insensitive).
	Headers map[string]string `json:"headers,omitempty"`
	// RouteConfig limits the search to route configurations of this name.
	RouteConfig string `json:"route_config,omitempty"`
	// Port limits the search to route configurations used by listeners on
	// this port (and RDS ones named after it, as Istio names them). Zero
	// means the Host's port, if any.
	Port uint32 `json:"port,omitempty"`
	// StripPort matches the host without its port, whatever the
	// configuration says.
	StripPort bool `json:"strip_port,omitempty"`
}

// MatchResult is the answer: one candidate per route configuration searched.
type MatchResult struct {
	Query Query `json:"query"`
	// Candidates in dump order; Matched ones first.
	Candidates []RouteMatch `json:"candidates"`
}

// Best is the first candidate with a matching route, or nil.
func (r *MatchResult) Best() *RouteMatch {
	for i := range r.Candidates {
		if r.Candidates[i].Matched {
			return &r.Candidates[i]
		}
	}
	return nil
}

// RouteMatch is how one route configuration routes the query.
type RouteMatch struct {
	RouteConfig string   `json:"route_config"`
	Source      string   `json:"source"`
	Listeners   []string `json:"listeners,omitempty"`
	// HostMatched is the host as matched (lower case; port stripped when
	// the configuration or the query says so).
	HostMatched string `json:"host_matched"`
	VirtualHost string `json:"virtual_host,omitempty"`
	// Domain is the virtual host's domain that matched.
	Domain string `json:"domain,omitempty"`
	// Matched is true when a route matched.
	Matched bool `json:"matched"`
	// Route is the matching route (its Match and Action say how).
	Route      *Route `json:"route,omitempty"`
	RouteIndex int    `json:"route_index"`
	// Clusters are the target clusters with their healthy endpoints.
	Clusters []MatchedCluster `json:"clusters,omitempty"`
	// Reason says why nothing matched, and what Envoy answers then.
	Reason string `json:"reason,omitempty"`
	// Notes are caveats, e.g. matchers triage cannot evaluate.
	Notes []string `json:"notes,omitempty"`
}

// MatchedCluster is a route's target.
type MatchedCluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight,omitempty"`
	// Exists is false when the dump has no such cluster (503 NC).
	Exists           bool       `json:"exists"`
	Total            int        `json:"total"`
	HealthyEndpoints []Endpoint `json:"healthy_endpoints,omitempty"`
}

// Match routes q. See Model.Match.
func Match(in Input, q Query) *MatchResult {
	return NewModel(in).Match(q)
}

// Match walks the route configurations as Envoy does: the virtual host by
// domain (exact, then the longest suffix wildcard "*.foo.com", then the
// longest prefix wildcard "foo.*", then "*"), then the first route whose
// path (prefix, path, safe_regex, path_separated_prefix), headers, query
// parameters and gRPC matchers all match. It searches q.RouteConfig, else
// the route configurations of listeners on q's port, else all.
func (m *Model) Match(q Query) *MatchResult {
	if q.Path == "" {
		q.Path = "/"
	}
	if q.Method == "" {
		q.Method = "GET"
	}
	res := &MatchResult{Query: q}
	port := q.Port
	if port == 0 {
		if _, p, err := net.SplitHostPort(q.Host); err == nil {
			if n, err := strconv.ParseUint(p, 10, 32); err == nil {
				port = uint32(n)
			}
		}
	}
	var cands []*routeEntry
	switch {
	case q.RouteConfig != "":
		cands = m.routeByNm[q.RouteConfig]
	case port != 0:
		ps := strconv.FormatUint(uint64(port), 10)
		for _, r := range m.routes {
			if r.listenerPort == port || (r.res.Source != "inline" && r.name == ps) {
				cands = append(cands, r)
			}
		}
		if len(cands) == 0 {
			cands = m.routes
		}
	default:
		cands = m.routes
	}
	var matched, unmatched []RouteMatch
	for _, r := range cands {
		if r.rc == nil {
			continue
		}
		rm := m.matchRoute(r, q)
		if rm.Matched {
			matched = append(matched, rm)
		} else {
			unmatched = append(unmatched, rm)
		}
	}
	res.Candidates = append(matched, unmatched...)
	return res
}

func (m *Model) matchRoute(r *routeEntry, q Query) RouteMatch {
	rm := RouteMatch{RouteConfig: r.name, Source: r.res.Source, Listeners: r.usedBy, RouteIndex: -1}
	host := strings.ToLower(q.Host)
	strip := q.StripPort || r.rc.GetIgnorePortInHostMatching() || r.hcm.GetStripAnyHostPort()
	if !strip && r.hcm.GetStripMatchingHostPort() {
		if _, p, err := net.SplitHostPort(host); err == nil && p == strconv.FormatUint(uint64(r.listenerPort), 10) {
			strip = true
		}
	}
	if strip {
		host = stripPort(host)
	}
	rm.HostMatched = host
	vh, domain := findVirtualHost(r.rc.GetVirtualHosts(), host)
	if vh == nil {
		rm.Reason = fmt.Sprintf("no virtual host's domains match %q; Envoy answers 404 (NR)", host)
		if !strip && strings.Contains(host, ":") {
			if v, _ := findVirtualHost(r.rc.GetVirtualHosts(), stripPort(host)); v != nil {
				rm.Notes = append(rm.Notes, fmt.Sprintf("without the port, virtual host %s would match; this configuration does not strip ports (ignore_port_in_host_matching, strip_any_host_port)", v.GetName()))
			}
		}
		return rm
	}
	rm.VirtualHost, rm.Domain = vh.GetName(), domain
	req := newRequest(q)
	for i, rt := range vh.GetRoutes() {
		ok, notes := routeMatches(rt.GetMatch(), req)
		rm.Notes = append(rm.Notes, notes...)
		if !ok {
			continue
		}
		d := route(rt)
		rm.Matched, rm.Route, rm.RouteIndex = true, &d, i
		for _, c := range d.WeightedClusters {
			rm.Clusters = append(rm.Clusters, m.matchedCluster(c.Name, c.Weight))
		}
		if d.Cluster != "" {
			rm.Clusters = append(rm.Clusters, m.matchedCluster(d.Cluster, 0))
		}
		if d.ClusterHeader != "" {
			if v, ok := req.header(strings.ToLower(d.ClusterHeader)); ok {
				rm.Clusters = append(rm.Clusters, m.matchedCluster(v, 0))
			} else {
				rm.Notes = append(rm.Notes, "the cluster comes from header "+d.ClusterHeader+", which the query does not set; Envoy answers 404 (NC)")
			}
		}
		return rm
	}
	rm.Reason = fmt.Sprintf("virtual host %s has no route matching %s %s; Envoy answers 404 (NR)", vh.GetName(), q.Method, q.Path)
	return rm
}

func (m *Model) matchedCluster(name string, weight uint32) MatchedCluster {
	mc := MatchedCluster{Name: name, Weight: weight}
	c := m.clusterBy[name]
	if c == nil {
		if cla, ok := m.eds[name]; ok && !m.hasClusters {
			// An EDS-only dump: the assignment is all there is.
			for _, ep := range claEndpoints(cla) {
				mc.Total++
				if ep.Healthy {
					mc.HealthyEndpoints = append(mc.HealthyEndpoints, ep)
				}
			}
		}
		return mc
	}
	mc.Exists = true
	cl, _ := m.cluster(c)
	mc.Total = cl.Total
	for _, ep := range cl.Endpoints {
		if ep.Healthy {
			mc.HealthyEndpoints = append(mc.HealthyEndpoints, ep)
		}
	}
	return mc
}

func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// findVirtualHost picks the virtual host as Envoy's RouteMatcher does.
func findVirtualHost(vhs []*routev3.VirtualHost, host string) (*routev3.VirtualHost, string) {
	var (
		suffixVH, prefixVH, defaultVH *routev3.VirtualHost
		suffixD, prefixD              string
	)
	for _, vh := range vhs {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if defaultVH == nil {
					defaultVH = vh
				}
			case d == host:
				return vh, d
			case strings.HasPrefix(d, "*"):
				// "*.foo.com" and "*-bar.foo.com": the wildcard matches at
				// least one character.
				s := d[1:]
				if len(host) > len(s) && strings.HasSuffix(host, s) && len(s) > len(suffixD) {
					suffixVH, suffixD = vh, d
				}
			case strings.HasSuffix(d, "*"):
				p := d[:len(d)-1]
				if len(host) > len(p) && strings.HasPrefix(host, p) && len(p) > len(prefixD) {
					prefixVH, prefixD = vh, d
				}
			}
		}
	}
	switch {
	case suffixVH != nil:
		return suffixVH, suffixD
	case prefixVH != nil:
		return prefixVH, prefixD
	case defaultVH != nil:
		return defaultVH, "*"
	}
	return nil, ""
}

type request struct {
	q       Query
	path    string // without query string and fragment
	query   url.Values
	headers map[string]string // lower-case names, with pseudo-headers
}

func newRequest(q Query) *request {
	r := &request{q: q, headers: map[string]string{}}
	r.path = q.Path
	rawQuery := ""
	if i := strings.IndexAny(r.path, "?#"); i >= 0 {
		if r.path[i] == '?' {
			rawQuery = r.path[i+1:]
			if j := strings.IndexByte(rawQuery, '#'); j >= 0 {
				rawQuery = rawQuery[:j]
			}
		}
		r.path = r.path[:i]
	}
	r.query, _ = url.ParseQuery(rawQuery)
	for k, v := range q.Headers {
		r.headers[strings.ToLower(k)] = v
	}
	r.headers[":authority"] = q.Host
	r.headers[":path"] = q.Path
	r.headers[":method"] = strings.ToUpper(q.Method)
	if _, ok := r.headers[":scheme"]; !ok {
		r.headers[":scheme"] = "http"
	}
	if _, ok := r.headers["host"]; !ok {
		r.headers["host"] = q.Host
	}
	return r
}

func (r *request) header(name string) (string, bool) {
	v, ok := r.headers[name]
	return v, ok
}

// routeMatches evaluates a RouteMatch. Notes name what it could not
// evaluate (and assumed to match).
func routeMatches(m *routev3.RouteMatch, r *request) (bool, []string) {
	var notes []string
	caseSensitive := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	eq := func(a, b string) bool {
		if caseSensitive {
			return a == b
		}
		return strings.EqualFold(a, b)
	}
	hasPrefix := func(s, p string) bool {
		return len(s) >= len(p) && eq(s[:len(p)], p)
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		// Envoy matches a prefix against the whole :path.
		if !hasPrefix(r.q.Path, ps.Prefix) {
			return false, nil
		}
	case *routev3.RouteMatch_Path:
		if !eq(r.path, ps.Path) {
			return false, nil
		}
	case *routev3.RouteMatch_SafeRegex:
		re, err := fullRegexp(ps.SafeRegex.GetRegex())
		if err != nil {
			return false, []string{fmt.Sprintf("regex %q does not compile in Go's RE2: %v; route skipped", ps.SafeRegex.GetRegex(), err)}
		}
		if !re.MatchString(r.path) {
			return false, nil
		}
	case *routev3.RouteMatch_PathSeparatedPrefix:
		p := ps.PathSeparatedPrefix
		if !hasPrefix(r.path, p) || (len(r.path) > len(p) && r.path[len(p)] != '/') {
			return false, nil
		}
	case *routev3.RouteMatch_ConnectMatcher_:
		if r.headers[":method"] != "CONNECT" {
			return false, nil
		}
	case *routev3.RouteMatch_PathMatchPolicy:
		return false, []string{"a route with path_match_policy " + ps.PathMatchPolicy.GetName() + " is not evaluated; skipped"}
	default:
		return false, nil
	}
	if m.GetGrpc() != nil && !strings.HasPrefix(r.headers["content-type"], "application/grpc") {
		return false, nil
	}
	for _, h := range m.GetHeaders() {
		ok, note := headerMatches(h, r)
		if note != "" {
			notes = append(notes, note)
		}
		if !ok {
			return false, notes
		}
	}
	for _, qp := range m.GetQueryParameters() {
		vals, present := r.query[qp.GetName()]
		switch {
		case qp.GetPresentMatch():
			if !present {
				return false, notes
			}
		case qp.GetStringMatch() != nil:
			if !present || len(vals) == 0 {
				return false, notes
			}
			ok, note := stringMatches(qp.GetStringMatch(), vals[0])
			if note != "" {
				notes = append(notes, note)
			}
			if !ok {
				return false, notes
			}
		default:
			if !present {
				return false, notes
			}
		}
	}
	if m.GetRuntimeFraction() != nil {
		notes = append(notes, "runtime_fraction "+m.GetRuntimeFraction().GetRuntimeKey()+" assumed to match")
	}
	if m.GetTlsContext() != nil {
		notes = append(notes, "tls_context match assumed to match")
	}
	if len(m.GetDynamicMetadata()) > 0 {
		notes = append(notes, "dynamic_metadata match assumed to match")
	}
	if len(m.GetFilterState()) > 0 {
		notes = append(notes, "filter_state match assumed to match")
	}
	return true, notes
}

// headerMatches follows Envoy's header matchers: present_match compares
// presence; any other matcher fails on a missing header (inverted or not)
// unless treat_missing_header_as_empty, and invert_match inverts the rest.
func headerMatches(h *routev3.HeaderMatcher, r *request) (bool, string) {
	v, present := r.header(strings.ToLower(h.GetName()))
	switch hm := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		return present != h.GetInvertMatch(), ""
	case *routev3.HeaderMatcher_PresentMatch:
		return (present == hm.PresentMatch) != h.GetInvertMatch(), ""
	}
	if !present {
		if !h.GetTreatMissingHeaderAsEmpty() {
			return false, ""
		}
		v = ""
	}
	var ok bool
	var note string
	switch hm := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_RangeMatch:
		n, err := strconv.ParseInt(v, 10, 64)
		ok = err == nil && n >= hm.RangeMatch.GetStart() && n < hm.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_StringMatch:
		ok, note = stringMatches(hm.StringMatch, v)
	default:
		sm, known := legacyHeaderMatch(h)
		if !known {
			return false, "header matcher for " + h.GetName() + " is not evaluated"
		}
		ok, note = stringMatches(sm, v)
	}
	return ok != h.GetInvertMatch(), note
}

func stringMatches(m *matcherv3.StringMatcher, v string) (bool, string) {
	ic := m.GetIgnoreCase()
	fold := func(s string) string {
		if ic {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return fold(v) == fold(p.Exact), ""
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(fold(v), fold(p.Prefix)), ""
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(fold(v), fold(p.Suffix)), ""
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(fold(v), fold(p.Contains)), ""
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := fullRegexp(p.SafeRegex.GetRegex())
		if err != nil {
			return false, fmt.Sprintf("regex %q does not compile: %v", p.SafeRegex.GetRegex(), err)
		}
		return re.MatchString(v), ""
	case *matcherv3.StringMatcher_Custom:
		return false, "custom string matcher " + p.Custom.GetName() + " is not evaluated"
	}
	return false, ""
}

var regexCache sync.Map // string -> *regexp.Regexp or error

// fullRegexp compiles re for a full match, as Envoy's RE2 matchers do.
func fullRegexp(re string) (*regexp.Regexp, error) {
	if v, ok := regexCache.Load(re); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*regexp.Regexp), nil
	}
	c, err := regexp.Compile(`^(?:` + re + `)$`)
	if err != nil {
		regexCache.Store(re, err)
		return nil, err
	}
	regexCache.Store(re, c)
	return c, nil
}
