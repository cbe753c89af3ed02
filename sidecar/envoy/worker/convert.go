package worker

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/envoyexplain"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// The conversions from envoyexplain's plain structs to the API's messages.
// envoyexplain's types map one to one onto them.

// findingsProto converts findings. A finding's title and detail become the
// message; its resource joins the evidence when the title does not name it.
func findingsProto(fs []envoyexplain.Finding) []*triagev1.Finding {
	out := make([]*triagev1.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, findingProto(f))
	}
	return out
}

func findingProto(f envoyexplain.Finding) *triagev1.Finding {
	msg := f.Title
	if f.Detail != "" {
		msg += "; " + f.Detail
	}
	ev := append([]string(nil), f.Evidence...)
	if f.Resource != "" {
		_, name, _ := strings.Cut(f.Resource, " ")
		if name == "" || !strings.Contains(f.Title, name) {
			ev = append([]string{"resource=" + f.Resource}, ev...)
		}
	}
	return &triagev1.Finding{
		Severity: triagev1.Severity(f.Severity),
		Code:     f.Code,
		Message:  msg,
		Evidence: ev,
		Fix:      f.Fix,
	}
}

func countsProto(c envoyexplain.Counts) *triagev1.EnvoyCounts {
	n := func(v int) *int32 { x := int32(v); return &x }
	return &triagev1.EnvoyCounts{
		Listeners:        n(c.Listeners),
		RouteConfigs:     n(c.RouteConfigs),
		VirtualHosts:     n(c.VirtualHosts),
		Routes:           n(c.Routes),
		Clusters:         n(c.Clusters),
		Endpoints:        n(c.Endpoints),
		HealthyEndpoints: n(c.HealthyEndpoints),
		Secrets:          n(c.Secrets),
	}
}

func nodeProto(n *envoyexplain.Node) *triagev1.EnvoyNode {
	if n == nil {
		return nil
	}
	return &triagev1.EnvoyNode{Id: n.ID, Cluster: n.Cluster, EnvoyVersion: n.EnvoyVersion, IstioVersion: n.IstioVersion}
}

// timestamp parses an RFC 3339 time; nil when empty or unparsable.
func timestamp(s string) *timestamppb.Timestamp {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	return timestamppb.New(t)
}

func statusProto(r envoyexplain.Resource) *triagev1.EnvoyResourceStatus {
	st := &triagev1.EnvoyResourceStatus{
		Source:      r.Source,
		State:       r.State,
		Version:     r.Version,
		LastUpdated: timestamp(r.LastUpdated),
		LegacyType:  r.Legacy,
	}
	if r.Rejected != nil {
		st.Rejected = &triagev1.EnvoyRejection{Details: r.Rejected.Details, Version: r.Rejected.Version, LastAttempt: timestamp(r.Rejected.LastAttempt)}
	}
	return st
}

func weightedProto(ws []envoyexplain.WeightedCluster) []*triagev1.EnvoyWeightedCluster {
	if len(ws) == 0 {
		return nil
	}
	out := make([]*triagev1.EnvoyWeightedCluster, len(ws))
	for i, w := range ws {
		out[i] = &triagev1.EnvoyWeightedCluster{Name: w.Name, Weight: w.Weight}
	}
	return out
}

func listenersProto(ls []envoyexplain.Listener) []*triagev1.EnvoyListener {
	out := make([]*triagev1.EnvoyListener, 0, len(ls))
	for _, l := range ls {
		pl := &triagev1.EnvoyListener{Name: l.Name, Address: l.Address, Status: statusProto(l.Resource), Warming: l.Warming, ListenerFilters: l.ListenerFilters}
		for _, fc := range l.FilterChains {
			pc := &triagev1.EnvoyFilterChain{Name: fc.Name, Match: fc.Match, DefaultChain: fc.Default, Tls: fc.TLS, Filters: fc.Filters}
			for _, h := range fc.HTTP {
				pc.HttpConnectionManagers = append(pc.HttpConnectionManagers, &triagev1.EnvoyHttpConnectionManager{
					StatPrefix: h.StatPrefix, RouteConfig: h.RouteConfig, Via: h.Via, HttpFilters: h.HTTPFilters})
			}
			for _, t := range fc.TCP {
				pc.TcpProxies = append(pc.TcpProxies, &triagev1.EnvoyTcpProxy{StatPrefix: t.StatPrefix, Cluster: t.Cluster, WeightedClusters: weightedProto(t.WeightedClusters)})
			}
			pl.FilterChains = append(pl.FilterChains, pc)
		}
		out = append(out, pl)
	}
	return out
}

func routeProto(r envoyexplain.Route) *triagev1.EnvoyRoute {
	return &triagev1.EnvoyRoute{
		Name: r.Name, Match: r.Match, Action: r.Action, Cluster: r.Cluster,
		WeightedClusters: weightedProto(r.WeightedClusters), ClusterHeader: r.ClusterHeader,
		Redirect: r.Redirect, DirectResponseStatus: r.DirectResponseStatus,
	}
}

