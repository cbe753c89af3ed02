package render

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// The views of `triage envoy`: the Envoy beside the app as the sidecar
// explains it.

// maxDomains is how many of a virtual host's domains a table shows
// (Istio lists each service under up to ten names).
const maxDomains = 2

// EnvoyExplain writes the explanation of an Envoy's config: findings first,
// then who the Envoy is, the counts, listeners, route configurations,
// clusters, secrets and certificates.
func EnvoyExplain(w io.Writer, r *triagev1.EnvoyServiceExplainResponse, now time.Time, st Style) error {
	if r.GetTime() != nil {
		now = r.GetTime().AsTime()
	}
	ew := &errWriter{w: w}
	findings(ew, r.GetFindings(), st)

	Section(ew, st, false, "ENVOY")
	t := NewTable()
	t.Row("admin", r.GetAdminUrl())
	if n := r.GetNode(); n != nil {
		if n.GetId() != "" {
			t.Row("node", n.GetId())
		}
		if n.GetCluster() != "" {
			t.Row("cluster", n.GetCluster())
		}
		v := n.GetEnvoyVersion()
		if n.GetIstioVersion() != "" {
			v = strings.TrimSpace(v + " (istio " + n.GetIstioVersion() + ")")
		}
		if v != "" {
			t.Row("version", v)
		}
	}
	if r.GetTime() != nil {
		t.Row("time", Timestamp(r.GetTime().AsTime()))
	}
	t.Write(ew, st)
	for _, n := range r.GetNotes() {
		Line(ew, "%s", st.Paint(Yellow, "note: "+n))
	}

	c := r.GetCounts()
	Section(ew, st, false, "COUNTS")
	t = NewTable().AlignRight(1)
	t.Row("listeners", c.GetListeners())
	t.Row("route configs", c.GetRouteConfigs())
	t.Row("virtual hosts", c.GetVirtualHosts())
	t.Row("routes", c.GetRoutes())
	t.Row("clusters", c.GetClusters())
	t.Row("endpoints", fmt.Sprintf("%d", c.GetEndpoints()))
	healthy := Cell{Text: fmt.Sprintf("%d", c.GetHealthyEndpoints())}
	if c.GetHealthyEndpoints() < c.GetEndpoints() {
		healthy.Color = Yellow
	}
	t.Row("healthy endpoints", healthy)
	t.Row("secrets", c.GetSecrets())
	t.Write(ew, st)

	Section(ew, st, false, fmt.Sprintf("LISTENERS (%d)", len(r.GetListeners())))
	listenerTable(ew, r.GetListeners(), st)

	Section(ew, st, false, fmt.Sprintf("ROUTE CONFIGS (%d)", len(r.GetRouteConfigs())))
	if len(r.GetRouteConfigs()) == 0 {
		Line(ew, "none")
	} else {
		t = NewTable("NAME", "SOURCE", "STATE", "VERSION", "VHOSTS", "ROUTES", "USED BY").AlignRight(4, 5)
		for _, rc := range r.GetRouteConfigs() {
			routes := 0
			for _, vh := range rc.GetVirtualHosts() {
				routes += len(vh.GetRoutes())
			}
			t.Row(orDash(rc.GetName()), rc.GetStatus().GetSource(), stateCell(rc.GetStatus()), orDash(rc.GetStatus().GetVersion()),
				len(rc.GetVirtualHosts()), routes, strings.Join(rc.GetUsedBy(), ", "))
		}
		t.Write(ew, st)
	}

	Section(ew, st, false, fmt.Sprintf("CLUSTERS (%d)", len(r.GetClusters())))
	clusterTable(ew, r.GetClusters(), st)
	if len(r.GetEdsOnly()) > 0 {
		Section(ew, st, false, fmt.Sprintf("ENDPOINTS OF CLUSTERS NOT IN THE DUMP (%d)", len(r.GetEdsOnly())))
		clusterTable(ew, r.GetEdsOnly(), st)
	}

	if len(r.GetSecrets()) > 0 {
		Section(ew, st, false, fmt.Sprintf("SECRETS (%d)", len(r.GetSecrets())))
		t = NewTable("NAME", "KIND", "SOURCE", "STATE", "VERSION")
		for _, s := range r.GetSecrets() {
			t.Row(orDash(s.GetName()), s.GetKind(), s.GetStatus().GetSource(), stateCell(s.GetStatus()), orDash(s.GetStatus().GetVersion()))
		}
		t.Write(ew, st)
	}
	if len(r.GetCertificates()) > 0 {
		Section(ew, st, false, fmt.Sprintf("CERTIFICATES (%d)", len(r.GetCertificates())))
		envoyCertTable(ew, r.GetCertificates(), now, st)
	}
	if n := len(r.GetUnknownTypes()); n > 0 {
		Section(ew, st, false, fmt.Sprintf("UNKNOWN TYPES (%d)", n))
		counts := map[string]int{}
		for _, u := range r.GetUnknownTypes() {
			counts[u.GetTypeUrl()]++
		}
		t = NewTable("TYPE", "COUNT").AlignRight(1)
		for _, k := range sortedKeys(counts) {
			t.Row(k, counts[k])
		}
		t.Write(ew, st)
	}
	return ew.err
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stateCell is a resource's state, coloured when it is not plainly active,
// with "rejected" added when Envoy refused the last update.
func stateCell(s *triagev1.EnvoyResourceStatus) Cell {
	state := s.GetState()
	if state == "" {
		state = "active"
	}
	c := Cell{Text: state}
	switch state {
	case "warming", "draining":
		c.Color = Yellow
	case "rejected":
		c.Color = Red
	}
	if s.GetRejected() != nil && state != "rejected" {
		c.Text += ", update rejected"
		c.Color = Red
	}
	return c
}

// listenerTargets is where a listener's chains send traffic: route configs
// of HTTP connection managers, clusters of TCP proxies.
func listenerTargets(l *triagev1.EnvoyListener) string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, fc := range l.GetFilterChains() {
		for _, h := range fc.GetHttpConnectionManagers() {
			add("routes:" + orDash(h.GetRouteConfig()))
		}
		for _, tp := range fc.GetTcpProxies() {
			if tp.GetCluster() != "" {
				add("tcp:" + tp.GetCluster())
			}
			for _, wc := range tp.GetWeightedClusters() {
				add("tcp:" + wc.GetName())
			}
		}
	}
	if len(out) > 4 {
		return strings.Join(out[:4], ", ") + fmt.Sprintf(", +%d", len(out)-4)
	}
	return strings.Join(out, ", ")
}

