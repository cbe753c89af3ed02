package envoyexplain

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Explain explains in. See Model.Explain.
func Explain(in Input) *Explanation {
	return NewModel(in).Explain()
}

// Explain builds the explanation: counts, the listener → route → cluster →
// endpoint tree, secrets and certificates, and findings.
func (m *Model) Explain() *Explanation {
	e := &Explanation{Node: m.node}
	e.Listeners = make([]Listener, 0, len(m.listeners))
	for _, l := range m.listeners {
		e.Listeners = append(e.Listeners, m.listener(l))
	}
	e.RouteConfigs = make([]RouteConfig, 0, len(m.routes))
	for _, r := range m.routes {
		e.RouteConfigs = append(e.RouteConfigs, routeConfig(r))
	}
	e.Clusters = make([]Cluster, 0, len(m.clusters))
	used := make(map[string]bool, len(m.eds))
	for _, c := range m.clusters {
		cl, cla := m.cluster(c)
		if cla != nil {
			used[cla.GetClusterName()] = true
		}
		e.Clusters = append(e.Clusters, cl)
	}
	for _, name := range m.edsOrder {
		if used[name] {
			continue
		}
		cla := m.eds[name]
		c := Cluster{Name: name, Resource: Resource{Source: "eds"}, EndpointsFrom: "eds", Endpoints: claEndpoints(cla)}
		if cs, ok := m.live[name]; ok {
			c.EndpointsFrom, c.Endpoints = "live", liveEndpoints(cs)
		}
		c.Total = len(c.Endpoints)
		for _, ep := range c.Endpoints {
			if ep.Healthy {
				c.Healthy++
			}
		}
		e.EDSOnly = append(e.EDSOnly, c)
	}
	for _, s := range m.secrets {
		e.Secrets = append(e.Secrets, secret(s))
	}
	e.Certificates = m.certificates()
	for _, u := range m.in.Unknown {
		e.Unknown = append(e.Unknown, Unknown{Path: u.Path, TypeURL: u.TypeURL})
	}
	e.Counts = m.counts(e, used)
	e.Findings = m.findings(e)
	return e
}

// counts counts from the dump (not from /clusters).
func (m *Model) counts(e *Explanation, used map[string]bool) Counts {
	var c Counts
	names := map[string]bool{}
	for _, l := range m.listeners {
		if !names[l.name] || l.name == "" {
			c.Listeners++
		}
		names[l.name] = true
	}
	for _, r := range m.routes {
		c.RouteConfigs++
		for _, vh := range r.rc.GetVirtualHosts() {
			c.VirtualHosts++
			c.Routes += len(vh.GetRoutes())
		}
	}
	c.Clusters = len(m.clusters)
	for _, cl := range m.clusters {
		if cla := m.dumpAssignment(cl); cla != nil {
			t, h := countCLA(cla)
			c.Endpoints += t
			c.HealthyEndpoints += h
		}
	}
	for _, name := range m.edsOrder {
		if used[name] {
			continue
		}
		t, h := countCLA(m.eds[name])
		c.Endpoints += t
		c.HealthyEndpoints += h
	}
	c.Secrets = len(m.secrets)
	return c
}

func countCLA(cla *endpointv3.ClusterLoadAssignment) (total, healthy int) {
	for _, le := range cla.GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			total++
			if healthyStatus(lb.GetHealthStatus()) {
				healthy++
			}
		}
	}
	return total, healthy
}

// healthyStatus: Envoy load balances to HEALTHY and UNKNOWN hosts.
func healthyStatus(s corev3.HealthStatus) bool {
	return s == corev3.HealthStatus_HEALTHY || s == corev3.HealthStatus_UNKNOWN
}

// dumpAssignment is the cluster's load assignment as the dump has it: from
// the EDS section (by cluster name, then EDS service name), else its own.
func (m *Model) dumpAssignment(c *clusterEntry) *endpointv3.ClusterLoadAssignment {
	if cla, ok := m.eds[c.name]; ok {
		return cla
	}
	if sn := c.c.GetEdsClusterConfig().GetServiceName(); sn != "" {
		if cla, ok := m.eds[sn]; ok {
			return cla
		}
	}
	return c.c.GetLoadAssignment()
}

