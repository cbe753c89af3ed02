package envoyexplain

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Finding codes. They are stable: scripts rely on them.
const (
	CodeRejected           = "envoy-resource-rejected"
	CodeWarming            = "envoy-resource-warming"
	CodeNoHealthyHost      = "envoy-cluster-no-healthy-host"
	CodeNoEndpoints        = "envoy-cluster-no-endpoints"
	CodeOutlierEjected     = "envoy-outlier-ejected"
	CodeUnknownCluster     = "envoy-route-unknown-cluster"
	CodeRouteConfigMissing = "envoy-route-config-missing"
	CodeCertExpired        = "envoy-cert-expired"
	CodeCertExpiring       = "envoy-cert-expiring"
	CodeCircuitBreaker     = "envoy-circuit-breaker-overflow"
	CodeUpstreamResets     = "envoy-upstream-resets"
	CodeUnknownTypes       = "envoy-unknown-types"
	CodeLegacyTypes        = "envoy-legacy-v2-resources"
	CodeEndpointsNotInDump = "envoy-endpoints-not-in-dump"
)

// CertExpiringWithin is how close to expiry a certificate gets a warning.
const CertExpiringWithin = 7 * 24 * time.Hour

// maxPerCode bounds findings of one code; the rest fold into one summary.
const maxPerCode = 20

func (m *Model) findings(e *Explanation) []Finding {
	out := []Finding{} // an array in JSON even when empty
	out = append(out, capCode(m.rejectedFindings())...)
	out = append(out, capCode(m.warmingFindings())...)
	out = append(out, capCode(m.healthFindings(e))...)
	out = append(out, capCode(m.unknownClusterFindings())...)
	out = append(out, capCode(m.missingRouteConfigFindings())...)
	out = append(out, capCode(m.certFindings(e.Certificates))...)
	out = append(out, capCode(m.statsFindings())...)
	out = append(out, m.infoFindings(e)...)
	sortFindings(out)
	return out
}

// capCode keeps at most maxPerCode findings of each code and summarises
// the rest.
func capCode(in []Finding) []Finding {
	count := map[string]int{}
	var out []Finding
	var extra = map[string][]string{}
	var order []string
	for _, f := range in {
		count[f.Code]++
		if count[f.Code] <= maxPerCode {
			out = append(out, f)
			continue
		}
		if len(extra[f.Code]) == 0 {
			order = append(order, f.Code)
		}
		extra[f.Code] = append(extra[f.Code], f.Resource)
	}
	for _, code := range order {
		rs := extra[code]
		ev := rs
		if len(ev) > 50 {
			ev = append(ev[:50:50], fmt.Sprintf("... and %d more", len(rs)-50))
		}
		sev := Info
		for _, f := range in {
			if f.Code == code && f.Severity > sev {
				sev = f.Severity
			}
		}
		out = append(out, Finding{Severity: sev, Code: code, Title: fmt.Sprintf("%d more like the above", len(rs)), Evidence: ev})
	}
	return out
}

func rejectedFinding(kind, name string, st *adminv3.UpdateFailureState, status adminv3.ClientResourceStatus, serving string) Finding {
	f := Finding{Severity: Critical, Code: CodeRejected, Resource: kind + " " + name,
		Title: fmt.Sprintf("Envoy rejected the control plane's update of %s %s", kind, name),
		Fix:   "fix the configuration the control plane generates for this proxy (Istio: istioctl analyze, and istiod's logs for the rejected push); Envoy keeps serving the last version it accepted"}
	if st != nil {
		f.Detail = "Envoy refused it: " + st.GetDetails()
		if v := st.GetVersionInfo(); v != "" {
			f.Evidence = append(f.Evidence, "rejected_version="+v)
		}
		if t := ts(st.GetLastUpdateAttempt()); t != "" {
			f.Evidence = append(f.Evidence, "last_attempt="+t)
		}
	} else {
		f.Detail = "the proxy NACKed it (client_status NACKED)"
	}
	if status != adminv3.ClientResourceStatus_UNKNOWN {
		f.Evidence = append(f.Evidence, "client_status="+status.String())
	}
	if serving != "" {
		f.Evidence = append(f.Evidence, "serving_version="+serving)
	} else {
		f.Detail += "; no earlier version is active, so Envoy does not serve this resource at all"
	}
	return f
}

