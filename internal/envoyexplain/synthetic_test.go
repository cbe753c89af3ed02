package envoyexplain

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/triage-sh/triage/internal/envoyadmin"
)

// synthNow is the explanation time of the synthetic dump.
var synthNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func cla(name string, health ...corev3.HealthStatus) *endpointv3.ClusterLoadAssignment {
	le := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "eu", Zone: "eu-1a"}}
	for i, h := range health {
		le.LbEndpoints = append(le.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("10.0.0."+string(rune('1'+i)), 8080)}},
			HealthStatus:   h,
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{le}}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: name}}
}

func routeTo(cluster string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}
}

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func hcmFilter(t testing.TB, h *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}
}

func rds(name string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{StatPrefix: "http", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: name}}}
}

// synthRoutes is a route configuration exercising Envoy's matching rules.
func synthRoutes() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{
		{Name: "api", Domains: []string{"api.example.com", "api.example.com:80"}, Routes: []*routev3.Route{
			{Name: "canary", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"},
				Headers: []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "yes"}}}}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: "api", Weight: wrapperspb.UInt32(90)}, {Name: "api-canary", Weight: wrapperspb.UInt32(10)}}}}}}},
			{Name: "not-bot", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api/v2"},
				//lint:ignore SA1019 tests the deprecated form older Envoys send
				Headers: []*routev3.HeaderMatcher{{Name: "user-agent", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "bot"}}}},
				Action: routeTo("api-v2")},
			{Name: "api", Match: prefix("/api"), Action: routeTo("api")},
			{Name: "exact", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, Action: routeTo("exact")},
			{Name: "items", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/items/[0-9]+"}}}, Action: routeTo("dead")},
			{Name: "docs", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/docs"}}, Action: routeTo("exact")},
			{Name: "debug", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418}}},
			{Name: "upper", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/CASE"}, CaseSensitive: wrapperspb.Bool(false)}, Action: routeTo("exact")},
			{Name: "old", Match: prefix("/old"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}, PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"}}}},
			{Name: "gone", Match: prefix("/gone"), Action: routeTo("no-such-cluster")},
		}},
		{Name: "wild", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{{Name: "wild", Match: prefix("/"), Action: routeTo("exact")}}},
		{Name: "longwild", Domains: []string{"*.b.example.com"}, Routes: []*routev3.Route{{Name: "longwild", Match: prefix("/"), Action: routeTo("exact")}}},
		{Name: "prefixwild", Domains: []string{"internal.*"}, Routes: []*routev3.Route{{Name: "prefixwild", Match: prefix("/"), Action: routeTo("exact")}}},
		{Name: "default", Domains: []string{"*"}, Routes: []*routev3.Route{{Name: "default", Match: prefix("/"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}}}}},
	}}
}

func certPEM(t testing.TB, cn string, ca bool, notAfter time.Time) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://example.org/" + cn)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(len(cn)) + notAfter.Unix()), Subject: pkix.Name{CommonName: cn}, NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter,
		IsCA: ca, BasicConstraintsValid: true, URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// synthDump is a dump with one of every failure shape explain finds.