func (m *Model) listener(e *listenerEntry) Listener {
	out := Listener{Name: e.name, Resource: e.res, Warming: e.warming}
	l := e.l
	if l == nil {
		return out
	}
	out.Address = addressString(l.GetAddress())
	if out.Address == "" && l.GetInternalListener() != nil {
		out.Address = "internal"
	}
	for _, lf := range l.GetListenerFilters() {
		out.ListenerFilters = append(out.ListenerFilters, lf.GetName())
	}
	chains := l.GetFilterChains()
	n := len(chains)
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains[:n:n], d)
	}
	out.FilterChains = make([]FilterChain, len(chains))
	for i, fc := range chains {
		c := FilterChain{Name: fc.GetName(), Match: chainMatch(fc.GetFilterChainMatch()), Default: i >= n, TLS: fc.GetTransportSocket() != nil}
		for _, f := range fc.GetFilters() {
			c.Filters = append(c.Filters, f.GetName())
		}
		out.FilterChains[i] = c
	}
	for _, h := range e.hcms {
		hc := HTTPConnectionManager{StatPrefix: h.hcm.GetStatPrefix()}
		switch {
		case h.hcm.GetRds() != nil:
			hc.Via, hc.RouteConfig = "rds", h.hcm.GetRds().GetRouteConfigName()
		case h.hcm.GetRouteConfig() != nil:
			hc.Via, hc.RouteConfig = "inline", h.hcm.GetRouteConfig().GetName()
		case h.hcm.GetScopedRoutes() != nil:
			hc.Via, hc.RouteConfig = "scoped", h.hcm.GetScopedRoutes().GetName()
		}
		for _, f := range h.hcm.GetHttpFilters() {
			hc.HTTPFilters = append(hc.HTTPFilters, f.GetName())
		}
		out.FilterChains[h.chain].HTTP = append(out.FilterChains[h.chain].HTTP, hc)
	}
	for _, t := range e.tcps {
		tp := TCPProxy{StatPrefix: t.tcp.GetStatPrefix(), Cluster: t.tcp.GetCluster()}
		for _, w := range t.tcp.GetWeightedClusters().GetClusters() {
			tp.WeightedClusters = append(tp.WeightedClusters, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
		}
		out.FilterChains[t.chain].TCP = append(out.FilterChains[t.chain].TCP, tp)
	}
	return out
}

func chainMatch(m *listenerv3.FilterChainMatch) string {
	if m == nil {
		return ""
	}
	var p []string
	if v := m.GetDestinationPort(); v != nil {
		p = append(p, "port="+strconv.FormatUint(uint64(v.GetValue()), 10))
	}
	for _, r := range m.GetPrefixRanges() {
		p = append(p, "dst="+r.GetAddressPrefix()+"/"+strconv.FormatUint(uint64(r.GetPrefixLen().GetValue()), 10))
	}
	for _, r := range m.GetSourcePrefixRanges() {
		p = append(p, "src="+r.GetAddressPrefix()+"/"+strconv.FormatUint(uint64(r.GetPrefixLen().GetValue()), 10))
	}
	if s := m.GetServerNames(); len(s) > 0 {
		p = append(p, "sni="+strings.Join(s, ","))
	}
	if t := m.GetTransportProtocol(); t != "" {
		p = append(p, "transport="+t)
	}
	if a := m.GetApplicationProtocols(); len(a) > 0 {
		p = append(p, "alpn="+strings.Join(a, ","))
	}
	if d := m.GetDirectSourcePrefixRanges(); len(d) > 0 {
		p = append(p, fmt.Sprintf("direct_src=%d ranges", len(d)))
	}
	return strings.Join(p, " ")
}

func routeConfig(r *routeEntry) RouteConfig {
	out := RouteConfig{Name: r.name, Resource: r.res, UsedBy: r.usedBy}
	for _, vh := range r.rc.GetVirtualHosts() {
		v := VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains(), Routes: make([]Route, 0, len(vh.GetRoutes()))}
		for _, rt := range vh.GetRoutes() {
			v.Routes = append(v.Routes, route(rt))
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out
}

func route(r *routev3.Route) Route {
	out := Route{Name: r.GetName(), Match: describeMatch(r.GetMatch())}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		ra := a.Route
		switch cs := ra.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
			out.Action, out.Cluster = "cluster", cs.Cluster
		case *routev3.RouteAction_WeightedClusters:
			out.Action = "weighted_clusters"
			for _, w := range cs.WeightedClusters.GetClusters() {
				out.WeightedClusters = append(out.WeightedClusters, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight().GetValue()})
			}
		case *routev3.RouteAction_ClusterHeader:
			out.Action, out.ClusterHeader = "cluster_header", cs.ClusterHeader
		default:
			out.Action = "cluster_specifier_plugin"
		}
	case *routev3.Route_Redirect:
		out.Action, out.Redirect = "redirect", describeRedirect(a.Redirect)
	case *routev3.Route_DirectResponse:
		out.Action, out.DirectResponseStatus = "direct_response", a.DirectResponse.GetStatus()
	case *routev3.Route_FilterAction:
		out.Action = "filter_action"
	case *routev3.Route_NonForwardingAction:
		out.Action = "non_forwarding"
	default:
		out.Action = "none"
	}
	return out
}

