package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func n32(v int32) *int32 { return &v }

// fixtureEnvoyExplain is a small Istio sidecar's explanation with one of
// each shape: a rejected listener update, a warming cluster, a cluster
// without healthy hosts, an outlier ejection, an expiring certificate.
func fixtureEnvoyExplain() *triagev1.EnvoyServiceExplainResponse {
	v := "2026-03-01T13:58:00Z/42"
	dyn := func(state string) *triagev1.EnvoyResourceStatus {
		return &triagev1.EnvoyResourceStatus{Source: "dynamic", State: state, Version: v, LastUpdated: ts(fixtureNow.Add(-2 * time.Minute))}
	}
	rejected := dyn("active")
	rejected.Rejected = &triagev1.EnvoyRejection{Details: "Error adding/updating listener(s) 0.0.0.0_8080: duplicate filter chain match", Version: "2026-03-01T13:59:00Z/43"}
	return &triagev1.EnvoyServiceExplainResponse{
		AdminUrl: "http://127.0.0.1:15000",
		Time:     ts(fixtureNow),
		Counts: &triagev1.EnvoyCounts{Listeners: n32(3), RouteConfigs: n32(1), VirtualHosts: n32(2), Routes: n32(3),
			Clusters: n32(4), Endpoints: n32(5), HealthyEndpoints: n32(2), Secrets: n32(2)},
		Findings: []*triagev1.Finding{
			{Severity: triagev1.Severity_SEVERITY_CRITICAL, Code: "envoy-resource-rejected",
				Message:  "listener 0.0.0.0_8080: Envoy rejected the control plane's update; it keeps serving the previous version",
				Evidence: []string{"rejected_version=2026-03-01T13:59:00Z/43", "error=duplicate filter chain match"},
				Fix:      "fix the configuration the control plane sends (istioctl analyze), then check the listener again"},
			{Severity: triagev1.Severity_SEVERITY_CRITICAL, Code: "envoy-cluster-no-healthy-host",
				Message:  "cluster outbound|9080||ratings.shop.svc.cluster.local has no healthy host; requests routed to it fail with 503 UH (no healthy upstream)",
				Evidence: []string{"endpoints=2", "healthy=0"},
				Fix:      "look at the ratings pods: readiness, restarts, and their health checks"},
			{Severity: triagev1.Severity_SEVERITY_WARNING, Code: "envoy-cert-expiring",
				Message:  "certificate spiffe://cluster.local/ns/shop/sa/reviews expires in 3 days",
				Evidence: []string{"source=secret:default", "not_after=2026-03-04T14:00:00Z"}},
		},
		Node: &triagev1.EnvoyNode{Id: "sidecar~10.1.2.3~reviews-v1-6f7c9.shop~shop.svc.cluster.local", Cluster: "reviews.shop", EnvoyVersion: "1.29.1", IstioVersion: "1.21.0"},
		Listeners: []*triagev1.EnvoyListener{
			{Address: "0.0.0.0:15090", Status: &triagev1.EnvoyResourceStatus{Source: "static", State: "active"},
				FilterChains: []*triagev1.EnvoyFilterChain{{Filters: []string{"envoy.filters.network.http_connection_manager"},
					HttpConnectionManagers: []*triagev1.EnvoyHttpConnectionManager{{StatPrefix: "stats", Via: "inline"}}}}},
			{Name: "0.0.0.0_8080", Address: "0.0.0.0:8080", Status: rejected, FilterChains: []*triagev1.EnvoyFilterChain{
				{Match: "transport=raw_buffer", Filters: []string{"envoy.filters.network.http_connection_manager"},
					HttpConnectionManagers: []*triagev1.EnvoyHttpConnectionManager{{RouteConfig: "8080", Via: "rds"}}},
				{Name: "PassthroughFilterChain", DefaultChain: true, Filters: []string{"envoy.filters.network.tcp_proxy"},
					TcpProxies: []*triagev1.EnvoyTcpProxy{{Cluster: "PassthroughCluster"}}}}},
			{Name: "virtualInbound", Address: "0.0.0.0:15006", Status: dyn("active"), Warming: true},
		},
		RouteConfigs: []*triagev1.EnvoyRouteConfig{{Name: "8080", Status: dyn("active"), UsedBy: []string{"0.0.0.0_8080"},
			VirtualHosts: []*triagev1.EnvoyVirtualHost{
				{Name: "ratings.shop.svc.cluster.local:8080", Domains: []string{"ratings.shop.svc.cluster.local", "ratings", "ratings.shop"},
					Routes: []*triagev1.EnvoyRoute{
						{Match: "prefix=/v2 header[x-canary]=exact:true", Action: "weighted_clusters", WeightedClusters: []*triagev1.EnvoyWeightedCluster{{Name: "outbound|8080|v2|ratings.shop.svc.cluster.local", Weight: 90}, {Name: "outbound|8080|v3|ratings.shop.svc.cluster.local", Weight: 10}}},
						{Match: "prefix=/", Action: "cluster", Cluster: "outbound|9080||ratings.shop.svc.cluster.local"}}},
				{Name: "allow_any", Domains: []string{"*"}, Routes: []*triagev1.EnvoyRoute{{Match: "prefix=/", Action: "direct_response", DirectResponseStatus: 502}}},
			}}},
		Clusters: []*triagev1.EnvoyCluster{
			{Name: "PassthroughCluster", Type: "ORIGINAL_DST", Status: dyn("active"), ReferencedBy: 1},
			{Name: "outbound|9080||ratings.shop.svc.cluster.local", Type: "EDS", Status: dyn("active"), EndpointsFrom: "live", Total: 2, Healthy: 0, ReferencedBy: 1,
				Endpoints: []*triagev1.EnvoyEndpoint{{Address: "10.1.4.7:9080", Health: "failed_active_hc", Flags: []string{"failed_active_hc"}}, {Address: "10.1.4.8:9080", Health: "failed_active_hc", Flags: []string{"failed_active_hc"}}}},
			{Name: "outbound|9080||reviews.shop.svc.cluster.local", Type: "EDS", Status: dyn("active"), EndpointsFrom: "live", Total: 3, Healthy: 2, OutlierEjected: 1,
				Endpoints: []*triagev1.EnvoyEndpoint{{Address: "10.1.5.1:9080", Health: "HEALTHY", Healthy: true, Weight: 1, Locality: "eu-west-1/eu-west-1a"}, {Address: "10.1.5.2:9080", Health: "HEALTHY", Healthy: true, Weight: 1, Locality: "eu-west-1/eu-west-1b"}, {Address: "10.1.5.3:9080", Health: "failed_outlier_check", Flags: []string{"failed_outlier_check"}, Weight: 1}}},
			{Name: "outbound|8080|v3|ratings.shop.svc.cluster.local", Type: "EDS", Status: dyn("warming")},
		},
		Secrets: []*triagev1.EnvoySecret{{Name: "default", Kind: "tls_certificate", Status: dyn("active")}, {Name: "ROOTCA", Kind: "validation_context", Status: dyn("active")}},
		Certificates: []*triagev1.EnvoyCertificate{
			{Source: "secret:default", Sans: []string{"spiffe://cluster.local/ns/shop/sa/reviews"}, SerialNumber: "6b1e0f2c9a7d4e3b8f01", NotAfter: ts(fixtureNow.Add(72 * time.Hour)), DaysLeft: 3},
			{Source: "secret:ROOTCA", Subject: "O=cluster.local", Ca: true, SerialNumber: "e90b", NotAfter: ts(fixtureNow.Add(3650 * 24 * time.Hour)), DaysLeft: 3650},
		},
		UnknownTypes: []*triagev1.EnvoyUnknownType{{Path: "configs[2]...", TypeUrl: "type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig"}},
		Notes:        []string{"certificates (/certs) are unavailable: GET http://127.0.0.1:15000/certs: envoy admin did not answer within 10s"},
	}
}

