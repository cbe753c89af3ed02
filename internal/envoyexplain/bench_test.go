package envoyexplain

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/triage-sh/triage/internal/envoyadmin"
)

// Benchmarks: decode and explain of the largest fixture and of a synthetic
// dump with 5,000 clusters and 20,000 endpoints, next to the floor, a plain
// protojson.Unmarshal of the same bytes.
//
//	go test -run '^$' -bench . -benchtime 5x ./internal/envoyexplain/

const (
	synthClusters  = 5000
	synthEndpoints = 4 // per cluster: 20,000
	synthPorts     = 50
)

// largeDump builds an Istio-like sidecar dump: 5,000 EDS clusters with TLS,
// circuit breakers and outlier detection; 20,000 endpoints; 50 outbound
// listeners each with an RDS route configuration of 100 virtual hosts.
var largeDump = sync.OnceValues(func() ([]byte, error) {
	now := timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	var clusters []*adminv3.ClustersConfigDump_DynamicCluster
	var eds []*adminv3.EndpointsConfigDump_DynamicEndpointConfig
	vhosts := make([][]*routev3.VirtualHost, synthPorts)
	for i := 0; i < synthClusters; i++ {
		port := 8000 + i%synthPorts
		host := fmt.Sprintf("svc-%04d.ns-%02d.svc.cluster.local", i, i%40)
		name := fmt.Sprintf("outbound|%d||%s", port, host)
		tls, err := anypb.New(&tlsv3.UpstreamTlsContext{Sni: "outbound_." + name, CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols: []string{"istio-peer-exchange", "istio"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_GRPC,
					GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "sds-grpc"}}}}}}}}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: nil},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"}}},
		}})
		if err != nil {
			return nil, err
		}
		md, _ := structpb.NewStruct(map[string]any{"services": []any{map[string]any{"host": host, "name": fmt.Sprintf("svc-%04d", i), "namespace": fmt.Sprintf("ns-%02d", i%40)}}})
		c := &clusterv3.Cluster{
			Name: name, AltStatName: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: name, EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, InitialFetchTimeout: durationpb.New(0), ResourceApiVersion: corev3.ApiVersion_V3}},
			ConnectTimeout:   durationpb.New(10 * time.Second),
			LbPolicy:         clusterv3.Cluster_LEAST_REQUEST,
			CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
				MaxConnections: wrapperspb.UInt32(4294967295), MaxPendingRequests: wrapperspb.UInt32(4294967295), MaxRequests: wrapperspb.UInt32(4294967295), MaxRetries: wrapperspb.UInt32(4294967295),
				TrackRemaining: true}}},
			OutlierDetection: &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(5), Interval: durationpb.New(10 * time.Second), BaseEjectionTime: durationpb.New(30 * time.Second), MaxEjectionPercent: wrapperspb.UInt32(100)},
			CommonLbConfig:   &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}},
			Metadata:         &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": md}},
			TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{{Name: "tlsMode-istio",
				Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
				TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tls}}}},
		}
		ca, err := anypb.New(c)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: "2026-03-01T00:00:00Z/42", Cluster: ca, LastUpdated: now})
		le := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "eu-west1", Zone: fmt.Sprintf("eu-west1-%c", 'a'+i%3)}, LoadBalancingWeight: wrapperspb.UInt32(synthEndpoints)}
		for j := 0; j < synthEndpoints; j++ {
			h := corev3.HealthStatus_HEALTHY
			if (i*synthEndpoints+j)%10 == 0 {
				h = corev3.HealthStatus_UNHEALTHY
			}
			le.LbEndpoints = append(le.LbEndpoints, &endpointv3.LbEndpoint{
				HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), 8080)}},
				HealthStatus:        h,
				LoadBalancingWeight: wrapperspb.UInt32(1),
				Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: map[string]*structpb.Value{
					"workload": structpb.NewStringValue(fmt.Sprintf("svc-%04d-v1;ns-%02d;svc-%04d;v1;cluster.local", i, i%40, i))}}}},
			})
		}
		ea, err := anypb.New(&endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{le}})
		if err != nil {
			return nil, err
		}
		eds = append(eds, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: "2026-03-01T00:00:00Z/42", EndpointConfig: ea, LastUpdated: now})
		vhosts[i%synthPorts] = append(vhosts[i%synthPorts], &routev3.VirtualHost{Name: fmt.Sprintf("%s:%d", host, port),
			Domains: []string{host, fmt.Sprintf("%s:%d", host, port), fmt.Sprintf("svc-%04d.ns-%02d", i, i%40), fmt.Sprintf("svc-%04d.ns-%02d:%d", i, i%40, port)},
			Routes: []*routev3.Route{{Name: "default", Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}, Timeout: durationpb.New(0),
				RetryPolicy: &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", NumRetries: wrapperspb.UInt32(2)}}}}}})
	}
	var listeners []*adminv3.ListenersConfigDump_DynamicListener
	var routes []*adminv3.RoutesConfigDump_DynamicRouteConfig
	for p := 0; p < synthPorts; p++ {
		port := uint32(8000 + p)
		name := fmt.Sprintf("0.0.0.0_%d", port)
		hcm, err := anypb.New(rds(fmt.Sprint(port)))
		if err != nil {
			return nil, err
		}
		la, err := anypb.New(&listenerv3.Listener{Name: name, Address: sockAddr("0.0.0.0", port), FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}}})
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, &adminv3.ListenersConfigDump_DynamicListener{Name: name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "v42", Listener: la, LastUpdated: now}})
		vhosts[p] = append(vhosts[p], &routev3.VirtualHost{Name: "allow_any", Domains: []string{"*"}, Routes: []*routev3.Route{{Name: "allow_any", Match: prefix("/"), Action: routeTo("PassthroughCluster")}}})
		ra, err := anypb.New(&routev3.RouteConfiguration{Name: fmt.Sprint(port), VirtualHosts: vhosts[p], ValidateClusters: wrapperspb.Bool(false)})
		if err != nil {
			return nil, err
		}
		routes = append(routes, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: "v42", RouteConfig: ra, LastUpdated: now})
	}
	dump := &adminv3.ConfigDump{}
	for _, m := range []proto.Message{
		&adminv3.ClustersConfigDump{VersionInfo: "v42", DynamicActiveClusters: clusters},
		&adminv3.EndpointsConfigDump{DynamicEndpointConfigs: eds},
		&adminv3.ListenersConfigDump{VersionInfo: "v42", DynamicListeners: listeners},
		&adminv3.RoutesConfigDump{DynamicRouteConfigs: routes},
	} {
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		dump.Configs = append(dump.Configs, a)
	}
	// As Envoy prints it: proto field names, indented.
	return protojson.MarshalOptions{UseProtoNames: true, Indent: " "}.Marshal(dump)
})

