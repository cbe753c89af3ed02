package envoyexplain

import (
	"strings"
	"testing"
)

func TestMatchSynthetic(t *testing.T) {
	m := NewModel(synthDump(t))
	tests := []struct {
		name    string
		q       Query
		vhost   string // "" when no virtual host matches
		route   string // "" when no route matches
		cluster string // first target cluster
		healthy int    // its healthy endpoints
		exists  bool
		detail  string // substring of the route's action or the reason
	}{
		{"prefix", Query{Host: "api.example.com", Path: "/api/users"}, "api", "api", "api", 1, true, ""},
		{"header selects weighted", Query{Host: "api.example.com", Path: "/api", Headers: map[string]string{"X-Canary": "yes"}}, "api", "canary", "api", 1, true, ""},
		{"header mismatch", Query{Host: "api.example.com", Path: "/api", Headers: map[string]string{"x-canary": "no"}}, "api", "api", "api", 1, true, ""},
		{"host case and port", Query{Host: "API.Example.com:80", Path: "/api"}, "api", "api", "api", 1, true, ""},
		{"other port is another domain", Query{Host: "api.example.com:8080", Path: "/api"}, "default", "default", "", 0, false, "direct_response"},
		{"strip port", Query{Host: "api.example.com:8080", Path: "/api", StripPort: true, RouteConfig: "80"}, "api", "api", "api", 1, true, ""},
		{"longest suffix wildcard", Query{Host: "x.b.example.com", Path: "/"}, "longwild", "longwild", "exact", 1, true, ""},
		{"wildcard needs a character", Query{Host: "b.example.com", Path: "/"}, "wild", "wild", "exact", 1, true, ""},
		{"prefix wildcard", Query{Host: "internal.corp", Path: "/"}, "prefixwild", "prefixwild", "exact", 1, true, ""},
		{"default vhost", Query{Host: "unknown.org", Path: "/x"}, "default", "default", "", 0, false, "direct_response"},
		{"exact path", Query{Host: "api.example.com", Path: "/exact?q=1"}, "api", "exact", "exact", 1, true, ""},
		{"exact path is exact", Query{Host: "api.example.com", Path: "/exact/x"}, "api", "", "", 0, false, "404 (NR)"},
		{"regex", Query{Host: "api.example.com", Path: "/items/42?x=1"}, "api", "items", "dead", 0, true, ""},
		{"regex is a full match", Query{Host: "api.example.com", Path: "/items/42/x"}, "api", "", "", 0, false, "no route"},
		{"path separated prefix", Query{Host: "api.example.com", Path: "/docs/a"}, "api", "docs", "exact", 1, true, ""},
		{"path separated prefix exact", Query{Host: "api.example.com", Path: "/docs"}, "api", "docs", "exact", 1, true, ""},
		{"path separated prefix boundary", Query{Host: "api.example.com", Path: "/docsx"}, "api", "", "", 0, false, "no route"},
		{"query parameter", Query{Host: "api.example.com", Path: "/anything?debug"}, "api", "debug", "", 0, false, "direct_response"},
		{"case insensitive", Query{Host: "api.example.com", Path: "/case/x"}, "api", "upper", "exact", 1, true, ""},
		{"redirect", Query{Host: "api.example.com", Path: "/old/page"}, "api", "old", "", 0, false, "https://{host}/new 301"},
		{"missing cluster", Query{Host: "api.example.com", Path: "/gone"}, "api", "gone", "no-such-cluster", 0, false, ""},
		{"inverted header", Query{Host: "api.example.com", Path: "/api/v2/x", Headers: map[string]string{"user-agent": "curl/8"}}, "api", "not-bot", "api-v2", 0, true, ""},
		{"inverted header matches", Query{Host: "api.example.com", Path: "/api/v2/x", Headers: map[string]string{"user-agent": "googlebot"}}, "api", "api", "api", 1, true, ""},
		{"inverted header missing", Query{Host: "api.example.com", Path: "/api/v2/x"}, "api", "api", "api", 1, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := m.Match(tt.q)
			if len(res.Candidates) != 1 {
				t.Fatalf("%d candidates, want the one route config", len(res.Candidates))
			}
			c := res.Candidates[0]
			if c.VirtualHost != tt.vhost {
				t.Errorf("virtual host %q, want %q (%+v)", c.VirtualHost, tt.vhost, c)
			}
			routeName := ""
			if c.Route != nil {
				routeName = c.Route.Name
			}
			if routeName != tt.route || c.Matched != (tt.route != "") {
				t.Errorf("route %q (matched %v), want %q; reason %q notes %v", routeName, c.Matched, tt.route, c.Reason, c.Notes)
			}
			if tt.cluster != "" {
				if len(c.Clusters) == 0 || c.Clusters[0].Name != tt.cluster || len(c.Clusters[0].HealthyEndpoints) != tt.healthy || c.Clusters[0].Exists != tt.exists {
					t.Errorf("clusters %+v, want %s with %d healthy (exists %v)", c.Clusters, tt.cluster, tt.healthy, tt.exists)
				}
			}
			if tt.detail != "" {
				s := c.Reason
				if c.Route != nil {
					s += " " + c.Route.Action + " " + c.Route.Redirect
				}
				if !strings.Contains(s, tt.detail) {
					t.Errorf("%q lacks %q", s, tt.detail)
				}
			}
		})
	}
	// Weighted clusters report both targets with their weights.
	c := m.Match(Query{Host: "api.example.com", Path: "/api", Headers: map[string]string{"x-canary": "yes"}}).Best()
	if c == nil || len(c.Clusters) != 2 || c.Clusters[1].Name != "api-canary" || c.Clusters[1].Weight != 10 || c.Clusters[0].Weight != 90 {
		t.Errorf("weighted: %+v", c)
	}
	// A host no virtual host takes (no "*" default) says what Envoy does.
	rc := synthRoutes()
	rc.VirtualHosts = rc.VirtualHosts[:1]
	in := synthDump(t)
	mm := NewModel(in)
	mm.routes[0].rc = rc
	r := mm.Match(Query{Host: "api.example.com:8080", Path: "/api", RouteConfig: "80"}).Candidates[0]
	if r.VirtualHost != "" || !strings.Contains(r.Reason, "404 (NR)") || len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "without the port") {
		t.Errorf("no vhost: %+v", r)
	}
}