func listenerTable(w io.Writer, ls []*triagev1.EnvoyListener, st Style) {
	if len(ls) == 0 {
		Line(w, "none")
		return
	}
	t := NewTable("NAME", "ADDRESS", "SOURCE", "STATE", "VERSION", "CHAINS", "TARGETS").AlignRight(5)
	for _, l := range ls {
		state := stateCell(l.GetStatus())
		if l.GetWarming() {
			state.Text += ", update warming"
			if state.Color == None {
				state.Color = Yellow
			}
		}
		t.Row(orDash(l.GetName()), orDash(l.GetAddress()), l.GetStatus().GetSource(), state, orDash(l.GetStatus().GetVersion()),
			len(l.GetFilterChains()), listenerTargets(l))
	}
	t.Write(w, st)
}

// healthCell is "healthy/total", red when none of several is healthy and
// yellow when some are not.
func healthCell(healthy, total int32) Cell {
	c := Cell{Text: fmt.Sprintf("%d/%d", healthy, total)}
	switch {
	case total > 0 && healthy == 0:
		c.Color = Red
	case healthy < total:
		c.Color = Yellow
	}
	return c
}

func clusterTable(w io.Writer, cs []*triagev1.EnvoyCluster, st Style) {
	if len(cs) == 0 {
		Line(w, "none")
		return
	}
	t := NewTable("NAME", "TYPE", "SOURCE", "STATE", "HEALTHY", "EJECTED", "FROM", "ROUTED BY").AlignRight(4, 5, 7)
	for _, c := range cs {
		ej := Cell{Text: "-"}
		if c.GetOutlierEjected() > 0 {
			ej = C(Red, strconv.Itoa(int(c.GetOutlierEjected())))
		}
		health := Cell{Text: "-"}
		if c.GetEndpointsFrom() != "" || c.GetTotal() > 0 {
			health = healthCell(c.GetHealthy(), c.GetTotal())
		}
		t.Row(c.GetName(), orDash(c.GetType()), c.GetStatus().GetSource(), stateCell(c.GetStatus()), health, ej,
			orDash(c.GetEndpointsFrom()), c.GetReferencedBy())
	}
	t.Write(w, st)
}