func isRejected(st *adminv3.UpdateFailureState, status adminv3.ClientResourceStatus) bool {
	return st != nil || status == adminv3.ClientResourceStatus_NACKED
}

func (m *Model) rejectedFindings() []Finding {
	var out []Finding
	for _, l := range m.listeners {
		if isRejected(l.errSt, l.status) {
			serving := ""
			if l.l != nil {
				serving = l.res.Version + " "
			}
			out = append(out, rejectedFinding("listener", l.name, l.errSt, l.status, strings.TrimSpace(serving)))
		}
	}
	for _, c := range m.clusters {
		if isRejected(c.errSt, c.status) {
			serving := ""
			if c.res.State != "rejected" {
				serving = c.res.Version + " "
			}
			out = append(out, rejectedFinding("cluster", c.name, c.errSt, c.status, strings.TrimSpace(serving)))
		}
	}
	for _, r := range m.routes {
		if isRejected(r.errSt, r.status) {
			serving := ""
			if r.rc != nil {
				serving = r.res.Version + " "
			}
			out = append(out, rejectedFinding("route config", r.name, r.errSt, r.status, strings.TrimSpace(serving)))
		}
	}
	for _, s := range m.secrets {
		if isRejected(s.errSt, s.status) {
			serving := ""
			if s.s != nil {
				serving = s.res.Version + " "
			}
			out = append(out, rejectedFinding("secret", s.name, s.errSt, s.status, strings.TrimSpace(serving)))
		}
	}
	for _, r := range m.otherRejected {
		out = append(out, rejectedFinding(r.kind, r.name, r.state, r.status, ""))
	}
	return out
}

func (m *Model) warmingFindings() []Finding {
	var out []Finding
	for _, l := range m.listeners {
		switch {
		case l.res.State == "warming":
			out = append(out, Finding{Severity: Warning, Code: CodeWarming, Resource: "listener " + l.name,
				Title:    fmt.Sprintf("listener %s is warming: Envoy does not serve it yet", l.name),
				Detail:   "a new listener waits until its route configurations (RDS), its clusters' endpoints and its secrets (SDS) arrive; one stuck warming usually waits for a secret or a route configuration the control plane never sends",
				Fix:      "look at the listener's secrets and RDS names below: a warming secret or a route configuration missing from the dump is what it waits for",
				Evidence: []string{"version=" + l.res.Version}})
		case l.warming:
			out = append(out, Finding{Severity: Info, Code: CodeWarming, Resource: "listener " + l.name,
				Title:  fmt.Sprintf("listener %s has an update warming; the previous version still serves", l.name),
				Detail: "the update takes over when its dependencies (RDS, EDS, SDS) arrive",
				Fix:    "if it stays warming, look for a warming secret or a missing route configuration"})
		}
	}
	for _, c := range m.clusters {
		if c.warming {
			sev, title := Warning, fmt.Sprintf("cluster %s is warming: Envoy does not use it yet", c.name)
			if c.res.State != "warming" {
				sev, title = Info, fmt.Sprintf("cluster %s has an update warming; the previous version still serves", c.name)
			}
			out = append(out, Finding{Severity: sev, Code: CodeWarming, Resource: "cluster " + c.name, Title: title,
				Detail: "a cluster warms until its first endpoint assignment (EDS) and its secrets (SDS) arrive",
				Fix:    "check that the control plane sends endpoints for it (Istio: istioctl proxy-config endpoints), and any SDS secret its TLS context names"})
		}
	}
	for _, s := range m.secrets {
		if s.res.State == "warming" {
			out = append(out, Finding{Severity: Warning, Code: CodeWarming, Resource: "secret " + s.name,
				Title:  fmt.Sprintf("secret %s is warming: Envoy has not received it", s.name),
				Detail: "listeners and clusters whose TLS contexts name this secret wait for it and do not serve",
				Fix:    "check the SDS server (Istio: istio-agent's logs and the workload's certificate provisioning; SPIRE: the agent's registration entries)"})
		}
	}
	return out
}

// checkable reports whether a cluster's type has endpoints to judge.
func checkable(typ string) bool {
	switch typ {
	case "EDS", "STATIC", "STRICT_DNS", "LOGICAL_DNS":
		return true
	}
	return false
}