func TestMatchFixtures(t *testing.T) {
	tests := []struct {
		file        string
		q           Query
		routeConfig string
		vhost       string
		cluster     string // "" when nothing matches
	}{
		{"istio-gateway-routes_config_dump.json", Query{Host: "httpbin.example.com", Path: "/get", RouteConfig: "http.8080"}, "http.8080", "httpbin.example.com:80", "outbound|8000||httpbin.default.svc.cluster.local"},
		{"istio-gateway-routes_config_dump.json", Query{Host: "httpbin.example.com", Path: "/getx", RouteConfig: "http.8080"}, "http.8080", "httpbin.example.com:80", "outbound|8000||httpbin.default.svc.cluster.local"},
		{"istio-gateway-routes_config_dump.json", Query{Host: "other.example.com", Path: "/get", RouteConfig: "http.8080"}, "http.8080", "", ""},
		{"istio-k8s-gateway-api-routes_config_dump.json", Query{Host: "httpbin.example.com", Path: "/get/anything", RouteConfig: "http.80"}, "http.80", "httpbin.example.com:80", "outbound|8000||httpbin.default.svc.cluster.local"},
		{"istio-k8s-gateway-api-routes_config_dump.json", Query{Host: "httpbin.example.com", Path: "/getx", RouteConfig: "http.80"}, "http.80", "httpbin.example.com:80", ""},
		{"istio-1.10-sidecar-details-v1_config_dump_camelCase.json", Query{Host: "reviews:9080", Path: "/reviews/0"}, "9080", "reviews.default.svc.cluster.local:9080", "outbound|9080||reviews.default.svc.cluster.local"},
		{"istio-1.10-sidecar-details-v1_config_dump_camelCase.json", Query{Host: "ratings.default.svc.cluster.local", Path: "/", Port: 9080}, "9080", "ratings.default.svc.cluster.local:9080", "outbound|9080||ratings.default.svc.cluster.local"},
		{"istio-1.10-sidecar-details-v1_config_dump_camelCase.json", Query{Host: "example.org:9080", Path: "/"}, "9080", "allow_any", "PassthroughCluster"},
		{"istio-1.5-sidecar-details-v1_config_dump.json", Query{Host: "foo:8080", Path: "/"}, "8080", "foo.default.svc.cluster.local:8080", "outbound|8080||foo.default.svc.cluster.local"},
		{"istio-1.21-waypoint_config_dump_with_eds.json", Query{Host: "httpbin.default.svc.cluster.local", Path: "/", RouteConfig: "inbound-vip|8000|http|httpbin.default.svc.cluster.local"}, "inbound-vip|8000|http|httpbin.default.svc.cluster.local", "inbound|http|8000", "inbound-vip|8000|http|httpbin.default.svc.cluster.local"},
	}
	for _, tt := range tests {
		d := decode(t, tt.file)
		res := Match(FromConfigDump(d), tt.q)
		var c *RouteMatch
		for i := range res.Candidates {
			if res.Candidates[i].RouteConfig == tt.routeConfig {
				c = &res.Candidates[i]
				break
			}
		}
		if c == nil {
			t.Errorf("%s %+v: route config %s not among candidates %+v", tt.file, tt.q, tt.routeConfig, res.Candidates)
			continue
		}
		if c.VirtualHost != tt.vhost {
			t.Errorf("%s %+v: virtual host %q, want %q", tt.file, tt.q, c.VirtualHost, tt.vhost)
		}
		got := ""
		if len(c.Clusters) > 0 {
			got = c.Clusters[0].Name
		}
		if got != tt.cluster || c.Matched != (tt.cluster != "") {
			t.Errorf("%s %+v: cluster %q (matched %v, reason %q), want %q", tt.file, tt.q, got, c.Matched, c.Reason, tt.cluster)
		}
	}
	// Port 9080 selects the 9080 route configuration only.
	d := decode(t, "istio-1.10-sidecar-details-v1_config_dump_camelCase.json")
	res := Match(FromConfigDump(d), Query{Host: "reviews:9080", Path: "/"})
	for _, c := range res.Candidates {
		if c.RouteConfig != "9080" {
			t.Errorf("port 9080 searched route config %s", c.RouteConfig)
		}
	}
}