func synthDump(t testing.TB) Input {
	updated := timestamppb.New(synthNow.Add(-time.Hour))
	fail := &adminv3.UpdateFailureState{Details: "Proto constraint validation failed (ClusterValidationError.ConnectTimeout: value must be greater than 0s)", VersionInfo: "v9", LastUpdateAttempt: timestamppb.New(synthNow.Add(-time.Minute))}
	listeners := &adminv3.ListenersConfigDump{
		StaticListeners: []*adminv3.ListenersConfigDump_StaticListener{{Listener: mustAny(t, &listenerv3.Listener{Name: "admin-stats", Address: sockAddr("0.0.0.0", 15090)}), LastUpdated: updated}},
		DynamicListeners: []*adminv3.ListenersConfigDump_DynamicListener{
			{Name: "0.0.0.0_80", ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "v8", LastUpdated: updated, Listener: mustAny(t, &listenerv3.Listener{
				Name: "0.0.0.0_80", Address: sockAddr("0.0.0.0", 80),
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(t, rds("80"))}}}})}},
			{Name: "0.0.0.0_3306", ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "v8", LastUpdated: updated, Listener: mustAny(t, &listenerv3.Listener{
				Name: "0.0.0.0_3306", Address: sockAddr("0.0.0.0", 3306),
				FilterChains: []*listenerv3.FilterChain{
					{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: "mysql", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "mysql"}})}}}},
					{Name: "blackhole", Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: "BlackHoleCluster", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "BlackHoleCluster"}})}}}},
				}})},
				ErrorState: &adminv3.UpdateFailureState{Details: "error adding listener '0.0.0.0:3306': multiple filter chains with the same matching rules are defined", VersionInfo: "v9"}, ClientStatus: adminv3.ClientResourceStatus_NACKED},
			{Name: "0.0.0.0_8443", WarmingState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "v9", Listener: mustAny(t, &listenerv3.Listener{
				Name: "0.0.0.0_8443", Address: sockAddr("0.0.0.0", 8443),
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(t, rds("8443"))}}}})}},
		}}
	routes := &adminv3.RoutesConfigDump{DynamicRouteConfigs: []*adminv3.RoutesConfigDump_DynamicRouteConfig{{VersionInfo: "v8", LastUpdated: updated, RouteConfig: mustAny(t, synthRoutes())}}}
	static := &clusterv3.Cluster{Name: "exact", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, LoadAssignment: cla("exact", corev3.HealthStatus_UNKNOWN)}
	clusters := &adminv3.ClustersConfigDump{
		StaticClusters: []*adminv3.ClustersConfigDump_StaticCluster{{Cluster: mustAny(t, static), LastUpdated: updated},
			// Istio's BlackHoleCluster: STATIC, no endpoints on purpose.
			{Cluster: mustAny(t, &clusterv3.Cluster{Name: "BlackHoleCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}), LastUpdated: updated}},
		DynamicActiveClusters: []*adminv3.ClustersConfigDump_DynamicCluster{
			{VersionInfo: "v8", LastUpdated: updated, Cluster: mustAny(t, edsCluster("api"))},
			{VersionInfo: "v8", LastUpdated: updated, Cluster: mustAny(t, edsCluster("api-canary"))},
			{VersionInfo: "v8", LastUpdated: updated, Cluster: mustAny(t, edsCluster("api-v2"))},
			{VersionInfo: "v8", LastUpdated: updated, Cluster: mustAny(t, edsCluster("dead"))},
			{VersionInfo: "v8", LastUpdated: updated, Cluster: mustAny(t, edsCluster("mysql")), ErrorState: fail},
			{VersionInfo: "v8", LastUpdated: updated, Cluster: mustAny(t, edsCluster("idle"))},
		},
		DynamicWarmingClusters: []*adminv3.ClustersConfigDump_DynamicCluster{{VersionInfo: "v9", Cluster: mustAny(t, edsCluster("new"))}},
	}
	eds := &adminv3.EndpointsConfigDump{StaticEndpointConfigs: []*adminv3.EndpointsConfigDump_StaticEndpointConfig{{EndpointConfig: mustAny(t, cla("BlackHoleCluster"))}}, DynamicEndpointConfigs: []*adminv3.EndpointsConfigDump_DynamicEndpointConfig{
		{VersionInfo: "v8", EndpointConfig: mustAny(t, cla("api", corev3.HealthStatus_HEALTHY, corev3.HealthStatus_HEALTHY))},
		{VersionInfo: "v8", EndpointConfig: mustAny(t, cla("api-canary", corev3.HealthStatus_HEALTHY))},
		{VersionInfo: "v8", EndpointConfig: mustAny(t, cla("dead", corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_DRAINING))},
		{VersionInfo: "v8", EndpointConfig: mustAny(t, cla("mysql", corev3.HealthStatus_HEALTHY))},
		{VersionInfo: "v8", EndpointConfig: mustAny(t, cla("idle", corev3.HealthStatus_UNHEALTHY))},
	}}
	ds := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	secrets := &adminv3.SecretsConfigDump{
		DynamicActiveSecrets: []*adminv3.SecretsConfigDump_DynamicSecret{
			{Name: "default", VersionInfo: "v1", LastUpdated: updated, Secret: mustAny(t, &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: ds(certPEM(t, "workload", false, synthNow.Add(3*24*time.Hour))), PrivateKey: ds([]byte("[redacted]"))}}})},
			{Name: "ROOTCA", VersionInfo: "v1", LastUpdated: updated, Secret: mustAny(t, &tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: ds(append(certPEM(t, "old-root", true, synthNow.Add(-24*time.Hour)), certPEM(t, "new-root", true, synthNow.Add(365*24*time.Hour))...))}}})},
		},
		DynamicWarmingSecrets: []*adminv3.SecretsConfigDump_DynamicSecret{{Name: "file-cert:/etc/certs/missing.pem"}},
	}
	dump := &adminv3.ConfigDump{Configs: []*anypb.Any{mustAny(t, clusters), mustAny(t, eds), mustAny(t, listeners), mustAny(t, routes), mustAny(t, secrets)}}
	live := &adminv3.Clusters{ClusterStatuses: []*adminv3.ClusterStatus{{Name: "api", HostStatuses: []*adminv3.HostStatus{
		{Address: sockAddr("10.0.0.1", 8080), HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY}},
		{Address: sockAddr("10.0.0.2", 8080), HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY, FailedOutlierCheck: true}},
	}}}}
	stats := []envoyadmin.Stat{
		{Name: "cluster.api.upstream_cx_overflow", Value: 5},
		{Name: "cluster.api.upstream_rq_pending_overflow", Value: 0},
		{Name: "cluster.api.circuit_breakers.default.rq_pending_open", Value: 1},
		{Name: "cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_retry_overflow", Value: 2},
		{Name: "cluster.exact.upstream_rq_rx_reset", Value: 7},
		{Name: "cluster.exact.upstream_cx_total", Value: 100},
	}
	return Input{Dump: dump, Clusters: live, Stats: stats, Now: synthNow}
}