func (m *Model) healthFindings(e *Explanation) []Finding {
	var out []Finding
	for _, c := range e.Clusters {
		if !checkable(c.Type) {
			continue
		}
		src := c.EndpointsFrom
		if src == "live" {
			src = "/clusters"
		}
		switch {
		case c.Total > 0 && c.Healthy == 0:
			sev := Warning
			if c.ReferencedBy > 0 {
				sev = Critical
			}
			ev := []string{fmt.Sprintf("hosts=%d", c.Total), "healthy=0", "from=" + src}
			ev = append(ev, healthSummary(c.Endpoints)...)
			out = append(out, Finding{Severity: sev, Code: CodeNoHealthyHost, Resource: "cluster " + c.Name,
				Title:    fmt.Sprintf("cluster %s has no healthy host (%d hosts)", c.Name, c.Total),
				Detail:   fmt.Sprintf("requests routed to it fail with 503 UH (no healthy upstream); it is the target of %s", plural(c.ReferencedBy, "route or TCP proxy", "routes or TCP proxies")),
				Evidence: ev,
				Fix:      "check the backends' readiness and health checks; hosts marked unhealthy by EDS come from the control plane's view of the pods (kubectl get endpoints)"})
		// A STATIC cluster without endpoints is deliberate (Istio's
		// BlackHoleCluster); EDS and DNS clusters without any are not.
		case c.Total == 0 && c.ReferencedBy > 0 && c.Type != "STATIC" && (c.EndpointsFrom != "" || (c.Type == "EDS" && m.hasEDS)):
			out = append(out, Finding{Severity: Critical, Code: CodeNoEndpoints, Resource: "cluster " + c.Name,
				Title:    fmt.Sprintf("cluster %s has no endpoints but is the target of %s", c.Name, plural(c.ReferencedBy, "route or TCP proxy", "routes or TCP proxies")),
				Detail:   "requests routed to it fail with 503 UH (no healthy upstream)",
				Evidence: []string{"type=" + c.Type},
				Fix:      "check that the service has ready pods (kubectl get endpointslices) and that the control plane sends them (istioctl proxy-config endpoints --cluster NAME)"})
		}
		if c.OutlierEjected > 0 {
			var hosts []string
			for _, ep := range c.Endpoints {
				if contains(ep.Flags, "failed_outlier_check") {
					hosts = append(hosts, "ejected="+ep.Address)
				}
			}
			out = append(out, Finding{Severity: Warning, Code: CodeOutlierEjected, Resource: "cluster " + c.Name,
				Title:    fmt.Sprintf("cluster %s: %d of %d hosts are ejected by outlier detection", c.Name, c.OutlierEjected, c.Total),
				Detail:   "outlier detection removed hosts that returned consecutive errors; they return after the ejection time",
				Evidence: hosts,
				Fix:      "look at those hosts' errors (the app's logs, cluster.NAME.outlier_detection.* stats); tune outlierDetection if ejections are spurious"})
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func healthSummary(eps []Endpoint) []string {
	n := map[string]int{}
	for _, ep := range eps {
		n[ep.Health]++
	}
	var out []string
	for _, k := range sortedKeys(n) {
		out = append(out, fmt.Sprintf("health[%s]=%d", k, n[k]))
	}
	return out
}

func (m *Model) unknownClusterFindings() []Finding {
	if !m.hasClusters {
		return nil
	}
	type use struct{ where []string }
	missing := map[string]*use{}
	var order []string
	note := func(cluster, where string) {
		if cluster == "" || m.clusterBy[cluster] != nil {
			return
		}
		u := missing[cluster]
		if u == nil {
			u = &use{}
			missing[cluster] = u
			order = append(order, cluster)
		}
		if len(u.where) < 10 && !contains(u.where, where) {
			u.where = append(u.where, where)
		}
	}
	for _, r := range m.routes {
		for _, vh := range r.rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				for _, c := range actionClusters(rt.GetRoute()) {
					where := "route_config=" + r.name + " virtual_host=" + vh.GetName()
					if rt.GetName() != "" {
						where += " route=" + rt.GetName()
					}
					note(c, where)
				}
			}
		}
	}
	for _, l := range m.listeners {
		for _, t := range l.tcps {
			for _, c := range tcpClusters(t.tcp) {
				note(c, "listener="+l.name+" tcp_proxy")
			}
		}
	}
	var out []Finding
	for _, c := range order {
		out = append(out, Finding{Severity: Critical, Code: CodeUnknownCluster, Resource: "cluster " + c,
			Title:    fmt.Sprintf("routes point at cluster %s, which Envoy does not have", c),
			Detail:   "requests matching these routes fail with 503 NC (cluster not found)",
			Evidence: missing[c].where,
			Fix:      "the route and the cluster come from different configurations: check the destination's host and subset (Istio: a DestinationRule subset the VirtualService names must exist) and that the cluster was not rejected"})
	}
	return out
}

func (m *Model) missingRouteConfigFindings() []Finding {
	if !m.hasRoutes {
		return nil
	}
	var out []Finding
	seen := map[string]bool{}
	for _, l := range m.listeners {
		for _, h := range l.hcms {
			name := h.hcm.GetRds().GetRouteConfigName()
			if name == "" || seen[name] {
				continue
			}
			found := false
			for _, r := range m.routeByNm[name] {
				if r.res.Source != "inline" && r.rc != nil {
					found = true
				}
			}
			if found {
				continue
			}
			seen[name] = true
			out = append(out, Finding{Severity: Warning, Code: CodeRouteConfigMissing, Resource: "route config " + name,
				Title:    fmt.Sprintf("listener %s uses route configuration %s, which is not in the dump", l.name, name),
				Detail:   "until RDS delivers it the listener warms, or answers 404 NR",
				Evidence: []string{"listener=" + l.name, "state=" + l.res.State},
				Fix:      "check that the control plane sends this route configuration (Istio: istioctl proxy-config routes)"})
		}
	}
	return out
}

// certificates gathers certificates from /certs and the dump's secrets.
func (m *Model) certificates() []Certificate {
	var out []Certificate
	seen := map[string]bool{}
	add := func(c Certificate) {
		k := c.SerialNumber + "|" + c.NotAfter
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, c)
	}
	for _, cert := range m.in.Certs.GetCertificates() {
		for _, d := range cert.GetCaCert() {
			add(m.certFromDetails(d, true))
		}
		for _, d := range cert.GetCertChain() {
			add(m.certFromDetails(d, false))
		}
	}
	for _, s := range m.secrets {
		if s.s == nil {
			continue
		}
		src := "secret:" + s.name
		if tc := s.s.GetTlsCertificate(); tc != nil {
			for _, c := range m.parsePEM(tc.GetCertificateChain(), src) {
				add(c)
			}
		}
		if vc := s.s.GetValidationContext(); vc != nil {
			for _, c := range m.parsePEM(vc.GetTrustedCa(), src) {
				c.CA = true
				add(c)
			}
		}
	}
	return out
}