func describeRedirect(r *routev3.RedirectAction) string {
	var b strings.Builder
	switch {
	case r.GetHttpsRedirect():
		b.WriteString("https://")
	case r.GetSchemeRedirect() != "":
		b.WriteString(r.GetSchemeRedirect() + "://")
	}
	if h := r.GetHostRedirect(); h != "" {
		b.WriteString(h)
	} else {
		b.WriteString("{host}")
	}
	if p := r.GetPortRedirect(); p != 0 {
		b.WriteString(":" + strconv.FormatUint(uint64(p), 10))
	}
	switch {
	case r.GetPathRedirect() != "":
		b.WriteString(r.GetPathRedirect())
	case r.GetPrefixRewrite() != "":
		b.WriteString(r.GetPrefixRewrite() + "…")
	default:
		b.WriteString("{path}")
	}
	code := 301
	switch r.GetResponseCode() {
	case routev3.RedirectAction_FOUND:
		code = 302
	case routev3.RedirectAction_SEE_OTHER:
		code = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		code = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		code = 308
	}
	return b.String() + " " + strconv.Itoa(code)
}

func describeMatch(m *routev3.RouteMatch) string {
	var p []string
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		p = append(p, "prefix="+ps.Prefix)
	case *routev3.RouteMatch_Path:
		p = append(p, "path="+ps.Path)
	case *routev3.RouteMatch_SafeRegex:
		p = append(p, "regex="+ps.SafeRegex.GetRegex())
	case *routev3.RouteMatch_PathSeparatedPrefix:
		p = append(p, "path_separated_prefix="+ps.PathSeparatedPrefix)
	case *routev3.RouteMatch_ConnectMatcher_:
		p = append(p, "connect")
	case *routev3.RouteMatch_PathMatchPolicy:
		p = append(p, "path_match_policy="+ps.PathMatchPolicy.GetName())
	}
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		p = append(p, "case_insensitive")
	}
	for _, h := range m.GetHeaders() {
		p = append(p, "header["+h.GetName()+"]"+describeHeader(h))
	}
	for _, q := range m.GetQueryParameters() {
		s := "query[" + q.GetName() + "]"
		switch {
		case q.GetStringMatch() != nil:
			s += "=" + describeString(q.GetStringMatch())
		case q.GetPresentMatch():
			s += " present"
		}
		p = append(p, s)
	}
	if m.GetGrpc() != nil {
		p = append(p, "grpc")
	}
	if m.GetRuntimeFraction() != nil {
		p = append(p, "runtime_fraction="+m.GetRuntimeFraction().GetRuntimeKey())
	}
	if len(p) == 0 {
		return "any"
	}
	return strings.Join(p, " ")
}

func describeHeader(h *routev3.HeaderMatcher) string {
	s := ""
	switch hm := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		s = " present"
	case *routev3.HeaderMatcher_RangeMatch:
		s = fmt.Sprintf("=range:[%d,%d)", hm.RangeMatch.GetStart(), hm.RangeMatch.GetEnd())
	case *routev3.HeaderMatcher_PresentMatch:
		s = " present=" + strconv.FormatBool(hm.PresentMatch)
	case *routev3.HeaderMatcher_StringMatch:
		s = "=" + describeString(hm.StringMatch)
	default:
		if sm, ok := legacyHeaderMatch(h); ok {
			s = "=" + describeString(sm)
		}
	}
	if h.GetInvertMatch() {
		s = " not" + s
	}
	return s
}

func describeString(m *matcherv3.StringMatcher) string {
	s := ""
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s = "exact:" + p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s = "prefix:" + p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s = "suffix:" + p.Suffix
	case *matcherv3.StringMatcher_SafeRegex:
		s = "regex:" + p.SafeRegex.GetRegex()
	case *matcherv3.StringMatcher_Contains:
		s = "contains:" + p.Contains
	case *matcherv3.StringMatcher_Custom:
		s = "custom:" + p.Custom.GetName()
	}
	if m.GetIgnoreCase() {
		s += " (ignore case)"
	}
	return s
}

// cluster describes a cluster, with endpoints from /clusters when known,
// else from the dump. It returns the dump's assignment it used, if any.
func (m *Model) cluster(c *clusterEntry) (Cluster, *endpointv3.ClusterLoadAssignment) {
	out := Cluster{Name: c.name, Resource: c.res, Type: clusterType(c), EDSServiceName: c.c.GetEdsClusterConfig().GetServiceName(), ReferencedBy: c.refs}
	if c.warming && out.State == "active" {
		out.State = "active, warming update"
	}
	cla := m.dumpAssignment(c)
	if cs, ok := m.live[c.name]; ok {
		out.EndpointsFrom = "live"
		out.Endpoints = liveEndpoints(cs)
	} else if cla != nil {
		out.EndpointsFrom = "config"
		if _, fromEDS := m.eds[cla.GetClusterName()]; fromEDS {
			out.EndpointsFrom = "eds"
		}
		out.Endpoints = claEndpoints(cla)
	}
	out.Total = len(out.Endpoints)
	for _, ep := range out.Endpoints {
		if ep.Healthy {
			out.Healthy++
		}
		if contains(ep.Flags, "failed_outlier_check") {
			out.OutlierEjected++
		}
	}
	if cla != nil {
		if _, fromEDS := m.eds[cla.GetClusterName()]; !fromEDS {
			cla = nil // not an EDS assignment: nothing to mark used
		}
	}
	return out, cla
}