func TestLargeDump(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 5,000-cluster dump")
	}
	raw, err := largeDump()
	if err != nil {
		t.Fatal(err)
	}
	d, err := envoyadmin.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	e := Explain(FromConfigDump(d))
	want := Counts{Listeners: synthPorts, RouteConfigs: synthPorts, VirtualHosts: synthClusters + synthPorts, Routes: synthClusters + synthPorts,
		Clusters: synthClusters, Endpoints: synthClusters * synthEndpoints, HealthyEndpoints: synthClusters * synthEndpoints * 9 / 10}
	if e.Counts != want {
		t.Errorf("counts %+v, want %+v", e.Counts, want)
	}
	t.Logf("synthetic dump: %.1f MB, %d findings", float64(len(raw))/1e6, len(e.Findings))
	r := NewModel(FromConfigDump(d)).Match(Query{Host: "svc-0042.ns-02:8042", Path: "/"})
	if b := r.Best(); b == nil || b.Clusters[0].Name != "outbound|8042||svc-0042.ns-02.svc.cluster.local" || len(b.Clusters[0].HealthyEndpoints) != 3 {
		t.Errorf("match: %+v", b)
	}
}

// peakHeap runs f b.N times and reports the peak live heap above the
// starting point, sampled every 200µs, with the allocations per op.
func peakHeap(b *testing.B, f func()) {
	b.Helper()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				metrics.Read(s)
				if v := s[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f()
	}
	b.StopTimer()
	close(stop)
	<-done
	if p := peak.Load(); p > base {
		b.ReportMetric(float64(p-base)/(1<<20), "peak-MiB")
	}
}

func benchInputs(b *testing.B) map[string][]byte {
	out := map[string][]byte{}
	if raw, err := largeDump(); err == nil {
		out["synthetic-5000-clusters"] = raw
	} else {
		b.Fatal(err)
	}
	out["fixture-istio-1.10-sidecar"] = fixture(b, "istio-1.10-sidecar-details-v1_config_dump_camelCase.json")
	return out
}

// BenchmarkFloor is a plain protojson.Unmarshal of the same bytes into the
// typed dump: what any typed reading costs. The fixture needs
// DiscardUnknown and a resolver for its Istio types, or protojson refuses it.
func BenchmarkFloor(b *testing.B) {
	for name, raw := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			opts := protojson.UnmarshalOptions{}
			if name != "synthetic-5000-clusters" {
				opts = protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: envoyadmin.Resolver()}
			}
			b.SetBytes(int64(len(raw)))
			peakHeap(b, func() {
				d := &adminv3.ConfigDump{}
				if err := opts.Unmarshal(raw, d); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkDecode is envoyadmin.Decode: scrub, unknown types, typed dump.
func BenchmarkDecode(b *testing.B) {
	for name, raw := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			peakHeap(b, func() {
				if _, err := envoyadmin.Decode(raw); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkExplain explains an already decoded dump.
func BenchmarkExplain(b *testing.B) {
	for name, raw := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			d, err := envoyadmin.Decode(raw)
			if err != nil {
				b.Fatal(err)
			}
			in := FromConfigDump(d)
			peakHeap(b, func() { Explain(in) })
		})
	}
}

// BenchmarkDecodeExplain is the whole path: bytes to explanation.
func BenchmarkDecodeExplain(b *testing.B) {
	for name, raw := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			peakHeap(b, func() {
				d, err := envoyadmin.Decode(raw)
				if err != nil {
					b.Fatal(err)
				}
				Explain(FromConfigDump(d))
			})
		})
	}
}