func (m *Model) certFromDetails(d *adminv3.CertificateDetails, ca bool) Certificate {
	c := Certificate{Source: "certs", SerialNumber: d.GetSerialNumber(), CA: ca, NotBefore: ts(d.GetValidFrom()), NotAfter: ts(d.GetExpirationTime())}
	for _, san := range d.GetSubjectAltNames() {
		switch {
		case san.GetUri() != "":
			c.SANs = append(c.SANs, san.GetUri())
		case san.GetDns() != "":
			c.SANs = append(c.SANs, san.GetDns())
		case san.GetIpAddress() != "":
			c.SANs = append(c.SANs, san.GetIpAddress())
		}
	}
	if d.GetExpirationTime() != nil {
		c.DaysLeft = daysLeft(d.GetExpirationTime().AsTime(), m.now)
	}
	return c
}

func daysLeft(notAfter, now time.Time) int {
	return int(math.Floor(notAfter.Sub(now).Hours() / 24))
}

func (m *Model) parsePEM(ds *corev3.DataSource, source string) []Certificate {
	var data []byte
	switch {
	case len(ds.GetInlineBytes()) > 0:
		data = ds.GetInlineBytes()
	case ds.GetInlineString() != "":
		data = []byte(ds.GetInlineString())
	default:
		return nil
	}
	var out []Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			continue
		}
		c := Certificate{Source: source, Subject: x.Subject.String(), SerialNumber: hex.EncodeToString(x.SerialNumber.Bytes()), CA: x.IsCA,
			NotBefore: x.NotBefore.UTC().Format(time.RFC3339), NotAfter: x.NotAfter.UTC().Format(time.RFC3339), DaysLeft: daysLeft(x.NotAfter, m.now)}
		for _, u := range x.URIs {
			c.SANs = append(c.SANs, u.String())
		}
		c.SANs = append(c.SANs, x.DNSNames...)
		for _, ip := range x.IPAddresses {
			c.SANs = append(c.SANs, ip.String())
		}
		out = append(out, c)
	}
	return out
}