func TestEnvoyGolden(t *testing.T) {
	ex := fixtureEnvoyExplain()
	clusters := &triagev1.ListClustersResponse{Clusters: ex.Clusters}
	routeReq := &triagev1.MatchRouteRequest{Host: "ratings:8080", Path: "/v2/items", Headers: map[string]string{"x-canary": "true"}}
	route := &triagev1.MatchRouteResponse{Matched: true, Candidates: []*triagev1.EnvoyRouteMatch{
		{RouteConfig: "8080", Source: "dynamic", Listeners: []string{"0.0.0.0_8080"}, HostMatched: "ratings", VirtualHost: "ratings.shop.svc.cluster.local:8080",
			Domain: "ratings", Matched: true, Route: ex.RouteConfigs[0].VirtualHosts[0].Routes[0], Clusters: []*triagev1.EnvoyMatchedCluster{
				{Name: "outbound|8080|v2|ratings.shop.svc.cluster.local", Weight: 90, Exists: true, Total: 2, HealthyEndpoints: []*triagev1.EnvoyEndpoint{{Address: "10.1.4.9:8080", Healthy: true}}},
				{Name: "outbound|8080|v3|ratings.shop.svc.cluster.local", Weight: 10, Exists: false}},
			Notes: []string{"the route also matches on runtime_fraction, which triage does not evaluate"}},
		{RouteConfig: "", Source: "static", VirtualHost: "backend", Reason: "virtual host backend has no route matching GET /v2/items; Envoy answers 404 (NR)"},
	}}
	tests := []struct {
		name   string
		render func(*bytes.Buffer) error
	}{
		{"envoy_explain", func(b *bytes.Buffer) error { return EnvoyExplain(b, ex, fixtureNow, Style{}) }},
		{"envoy_clusters", func(b *bytes.Buffer) error {
			return EnvoyClusters(b, clusters, EnvoyClustersOptions{Endpoints: true}, Style{})
		}},
		{"envoy_routes", func(b *bytes.Buffer) error {
			return EnvoyRouteConfigs(b, &triagev1.ListRouteConfigsResponse{RouteConfigs: ex.RouteConfigs}, Style{})
		}},
		{"envoy_route", func(b *bytes.Buffer) error { return EnvoyRoute(b, routeReq, route, Style{}) }},
		{"envoy_certs", func(b *bytes.Buffer) error {
			return EnvoyCertificates(b, &triagev1.GetCertificatesResponse{Certificates: ex.Certificates, Findings: ex.Findings[2:], Time: ex.Time}, fixtureNow, Style{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.render(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

// TestEnvoyExplainColour: the states that need attention are coloured on a
// terminal, and nothing is coloured for a pipe.
func TestEnvoyExplainColour(t *testing.T) {
	var plain, colour bytes.Buffer
	if err := EnvoyExplain(&plain, fixtureEnvoyExplain(), fixtureNow, Style{}); err != nil {
		t.Fatal(err)
	}
	if err := EnvoyExplain(&colour, fixtureEnvoyExplain(), fixtureNow, Style{Color: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("plain output has escape codes")
	}
	for _, want := range []string{Style{Color: true}.Paint(Red, "0/2"), Style{Color: true}.Paint(Red, "active, update rejected"), Style{Color: true}.Paint(Yellow, "warming")} {
		if !strings.Contains(colour.String(), want) {
			t.Errorf("colour output lacks %q", want)
		}
	}
}
