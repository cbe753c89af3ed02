package envoyexplain

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/triage-sh/triage/internal/envoyadmin"

	"github.com/triage-sh/triage/sidecar/envoy/envoytest"
)

// fixtureDir holds admin output recorded from real Envoys; tests read it in
// place (see its PROVENANCE.md) and skip when it is absent.
var fixtureDir = envoytest.FixtureDir

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Skipf("fixture %s not found (Envoy admin fixtures live in %s): %v", name, fixtureDir, err)
	}
	return b
}

func decode(t testing.TB, name string) *envoyadmin.ConfigDump {
	t.Helper()
	d, err := envoyadmin.Decode(fixture(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// fixtureNow is a time at which the fixtures' certificates were valid.
var fixtureNow = time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)

// TestCounts: the counts of every v3 config dump fixture. The numbers were
// computed by an independent walk of the JSON (a Python script, and
// oracleCounts below), not by this package's code.
func TestCounts(t *testing.T) {
	tests := []struct {
		file string
		want Counts
	}{
		// 2 static (unnamed: prometheus, health) + 16 dynamic listeners; the
		// 8 static route configs are the listeners' inline ones.
		{"istio-1.10-sidecar-details-v1_config_dump_camelCase.json", Counts{Listeners: 18, RouteConfigs: 14, VirtualHosts: 22, Routes: 22, Clusters: 28, Endpoints: 5, HealthyEndpoints: 5, Secrets: 2}},
		// A trimmed waypoint dump: 3 of its 4 inline route configs are
		// missing from the routes section, and EDS has 8100 but not 8000.
		{"istio-1.21-waypoint_config_dump_with_eds.json", Counts{Listeners: 2, RouteConfigs: 4, VirtualHosts: 4, Routes: 4, Clusters: 3, Endpoints: 3, HealthyEndpoints: 3, Secrets: 2}},
		// v2 resources in a v3 dump: 2 RDS + 1 inline route config.
		{"istio-1.5-sidecar-details-v1_config_dump.json", Counts{Listeners: 1, RouteConfigs: 3, VirtualHosts: 5, Routes: 5, Clusters: 1}},
		{"istio-ecds-wasm_config_dump.json", Counts{}},
		{"istio-gateway-routes_config_dump.json", Counts{RouteConfigs: 3, VirtualHosts: 3, Routes: 3}},
		{"istio-k8s-gateway-api-routes_config_dump.json", Counts{RouteConfigs: 3, VirtualHosts: 3, Routes: 3}},
		{"istio-secrets_config_dump.json", Counts{Secrets: 3}},
		// 37 assignments, 4 of them empty (BlackHole, Passthrough, ...).
		{"istio-sidecar_eds_only_config_dump.json", Counts{Endpoints: 36, HealthyEndpoints: 36}},
		{"istio-spire-secrets_config_dump.json", Counts{Secrets: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := fixture(t, tt.file)
			d := decode(t, tt.file)
			e := Explain(Input{Dump: d.Dump, Unknown: d.Unknown, Legacy: d.Legacy, Now: fixtureNow})
			if e.Counts != tt.want {
				t.Errorf("counts\n got %+v\nwant %+v", e.Counts, tt.want)
			}
			if o := oracleCounts(t, raw); o != tt.want {
				t.Errorf("oracle counts %+v disagree with the table", o)
			}
			// The tree agrees with the counts.
			vh, rt := 0, 0
			for _, r := range e.RouteConfigs {
				vh += len(r.VirtualHosts)
				for _, v := range r.VirtualHosts {
					rt += len(v.Routes)
				}
			}
			if len(e.Listeners) != e.Counts.Listeners || len(e.RouteConfigs) != e.Counts.RouteConfigs || vh != e.Counts.VirtualHosts || rt != e.Counts.Routes || len(e.Clusters) != e.Counts.Clusters {
				t.Errorf("tree (%d listeners, %d route configs, %d vhosts, %d routes, %d clusters) disagrees with counts %+v", len(e.Listeners), len(e.RouteConfigs), vh, rt, len(e.Clusters), e.Counts)
			}
			// The JSON contract: counts with these keys.
			b, _ := json.Marshal(e)
			var doc struct {
				Counts   map[string]int    `json:"counts"`
				Findings []json.RawMessage `json:"findings"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"listeners", "route_configs", "virtual_hosts", "routes", "clusters", "endpoints", "healthy_endpoints"} {
				if _, ok := doc.Counts[k]; !ok {
					t.Errorf("counts JSON lacks %q: %v", k, doc.Counts)
				}
			}
			if !strings.Contains(string(b), `"findings":[`) {
				t.Errorf("findings is not an array in %s", b[:min(len(b), 200)])
			}
		})
	}
}

// oracleCounts counts a config dump by walking its JSON generically, with
// no protobuf and none of this package's code: the independent check.
func oracleCounts(t *testing.T, raw []byte) Counts {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	norm := func(k string) string { return strings.ToLower(strings.ReplaceAll(k, "_", "")) }
	get := func(o any, key string) any {
		m, _ := o.(map[string]any)
		for k, v := range m {
			if norm(k) == norm(key) {
				return v
			}
		}
		return nil
	}
	list := func(o any, key string) []any { l, _ := get(o, key).([]any); return l }
	str := func(o any, key string) string { s, _ := get(o, key).(string); return s }
	withoutType := func(o any) map[string]any {
		out := map[string]any{}
		for k, v := range o.(map[string]any) {
			if k != "@type" {
				out[k] = v
			}
		}
		return out
	}

	var c Counts
	var listeners, inline, static, routeConfigs []any
	var clusters []any
	clusterNames := map[string]bool{}
	cla := map[string]any{}
	var claOrder []string
	dynNames := map[string]bool{}
	for _, cfg := range list(doc, "configs") {
		typ := str(cfg, "@type")
		switch typ[strings.LastIndex(typ, ".")+1:] {
		case "ListenersConfigDump":
			for _, s := range list(cfg, "static_listeners") {
				c.Listeners++
				listeners = append(listeners, get(s, "listener"))
			}
			for _, dl := range list(cfg, "dynamic_listeners") {
				if !dynNames[str(dl, "name")] {
					c.Listeners++
				}
				dynNames[str(dl, "name")] = true
				for _, st := range []string{"active_state", "warming_state", "draining_state"} {
					if s := get(dl, st); s != nil {
						listeners = append(listeners, get(s, "listener"))
						break
					}
				}
			}
		case "RoutesConfigDump":
			for _, s := range list(cfg, "static_route_configs") {
				routeConfigs = append(routeConfigs, get(s, "route_config"))
				static = append(static, withoutType(get(s, "route_config")))
			}
			for _, s := range list(cfg, "dynamic_route_configs") {
				routeConfigs = append(routeConfigs, get(s, "route_config"))
			}
		case "ClustersConfigDump":
			for _, k := range []string{"static_clusters", "dynamic_active_clusters", "dynamic_warming_clusters"} {
				for _, s := range list(cfg, k) {
					cl := get(s, "cluster")
					if !clusterNames[str(cl, "name")] {
						clusterNames[str(cl, "name")] = true
						clusters = append(clusters, cl)
					}
				}
			}
		case "EndpointsConfigDump":
			for _, k := range []string{"static_endpoint_configs", "dynamic_endpoint_configs"} {
				for _, s := range list(cfg, k) {
					e := get(s, "endpoint_config")
					n := str(e, "cluster_name")
					if _, ok := cla[n]; !ok {
						claOrder = append(claOrder, n)
					}
					cla[n] = e
				}
			}
		case "SecretsConfigDump":
			for _, k := range []string{"static_secrets", "dynamic_active_secrets", "dynamic_warming_secrets"} {
				c.Secrets += len(list(cfg, k))
			}
		}
	}
	for _, l := range listeners {
		chains := list(l, "filter_chains")
		if d := get(l, "default_filter_chain"); d != nil {
			chains = append(chains, d)
		}
		for _, ch := range chains {
			for _, f := range list(ch, "filters") {
				tc := get(f, "typed_config")
				if strings.HasSuffix(str(tc, "@type"), "HttpConnectionManager") && get(tc, "route_config") != nil {
					inline = append(inline, get(tc, "route_config"))
				}
			}
		}
	}
	used := make([]bool, len(static))
	for _, r := range inline {
		found := false
		for i, s := range static {
			if !used[i] && reflect.DeepEqual(s, r) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			routeConfigs = append(routeConfigs, r)
		}
	}
	c.RouteConfigs = len(routeConfigs)
	for _, r := range routeConfigs {
		for _, vh := range list(r, "virtual_hosts") {
			c.VirtualHosts++
			c.Routes += len(list(vh, "routes"))
		}
	}
	c.Clusters = len(clusters)
	count := func(a any) {
		for _, le := range list(a, "endpoints") {
			for _, lb := range list(le, "lb_endpoints") {
				c.Endpoints++
				if h := str(lb, "health_status"); h == "" || h == "HEALTHY" || h == "UNKNOWN" {
					c.HealthyEndpoints++
				}
			}
		}
	}
	claUsed := map[string]bool{}
	for _, cl := range clusters {
		n, sn := str(cl, "name"), str(get(cl, "eds_cluster_config"), "service_name")
		switch {
		case cla[n] != nil:
			claUsed[n] = true
			count(cla[n])
		case sn != "" && cla[sn] != nil:
			claUsed[sn] = true
			count(cla[sn])
		default:
			count(get(cl, "load_assignment"))
		}
	}
	for _, n := range claOrder {
		if !claUsed[n] {
			count(cla[n])
		}
	}
	return c
}