func (m *Model) certFindings(certs []Certificate) []Finding {
	var out []Finding
	for _, c := range certs {
		if c.NotAfter == "" {
			continue
		}
		na, err := time.Parse(time.RFC3339, c.NotAfter)
		if err != nil {
			continue
		}
		what := "certificate"
		if c.CA {
			what = "CA certificate"
		}
		id := c.Subject
		if len(c.SANs) > 0 {
			id = c.SANs[0]
		}
		if id == "" {
			id = "serial " + c.SerialNumber
		}
		ev := []string{"source=" + c.Source, "serial=" + c.SerialNumber, "not_after=" + c.NotAfter}
		left := na.Sub(m.now)
		switch {
		case left <= 0:
			out = append(out, Finding{Severity: Critical, Code: CodeCertExpired, Resource: what + " " + id,
				Title:    fmt.Sprintf("%s %s expired %s ago", what, id, roundDays(-left)),
				Detail:   "TLS handshakes that present or verify it fail",
				Evidence: ev,
				Fix:      "rotate it: with SDS the issuer (istio-agent, SPIRE, cert-manager) should have; check why it stopped (its logs, the CA's reachability)"})
		case left <= CertExpiringWithin:
			out = append(out, Finding{Severity: Warning, Code: CodeCertExpiring, Resource: what + " " + id,
				Title:    fmt.Sprintf("%s %s expires in %s", what, id, roundDays(left)),
				Detail:   "workload certificates rotate well before expiry; one this close may not be rotating",
				Evidence: ev,
				Fix:      "check the issuer's rotation (istio-agent, SPIRE, cert-manager) before it expires"})
		}
	}
	return out
}

func roundDays(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return d.Round(time.Minute).String()
}

// Stats that mean a circuit breaker turned requests or connections away,
// and that a breaker is open now.
var (
	overflowStats = []string{"upstream_cx_overflow", "upstream_rq_pending_overflow", "upstream_rq_retry_overflow", "upstream_cx_pool_overflow"}
	openGauges    = []string{"cx_open", "rq_pending_open", "rq_open", "rq_retry_open", "cx_pool_open"}
	resetStats    = []string{"upstream_rq_rx_reset", "upstream_rq_tx_reset", "upstream_cx_destroy_local_with_active_rq", "upstream_cx_destroy_remote_with_active_rq", "upstream_rq_pending_failure_eject"}
)

type clusterStats struct {
	overflow, open, resets []string
	ejectionsActive        uint64
}