func routeConfigsProto(rs []envoyexplain.RouteConfig) []*triagev1.EnvoyRouteConfig {
	out := make([]*triagev1.EnvoyRouteConfig, 0, len(rs))
	for _, r := range rs {
		pr := &triagev1.EnvoyRouteConfig{Name: r.Name, Status: statusProto(r.Resource), UsedBy: r.UsedBy}
		for _, vh := range r.VirtualHosts {
			pv := &triagev1.EnvoyVirtualHost{Name: vh.Name, Domains: vh.Domains}
			for _, rt := range vh.Routes {
				pv.Routes = append(pv.Routes, routeProto(rt))
			}
			pr.VirtualHosts = append(pr.VirtualHosts, pv)
		}
		out = append(out, pr)
	}
	return out
}

func endpointsProto(es []envoyexplain.Endpoint) []*triagev1.EnvoyEndpoint {
	if len(es) == 0 {
		return nil
	}
	out := make([]*triagev1.EnvoyEndpoint, len(es))
	for i, e := range es {
		out[i] = &triagev1.EnvoyEndpoint{Address: e.Address, Health: e.Health, Healthy: e.Healthy, Weight: e.Weight,
			Priority: e.Priority, Locality: e.Locality, Hostname: e.Hostname, Flags: e.Flags}
	}
	return out
}

func clustersProto(cs []envoyexplain.Cluster) []*triagev1.EnvoyCluster {
	out := make([]*triagev1.EnvoyCluster, 0, len(cs))
	for _, c := range cs {
		out = append(out, &triagev1.EnvoyCluster{
			Name: c.Name, Status: statusProto(c.Resource), Type: c.Type, EdsServiceName: c.EDSServiceName,
			EndpointsFrom: c.EndpointsFrom, Endpoints: endpointsProto(c.Endpoints),
			Total: int32(c.Total), Healthy: int32(c.Healthy), OutlierEjected: int32(c.OutlierEjected), ReferencedBy: int32(c.ReferencedBy),
		})
	}
	return out
}

func secretsProto(ss []envoyexplain.Secret) []*triagev1.EnvoySecret {
	out := make([]*triagev1.EnvoySecret, 0, len(ss))
	for _, s := range ss {
		out = append(out, &triagev1.EnvoySecret{Name: s.Name, Status: statusProto(s.Resource), Kind: s.Kind})
	}
	return out
}

func certificatesProto(cs []envoyexplain.Certificate) []*triagev1.EnvoyCertificate {
	out := make([]*triagev1.EnvoyCertificate, 0, len(cs))
	for _, c := range cs {
		out = append(out, &triagev1.EnvoyCertificate{
			Source: c.Source, Subject: c.Subject, SerialNumber: c.SerialNumber, Sans: c.SANs, Ca: c.CA,
			NotBefore: timestamp(c.NotBefore), NotAfter: timestamp(c.NotAfter), DaysLeft: int32(c.DaysLeft),
		})
	}
	return out
}

func unknownProto(us []envoyexplain.Unknown) []*triagev1.EnvoyUnknownType {
	out := make([]*triagev1.EnvoyUnknownType, 0, len(us))
	for _, u := range us {
		out = append(out, &triagev1.EnvoyUnknownType{Path: u.Path, TypeUrl: u.TypeURL})
	}
	return out
}

func matchProto(r *envoyexplain.MatchResult) *triagev1.MatchRouteResponse {
	resp := &triagev1.MatchRouteResponse{Matched: r.Best() != nil}
	for _, c := range r.Candidates {
		pc := &triagev1.EnvoyRouteMatch{
			RouteConfig: c.RouteConfig, Source: c.Source, Listeners: c.Listeners, HostMatched: c.HostMatched,
			VirtualHost: c.VirtualHost, Domain: c.Domain, Matched: c.Matched, RouteIndex: int32(c.RouteIndex),
			Reason: c.Reason, Notes: c.Notes,
		}
		if c.Route != nil {
			pc.Route = routeProto(*c.Route)
		}
		for _, mc := range c.Clusters {
			pc.Clusters = append(pc.Clusters, &triagev1.EnvoyMatchedCluster{Name: mc.Name, Weight: mc.Weight, Exists: mc.Exists,
				Total: int32(mc.Total), HealthyEndpoints: endpointsProto(mc.HealthyEndpoints)})
		}
		resp.Candidates = append(resp.Candidates, pc)
	}
	return resp
}

func explanationProto(e *envoyexplain.Explanation) *triagev1.EnvoyServiceExplainResponse {
	return &triagev1.EnvoyServiceExplainResponse{
		Counts:       countsProto(e.Counts),
		Findings:     findingsProto(e.Findings),
		Node:         nodeProto(e.Node),
		Listeners:    listenersProto(e.Listeners),
		RouteConfigs: routeConfigsProto(e.RouteConfigs),
		Clusters:     clustersProto(e.Clusters),
		EdsOnly:      clustersProto(e.EDSOnly),
		Secrets:      secretsProto(e.Secrets),
		Certificates: certificatesProto(e.Certificates),
		UnknownTypes: unknownProto(e.Unknown),
	}
}