// EnvoyClustersOptions choose what the clusters view shows.
type EnvoyClustersOptions struct {
	// Endpoints lists every endpoint under the table.
	Endpoints bool
}

// EnvoyClusters writes the clusters with their health, and with
// o.Endpoints every endpoint.
func EnvoyClusters(w io.Writer, r *triagev1.ListClustersResponse, o EnvoyClustersOptions, st Style) error {
	ew := &errWriter{w: w}
	Section(ew, st, true, fmt.Sprintf("CLUSTERS (%d)", len(r.GetClusters())))
	for _, n := range r.GetNotes() {
		Line(ew, "%s", st.Paint(Yellow, "note: "+n))
	}
	clusterTable(ew, r.GetClusters(), st)
	if o.Endpoints {
		Section(ew, st, false, "ENDPOINTS")
		t := NewTable("CLUSTER", "ADDRESS", "HEALTH", "WEIGHT", "PRIORITY", "LOCALITY", "FLAGS").AlignRight(3, 4)
		for _, c := range r.GetClusters() {
			for _, e := range c.GetEndpoints() {
				health := C(Green, orDash(e.GetHealth()))
				if !e.GetHealthy() {
					health.Color = Red
				}
				weight := "-"
				if e.GetWeight() > 0 {
					weight = strconv.Itoa(int(e.GetWeight()))
				}
				t.Row(c.GetName(), e.GetAddress(), health, weight, e.GetPriority(), orDash(e.GetLocality()), strings.Join(e.GetFlags(), ","))
			}
		}
		if t.Len() == 0 {
			Line(ew, "none known")
		} else {
			t.Write(ew, st)
		}
	}
	return ew.err
}

// EnvoyListeners writes the listeners and, under each, its filter chains.
func EnvoyListeners(w io.Writer, r *triagev1.ListListenersResponse, st Style) error {
	ew := &errWriter{w: w}
	Section(ew, st, true, fmt.Sprintf("LISTENERS (%d)", len(r.GetListeners())))
	listenerTable(ew, r.GetListeners(), st)
	for _, l := range r.GetListeners() {
		Section(ew, st, false, fmt.Sprintf("%s (%s)", orDash(l.GetName()), orDash(l.GetAddress())))
		if len(l.GetListenerFilters()) > 0 {
			Line(ew, "listener filters: %s", strings.Join(l.GetListenerFilters(), ", "))
		}
		t := NewTable("CHAIN", "MATCH", "TLS", "FILTERS", "TARGET")
		for i, fc := range l.GetFilterChains() {
			name := fc.GetName()
			if name == "" {
				name = "#" + strconv.Itoa(i)
			}
			if fc.GetDefaultChain() {
				name += " (default)"
			}
			tls := "-"
			if fc.GetTls() {
				tls = "tls"
			}
			var targets []string
			for _, h := range fc.GetHttpConnectionManagers() {
				targets = append(targets, h.GetVia()+" "+orDash(h.GetRouteConfig()))
			}
			for _, tp := range fc.GetTcpProxies() {
				if tp.GetCluster() != "" {
					targets = append(targets, "cluster "+tp.GetCluster())
				}
				for _, wc := range tp.GetWeightedClusters() {
					targets = append(targets, fmt.Sprintf("cluster %s (weight %d)", wc.GetName(), wc.GetWeight()))
				}
			}
			t.Row(name, orDash(fc.GetMatch()), tls, strings.Join(fc.GetFilters(), ", "), strings.Join(targets, "; "))
		}
		if t.Len() == 0 {
			Line(ew, "no filter chains")
		} else {
			t.Write(ew, st)
		}
	}
	return ew.err
}

