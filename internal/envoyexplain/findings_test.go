package envoyexplain

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-sh/triage/internal/envoyadmin"
)

func findingKeys(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s", f.Severity, f.Code, f.Resource))
	}
	return out
}

func TestSyntheticFindings(t *testing.T) {
	e := Explain(synthDump(t))
	want := []string{
		"critical envoy-cert-expired CA certificate CN=old-root",
		"critical envoy-circuit-breaker-overflow cluster api",
		"critical envoy-cluster-no-endpoints cluster api-v2",
		"critical envoy-cluster-no-healthy-host cluster dead",
		"critical envoy-resource-rejected listener 0.0.0.0_3306",
		"critical envoy-resource-rejected cluster mysql",
		"critical envoy-route-unknown-cluster cluster no-such-cluster",
		"warning envoy-cert-expiring certificate spiffe://example.org/workload",
		"warning envoy-circuit-breaker-overflow cluster outbound|9080||reviews.default.svc.cluster.local",
		"warning envoy-cluster-no-healthy-host cluster idle",
		"warning envoy-outlier-ejected cluster api",
		"warning envoy-resource-warming listener 0.0.0.0_8443",
		"warning envoy-resource-warming cluster new",
		"warning envoy-resource-warming secret file-cert:/etc/certs/missing.pem",
		"warning envoy-route-config-missing route config 8443",
		"info envoy-upstream-resets cluster exact",
	}
	got := findingKeys(e.Findings)
	// The CA finding names the certificate by its first SAN.
	for i, g := range got {
		got[i] = strings.Replace(g, "CA certificate spiffe://example.org/old-root", "CA certificate CN=old-root", 1)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, f := range e.Findings {
		if f.Title == "" || f.Fix == "" {
			t.Errorf("%s %s: no title or fix", f.Code, f.Resource)
		}
	}
	want2 := Counts{Listeners: 4, RouteConfigs: 1, VirtualHosts: 5, Routes: 14, Clusters: 9, Endpoints: 8, HealthyEndpoints: 5, Secrets: 3}
	if e.Counts != want2 {
		t.Errorf("counts %+v, want %+v", e.Counts, want2)
	}
	// The rejected listener keeps serving its active version, the
	// rejected cluster too; both say so.
	for _, f := range e.Findings {
		if f.Code == CodeRejected && !strings.Contains(strings.Join(f.Evidence, " "), "serving_version=v8") {
			t.Errorf("%s: evidence %v lacks the serving version", f.Resource, f.Evidence)
		}
	}
	// Live health replaces the dump's for api.
	for _, c := range e.Clusters {
		if c.Name == "api" && (c.EndpointsFrom != "live" || c.Healthy != 1 || c.OutlierEjected != 1) {
			t.Errorf("api: %+v", c)
		}
		if c.Name == "dead" && (c.EndpointsFrom != "eds" || c.Total != 2 || c.Healthy != 0 || c.ReferencedBy != 1) {
			t.Errorf("dead: %+v", c)
		}
		if c.Name == "exact" && (c.EndpointsFrom != "config" || c.ReferencedBy != 6) {
			t.Errorf("exact: %+v", c)
		}
	}
}

func TestFindingsCapped(t *testing.T) {
	in := synthDump(t)
	for i := 0; i < 30; i++ {
		in.Stats = append(in.Stats, envoyadmin.Stat{Name: fmt.Sprintf("cluster.c%02d.upstream_rq_tx_reset", i), Value: 1})
	}
	e := Explain(in)
	n, summary := 0, false
	for _, f := range e.Findings {
		if f.Code == CodeUpstreamResets {
			n++
			if strings.Contains(f.Title, "more like the above") {
				summary = true
				if len(f.Evidence) != 11 {
					t.Errorf("summary evidence: %v", f.Evidence)
				}
			}
		}
	}
	if n != maxPerCode+1 || !summary {
		t.Errorf("%d reset findings (summary %v), want %d", n, summary, maxPerCode+1)
	}
}

func TestCertificates(t *testing.T) {
	d := decode(t, "istio-secrets_config_dump.json")
	certs := func(now time.Time) []Finding {
		var out []Finding
		for _, f := range Explain(Input{Dump: d.Dump, Now: now}).Findings {
			if strings.HasPrefix(f.Code, "envoy-cert-") {
				out = append(out, f)
			}
		}
		return out
	}
	e := Explain(Input{Dump: d.Dump, Now: fixtureNow})
	if len(e.Certificates) == 0 {
		t.Fatal("no certificates from the SDS secrets")
	}
	var leaf Certificate
	for _, c := range e.Certificates {
		if !c.CA {
			leaf = c
		}
	}
	na, err := time.Parse(time.RFC3339, leaf.NotAfter)
	if err != nil || leaf.Source != "secret:default" || len(leaf.SANs) == 0 {
		t.Fatalf("leaf: %+v", leaf)
	}
	nb, _ := time.Parse(time.RFC3339, leaf.NotBefore)
	if f := certs(nb.Add(time.Hour)); len(f) != 0 && na.Sub(nb) > 8*24*time.Hour {
		t.Errorf("valid cert: %v", findingKeys(f))
	}
	f := certs(na.Add(-3 * 24 * time.Hour))
	if len(f) == 0 || f[0].Code != CodeCertExpiring || f[0].Severity != Warning || !strings.Contains(f[0].Title, "expires in 3 days") {
		t.Errorf("3 days before expiry: %v", f)
	}
	f = certs(na.Add(time.Hour))
	if len(f) == 0 || f[0].Code != CodeCertExpired || f[0].Severity != Critical {
		t.Errorf("after expiry: %v", f)
	}

	// /certs: App Mesh's SPIRE leaf valid one hour.
	var c adminv3.Certificates
	if err := protojson.Unmarshal(fixture(t, "appmesh-envoy-spire-sds_certs.json"), &c); err != nil {
		t.Fatal(err)
	}
	e = Explain(Input{Dump: &adminv3.ConfigDump{}, Certs: &c, Now: time.Date(2020, 11, 22, 6, 0, 0, 0, time.UTC)})
	keys := findingKeys(e.Findings)
	sort.Strings(keys)
	want := []string{"warning envoy-cert-expiring CA certificate spiffe://howto-k8s-mtls-sds-based.aws", "warning envoy-cert-expiring certificate spiffe://howto-k8s-mtls-sds-based.aws/colorgreen"}
	if strings.Join(keys, "|") != strings.Join(want, "|") {
		t.Errorf("certs findings: %v", keys)
	}
	if len(e.Certificates) != 2 || e.Certificates[1].SerialNumber != "52f3b82ebb99af2d826bc1c3ac3835ba" {
		t.Errorf("certs: %+v", e.Certificates)
	}
}

func TestFixtureFindings(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"istio-1.10-sidecar-details-v1_config_dump_camelCase.json", []string{
			"info envoy-endpoints-not-in-dump ", "info envoy-unknown-types "}},
		// A trimmed dump: the 8000 cluster without EDS, 8100 and encap
		// without clusters.
		{"istio-1.21-waypoint_config_dump_with_eds.json", []string{
			"critical envoy-cluster-no-endpoints cluster inbound-vip|8000|http|httpbin.default.svc.cluster.local",
			"critical envoy-route-unknown-cluster cluster inbound-vip|8100|http|httpbin.default.svc.cluster.local",
			"critical envoy-route-unknown-cluster cluster encap"}},
		{"istio-1.5-sidecar-details-v1_config_dump.json", []string{
			"critical envoy-route-unknown-cluster cluster PassthroughCluster",
			"critical envoy-route-unknown-cluster cluster outbound|8080||foo.default.svc.cluster.local",
			"critical envoy-route-unknown-cluster cluster outbound|8080||istio-pilot.istio-system.svc.cluster.local",
			"critical envoy-route-unknown-cluster cluster outbound|443||kubernetes-dashboard.kube-system.svc.cluster.local",
			"critical envoy-route-unknown-cluster cluster inbound|9080|http|details.default.svc.cluster.local",
			"info envoy-legacy-v2-resources ", "info envoy-unknown-types "}},
		{"istio-secrets_config_dump.json", []string{"warning envoy-resource-warming secret configmap://some/thing"}},
		{"istio-gateway-routes_config_dump.json", nil},
		{"istio-sidecar_eds_only_config_dump.json", nil},
	}
	for _, tt := range tests {
		d := decode(t, tt.file)
		e := Explain(Input{Dump: d.Dump, Unknown: d.Unknown, Legacy: d.Legacy, Now: fixtureNow})
		got := findingKeys(e.Findings)
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s findings\n got:\n  %s\nwant:\n  %s", tt.file, strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
		}
	}
}