func (m *Model) statsFindings() []Finding {
	if len(m.in.Stats) == 0 {
		return nil
	}
	by := map[string]*clusterStats{}
	get := func(c string) *clusterStats {
		s := by[c]
		if s == nil {
			s = &clusterStats{}
			by[c] = s
		}
		return s
	}
	for _, st := range m.in.Stats {
		if st.Value == 0 || !strings.HasPrefix(st.Name, "cluster.") {
			continue
		}
		rest := st.Name[len("cluster."):]
		for _, s := range overflowStats {
			if c, ok := strings.CutSuffix(rest, "."+s); ok {
				get(c).overflow = append(get(c).overflow, fmt.Sprintf("%s=%d", s, st.Value))
			}
		}
		for _, s := range resetStats {
			if c, ok := strings.CutSuffix(rest, "."+s); ok {
				get(c).resets = append(get(c).resets, fmt.Sprintf("%s=%d", s, st.Value))
			}
		}
		if i := strings.LastIndex(rest, ".circuit_breakers."); i > 0 {
			tail := rest[i+len(".circuit_breakers."):]
			if prio, g, ok := strings.Cut(tail, "."); ok && contains(openGauges, g) {
				get(rest[:i]).open = append(get(rest[:i]).open, fmt.Sprintf("circuit_breakers.%s.%s=%d", prio, g, st.Value))
			}
		}
		if c, ok := strings.CutSuffix(rest, ".outlier_detection.ejections_active"); ok {
			get(c).ejectionsActive = st.Value
		}
	}
	var out []Finding
	for _, c := range sortedKeys(by) {
		s := by[c]
		if len(s.overflow) > 0 || len(s.open) > 0 {
			sev := Warning
			title := fmt.Sprintf("cluster %s: circuit breakers turned requests or connections away", c)
			if len(s.open) > 0 {
				sev = Critical
				title = fmt.Sprintf("cluster %s: a circuit breaker is open now", c)
			}
			out = append(out, Finding{Severity: sev, Code: CodeCircuitBreaker, Resource: "cluster " + c, Title: title,
				Detail:   "requests over the limits fail fast with 503 UO (upstream overflow); counters count since Envoy started or the last reset_counters",
				Evidence: append(append([]string{}, s.open...), s.overflow...),
				Fix:      "raise the limits (Istio: DestinationRule connectionPool) if the load is real, or find why the upstream is slow (connections and requests pile up)"})
		}
		if len(s.resets) > 0 {
			out = append(out, Finding{Severity: Info, Code: CodeUpstreamResets, Resource: "cluster " + c,
				Title:    fmt.Sprintf("cluster %s: upstream streams or connections were reset", c),
				Detail:   "counts since Envoy started or the last reset_counters; a few are normal, a growing count means the upstream closes or crashes mid-request (503 UC/UR)",
				Evidence: s.resets,
				Fix:      "compare two reads to see if they grow; look at the upstream's logs and restarts, and at idle timeouts on both sides"})
		}
		if s.ejectionsActive > 0 && m.live == nil {
			out = append(out, Finding{Severity: Warning, Code: CodeOutlierEjected, Resource: "cluster " + c,
				Title:    fmt.Sprintf("cluster %s: %d hosts are ejected by outlier detection", c, s.ejectionsActive),
				Evidence: []string{fmt.Sprintf("outlier_detection.ejections_active=%d", s.ejectionsActive)},
				Fix:      "see which with triage envoy clusters; look at those hosts' errors"})
		}
	}
	return out
}

func (m *Model) infoFindings(e *Explanation) []Finding {
	var out []Finding
	if len(m.in.Unknown) > 0 {
		n := map[string]int{}
		for _, u := range m.in.Unknown {
			n[u.TypeURL]++
		}
		var ev []string
		for _, k := range sortedKeys(n) {
			ev = append(ev, fmt.Sprintf("%s x%d", k, n[k]))
		}
		out = append(out, Finding{Severity: Info, Code: CodeUnknownTypes,
			Title:    fmt.Sprintf("%d typed configs have types triage does not know; they are kept as JSON and not explained", len(m.in.Unknown)),
			Detail:   "usually extensions of the mesh (Istio's own filters) or of an Envoy newer than go-control-plane",
			Evidence: ev})
	}
	if len(m.in.Legacy) > 0 {
		var ev []string
		total := 0
		for _, l := range m.in.Legacy {
			ev = append(ev, fmt.Sprintf("%s x%d", l.TypeURL, l.Count))
			total += l.Count
		}
		out = append(out, Finding{Severity: Info, Code: CodeLegacyTypes,
			Title:    fmt.Sprintf("%d resources use v2 API types; they are read as their v3 equivalents", total),
			Detail:   "Envoy 1.13-1.16 accepted v2 resources; v2 and v3 are wire-compatible, and fields v3 removed are ignored",
			Evidence: ev,
			Fix:      "upgrade the control plane and Envoy: the v2 API is gone since Envoy 1.18"})
	}
	if !m.hasEDS && m.live == nil {
		n := 0
		for _, c := range e.Clusters {
			if c.Type == "EDS" {
				n++
			}
		}
		if n > 0 {
			out = append(out, Finding{Severity: Info, Code: CodeEndpointsNotInDump,
				Title: fmt.Sprintf("%d EDS clusters, but the dump has no endpoints: their health is not judged", n),
				Fix:   "fetch the dump with include_eds, or give explain /clusters"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}