// routeTarget is where a route sends the request.
func routeTarget(r *triagev1.EnvoyRoute) string {
	switch {
	case r.GetCluster() != "":
		return r.GetCluster()
	case len(r.GetWeightedClusters()) > 0:
		var parts []string
		for _, wc := range r.GetWeightedClusters() {
			parts = append(parts, fmt.Sprintf("%s=%d", wc.GetName(), wc.GetWeight()))
		}
		return strings.Join(parts, ", ")
	case r.GetClusterHeader() != "":
		return "cluster from header " + r.GetClusterHeader()
	case r.GetRedirect() != "":
		return r.GetRedirect()
	case r.GetDirectResponseStatus() != 0:
		return strconv.Itoa(int(r.GetDirectResponseStatus()))
	}
	return "-"
}

func domains(ds []string) string {
	if len(ds) > maxDomains {
		return strings.Join(ds[:maxDomains], ", ") + fmt.Sprintf(" +%d", len(ds)-maxDomains)
	}
	return strings.Join(ds, ", ")
}

// EnvoyRouteConfigs writes each route configuration's virtual hosts and
// routes, in the order Envoy tries them.
func EnvoyRouteConfigs(w io.Writer, r *triagev1.ListRouteConfigsResponse, st Style) error {
	ew := &errWriter{w: w}
	if len(r.GetRouteConfigs()) == 0 {
		Section(ew, st, true, "ROUTE CONFIGS (0)")
		Line(ew, "none")
		return ew.err
	}
	for i, rc := range r.GetRouteConfigs() {
		head := fmt.Sprintf("ROUTE CONFIG %s (%s", orDash(rc.GetName()), rc.GetStatus().GetSource())
		if v := rc.GetStatus().GetVersion(); v != "" {
			head += ", version " + v
		}
		if len(rc.GetUsedBy()) > 0 {
			head += ", used by " + strings.Join(rc.GetUsedBy(), ", ")
		}
		Section(ew, st, i == 0, head+")")
		if rej := rc.GetStatus().GetRejected(); rej != nil {
			Line(ew, "%s", st.Paint(Red, "update rejected: "+rej.GetDetails()))
		}
		t := NewTable("VIRTUAL HOST", "DOMAINS", "MATCH", "ACTION", "TARGET")
		for _, vh := range rc.GetVirtualHosts() {
			for j, rt := range vh.GetRoutes() {
				name, ds := "", ""
				if j == 0 {
					name, ds = vh.GetName(), domains(vh.GetDomains())
				}
				t.Row(name, ds, rt.GetMatch(), rt.GetAction(), routeTarget(rt))
			}
			if len(vh.GetRoutes()) == 0 {
				t.Row(vh.GetName(), domains(vh.GetDomains()), "-", "-", "-")
			}
		}
		t.Write(ew, st)
	}
	return ew.err
}

func envoyCertTable(w io.Writer, cs []*triagev1.EnvoyCertificate, now time.Time, st Style) {
	t := NewTable("SOURCE", "SUBJECT", "EXPIRES", "SANS", "SERIAL")
	for _, c := range cs {
		exp := Cell{Text: "-"}
		if na := c.GetNotAfter(); na != nil {
			end := na.AsTime()
			exp.Text = Timestamp(end) + " (" + Relative(end, now) + ")"
			switch left := end.Sub(now); {
			case left <= 0:
				exp.Text = Timestamp(end) + " (EXPIRED " + Duration(-left.Truncate(time.Second)) + " ago)"
				exp.Color = Red
			case left < certWarn:
				exp.Color = Yellow
			}
		}
		subject := orDash(c.GetSubject())
		if c.GetCa() {
			subject += " (CA)"
		}
		t.Row(c.GetSource(), subject, exp, strings.Join(c.GetSans(), ", "), Truncate(c.GetSerialNumber(), 16))
	}
	t.Write(w, st)
}