// TestResourceShapedDump: /config_dump?resource=... lists the resources
// themselves (DynamicListener, DynamicCluster, ...) as configs.
func TestResourceShapedDump(t *testing.T) {
	full := synthDump(t)
	var configs []*anypb.Any
	for _, a := range full.Dump.GetConfigs() {
		switch m, _ := a.UnmarshalNew(); d := m.(type) {
		case *adminv3.ListenersConfigDump:
			for _, l := range d.GetDynamicListeners() {
				configs = append(configs, mustAny(t, l))
			}
		case *adminv3.ClustersConfigDump:
			for _, c := range d.GetStaticClusters() {
				configs = append(configs, mustAny(t, c))
			}
			for _, c := range d.GetDynamicActiveClusters() {
				configs = append(configs, mustAny(t, c))
			}
		case *adminv3.RoutesConfigDump:
			for _, r := range d.GetDynamicRouteConfigs() {
				configs = append(configs, mustAny(t, r))
			}
		case *adminv3.EndpointsConfigDump:
			for _, e := range d.GetDynamicEndpointConfigs() {
				configs = append(configs, mustAny(t, e))
			}
		case *adminv3.SecretsConfigDump:
			for _, s := range d.GetDynamicActiveSecrets() {
				configs = append(configs, mustAny(t, s))
			}
		}
	}
	e := Explain(Input{Dump: &adminv3.ConfigDump{Configs: configs}, Now: synthNow})
	want := Counts{Listeners: 3, RouteConfigs: 1, VirtualHosts: 5, Routes: 14, Clusters: 8, Endpoints: 8, HealthyEndpoints: 5, Secrets: 2}
	if e.Counts != want {
		t.Errorf("counts %+v, want %+v", e.Counts, want)
	}
}