func clusterType(c *clusterEntry) string {
	if c.c == nil {
		return ""
	}
	if ct := c.c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.c.GetType().String()
}

func claEndpoints(cla *endpointv3.ClusterLoadAssignment) []Endpoint {
	n := 0
	for _, le := range cla.GetEndpoints() {
		n += len(le.GetLbEndpoints())
	}
	out := make([]Endpoint, 0, n)
	for _, le := range cla.GetEndpoints() {
		loc := locality(le.GetLocality())
		for _, lb := range le.GetLbEndpoints() {
			ep := Endpoint{
				Health:   lb.GetHealthStatus().String(),
				Healthy:  healthyStatus(lb.GetHealthStatus()),
				Weight:   lb.GetLoadBalancingWeight().GetValue(),
				Priority: le.GetPriority(),
				Locality: loc,
			}
			if e := lb.GetEndpoint(); e != nil {
				ep.Address = addressString(e.GetAddress())
				ep.Hostname = e.GetHostname()
			} else if name := lb.GetEndpointName(); name != "" {
				ep.Address = "named:" + name
			}
			out = append(out, ep)
		}
	}
	return out
}

func locality(l *corev3.Locality) string {
	if l == nil {
		return ""
	}
	parts := []string{l.GetRegion(), l.GetZone(), l.GetSubZone()}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, "/")
}

func liveEndpoints(cs *adminv3.ClusterStatus) []Endpoint {
	out := make([]Endpoint, 0, len(cs.GetHostStatuses()))
	for _, h := range cs.GetHostStatuses() {
		hs := h.GetHealthStatus()
		var flags []string
		add := func(set bool, name string) {
			if set {
				flags = append(flags, name)
			}
		}
		add(hs.GetFailedActiveHealthCheck(), "failed_active_health_check")
		add(hs.GetFailedOutlierCheck(), "failed_outlier_check")
		add(hs.GetFailedActiveDegradedCheck(), "failed_active_degraded_check")
		add(hs.GetPendingDynamicRemoval(), "pending_dynamic_removal")
		add(hs.GetPendingActiveHc(), "pending_active_hc")
		add(hs.GetExcludedViaImmediateHcFail(), "excluded_via_immediate_hc_fail")
		add(hs.GetActiveHcTimeout(), "active_hc_timeout")
		add(hs.GetFailedDegradedOutlierDetection(), "failed_degraded_outlier_detection")
		healthy := healthyStatus(hs.GetEdsHealthStatus()) && !hs.GetFailedActiveHealthCheck() && !hs.GetFailedOutlierCheck() &&
			!hs.GetExcludedViaImmediateHcFail() && !hs.GetActiveHcTimeout() && !hs.GetFailedActiveDegradedCheck() && !hs.GetFailedDegradedOutlierDetection()
		health := hs.GetEdsHealthStatus().String()
		if len(flags) > 0 {
			health = strings.Join(flags, ",")
		}
		out = append(out, Endpoint{
			Address: addressString(h.GetAddress()), Health: health, Healthy: healthy, Weight: h.GetWeight(),
			Priority: h.GetPriority(), Locality: locality(h.GetLocality()), Hostname: h.GetHostname(), Flags: flags,
		})
	}
	return out
}

func secret(s *secretEntry) Secret {
	out := Secret{Name: s.name, Resource: s.res}
	switch {
	case s.s.GetTlsCertificate() != nil:
		out.Kind = "tls_certificate"
	case s.s.GetValidationContext() != nil:
		out.Kind = "validation_context"
	case s.s.GetSessionTicketKeys() != nil:
		out.Kind = "session_ticket_keys"
	case s.s.GetGenericSecret() != nil:
		out.Kind = "generic_secret"
	}
	return out
}

// sortFindings orders findings most severe first, then by code, keeping
// the order of equal ones.
func sortFindings(f []Finding) {
	sort.SliceStable(f, func(i, j int) bool {
		if f[i].Severity != f[j].Severity {
			return f[i].Severity > f[j].Severity
		}
		return f[i].Code < f[j].Code
	})
}