// EnvoyCertificates writes the certificates with expiry, and the findings
// about them.
func EnvoyCertificates(w io.Writer, r *triagev1.GetCertificatesResponse, now time.Time, st Style) error {
	if r.GetTime() != nil {
		now = r.GetTime().AsTime()
	}
	ew := &errWriter{w: w}
	first := true
	if len(r.GetFindings()) > 0 {
		findings(ew, r.GetFindings(), st)
		first = false
	}
	Section(ew, st, first, fmt.Sprintf("CERTIFICATES (%d)", len(r.GetCertificates())))
	if len(r.GetCertificates()) == 0 {
		Line(ew, "none: Envoy holds no certificates")
		return ew.err
	}
	envoyCertTable(ew, r.GetCertificates(), now, st)
	return ew.err
}

// EnvoyStats writes the statistics as Envoy's text form does, one a line.
func EnvoyStats(w io.Writer, r *triagev1.GetStatsResponse) error {
	ew := &errWriter{w: w}
	for _, s := range r.GetStats() {
		switch {
		case s.GetHistogram() && len(s.GetQuantiles()) == 0:
			fmt.Fprintf(ew, "%s: No recorded values\n", s.GetName())
		case s.GetHistogram():
			var parts []string
			for _, q := range s.GetQuantiles() {
				parts = append(parts, fmt.Sprintf("P%s(%s,%s)", num(q.GetQuantile()), optNum(q.Interval), optNum(q.Cumulative)))
			}
			fmt.Fprintf(ew, "%s: %s\n", s.GetName(), strings.Join(parts, " "))
		case s.GetText() != "":
			fmt.Fprintf(ew, "%s: %q\n", s.GetName(), s.GetText())
		default:
			fmt.Fprintf(ew, "%s: %d\n", s.GetName(), s.GetValue())
		}
	}
	if r.GetTruncated() {
		fmt.Fprintf(ew, "# %d of %d stats shown (the limit); narrow them with --filter\n", len(r.GetStats()), r.GetTotal())
	}
	return ew.err
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func optNum(f *float64) string {
	if f == nil {
		return "nan"
	}
	return num(*f)
}

// EnvoyServerInfo writes who and how the Envoy is.
func EnvoyServerInfo(w io.Writer, r *triagev1.GetServerInfoResponse, st Style) error {
	ew := &errWriter{w: w}
	Section(ew, st, true, "ENVOY")
	t := NewTable()
	t.Row("admin", r.GetAdminUrl())
	t.Row("version", orDash(r.GetVersion()))
	state := Cell{Text: r.GetState()}
	if r.GetState() != "LIVE" {
		state.Color = Yellow
	}
	t.Row("state", state)
	ready := C(Green, "yes")
	if !r.GetReady() {
		ready = C(Yellow, "no")
	}
	t.Row("ready", ready)
	if u := r.GetUptimeCurrentEpoch(); u != nil {
		line := Duration(u.AsDuration())
		if all := r.GetUptimeAllEpochs(); all != nil && all.AsDuration() != u.AsDuration() {
			line += " (" + Duration(all.AsDuration()) + " since the first start)"
		}
		t.Row("uptime", line)
	}
	if n := r.GetNode(); n != nil {
		t.Row("node", orDash(n.GetId()))
		t.Row("cluster", orDash(n.GetCluster()))
		if n.GetIstioVersion() != "" {
			t.Row("istio", n.GetIstioVersion())
		}
	}
	if r.GetMemoryAllocatedBytes() > 0 {
		t.Row("memory", fmt.Sprintf("%s allocated, heap %s", Bytes(r.GetMemoryAllocatedBytes()), Bytes(r.GetMemoryHeapBytes())))
	}
	if r.GetHotRestartVersion() != "" {
		t.Row("hot restart", r.GetHotRestartVersion())
	}
	t.Write(ew, st)
	for _, n := range r.GetNotes() {
		Line(ew, "%s", st.Paint(Yellow, "note: "+n))
	}
	return ew.err
}

// EnvoyRoute writes where a request goes: the first matching route
// configuration in full, then why the others did not match.
func EnvoyRoute(w io.Writer, q *triagev1.MatchRouteRequest, r *triagev1.MatchRouteResponse, st Style) error {
	ew := &errWriter{w: w}
	method := q.GetMethod()
	if method == "" {
		method = "GET"
	}
	path := q.GetPath()
	if path == "" {
		path = "/"
	}
	Section(ew, st, true, fmt.Sprintf("ROUTE %s %s%s", method, q.GetHost(), path))
	if len(r.GetCandidates()) == 0 {
		Line(ew, "%s", st.Paint(Yellow, "no route configuration to search: Envoy has no HTTP routes for this host and port"))
		return ew.err
	}
	if !r.GetMatched() {
		Line(ew, "%s", st.Paint(Red, "no route matches: Envoy answers 404 NR (no route)"))
	}
	for _, c := range r.GetCandidates() {
		if !c.GetMatched() {
			continue
		}
		t := NewTable()
		rc := orDash(c.GetRouteConfig()) + " (" + c.GetSource()
		if len(c.GetListeners()) > 0 {
			rc += "; listeners " + strings.Join(c.GetListeners(), ", ")
		}
		t.Row("route config", rc+")")
		t.Row("virtual host", fmt.Sprintf("%s (domain %s)", c.GetVirtualHost(), c.GetDomain()))
		rt := c.GetRoute()
		t.Row("route", fmt.Sprintf("#%d %s", c.GetRouteIndex(), rt.GetMatch()))
		t.Row("action", rt.GetAction()+" → "+routeTarget(rt))
		for _, mc := range c.GetClusters() {
			label := "cluster"
			if mc.GetWeight() > 0 {
				label = fmt.Sprintf("cluster (weight %d)", mc.GetWeight())
			}
			if !mc.GetExists() {
				t.Row(label, C(Red, mc.GetName()+": not in the dump, Envoy answers 503 NC (cluster not found)"))
				continue
			}
			n := len(mc.GetHealthyEndpoints())
			health := healthCell(int32(n), mc.GetTotal())
			health.Text = fmt.Sprintf("%s: %d of %d endpoints healthy", mc.GetName(), n, mc.GetTotal())
			t.Row(label, health)
			var addrs []string
			for _, e := range mc.GetHealthyEndpoints() {
				addrs = append(addrs, e.GetAddress())
			}
			if len(addrs) > 0 {
				if len(addrs) > 8 {
					addrs = append(addrs[:8], fmt.Sprintf("+%d", len(addrs)-8))
				}
				t.Row("endpoints", strings.Join(addrs, ", "))
			}
		}
		for _, n := range c.GetNotes() {
			t.Row("note", C(Yellow, n))
		}
		t.Write(ew, st)
		break
	}
	var others []*triagev1.EnvoyRouteMatch
	for _, c := range r.GetCandidates() {
		if !c.GetMatched() {
			others = append(others, c)
		}
	}
	if len(others) > 0 {
		Section(ew, st, false, fmt.Sprintf("NOT MATCHED IN (%d)", len(others)))
		t := NewTable("ROUTE CONFIG", "VIRTUAL HOST", "WHY")
		for _, c := range others {
			t.Row(orDash(c.GetRouteConfig()), orDash(c.GetVirtualHost()), c.GetReason())
		}
		t.Write(ew, st)
	}
	return ew.err
}

// EnvoyLoggers writes Envoy's loggers and their levels.
func EnvoyLoggers(w io.Writer, ls []*triagev1.EnvoyLogger, st Style) error {
	ew := &errWriter{w: w}
	Section(ew, st, true, fmt.Sprintf("LOGGERS (%d)", len(ls)))
	t := NewTable("NAME", "LEVEL")
	for _, l := range ls {
		lvl := Cell{Text: l.GetLevel()}
		switch l.GetLevel() {
		case "trace", "debug":
			lvl.Color = Yellow
		}
		t.Row(l.GetName(), lvl)
	}
	t.Write(ew, st)
	return ew.err
}
