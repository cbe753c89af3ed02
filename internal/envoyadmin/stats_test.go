package envoyadmin

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseStatsTextFixtures(t *testing.T) {
	tests := []struct {
		file       string
		stats      int
		histograms int
		check      string // a stat that must be there
		value      uint64
	}{
		{"datadog-envoy-legacy_stats_text_multiple_services.txt", 278, 0, "cluster.service1.membership_total", 1},
		{"metricbeat-envoy_stats_text.txt", 0, 0, "server.days_until_first_cert_expiring", 2147483647},
		{"envoy-docs-quickstart_stats_text_filtered_with_histograms.txt", 0, 2, "http.ingress_http.downstream_cx_tx_bytes_total", 1117},
	}
	for _, tt := range tests {
		b := fixture(t, tt.file)
		st, err := ParseStatsText(b)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		lines := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) != "" {
				lines++
			}
		}
		if len(st) != lines {
			t.Errorf("%s: %d stats from %d lines", tt.file, len(st), lines)
		}
		if tt.stats != 0 && len(st) != tt.stats {
			t.Errorf("%s: %d stats, want %d", tt.file, len(st), tt.stats)
		}
		h := 0
		found := false
		for _, s := range st {
			if s.Histogram {
				h++
			}
			if s.Name == tt.check {
				found = true
				if s.Value != tt.value {
					t.Errorf("%s: %s = %d, want %d", tt.file, s.Name, s.Value, tt.value)
				}
			}
		}
		if h != tt.histograms || !found {
			t.Errorf("%s: %d histograms (want %d), %s found: %v", tt.file, h, tt.histograms, tt.check, found)
		}
	}
}

func TestParseStatsTextForms(t *testing.T) {
	in := `cluster.outbound|9080||details.default.svc.cluster.local.upstream_cx_overflow: 12
listener.0.0.0.0_15006.downstream_cx_total: 5
control_plane.identifier: "istiod-6b8c: 1"
http.inbound.downstream_rq_time: P0(nan,2.0) P25(1.5,2.075) P99.9(nan,17.997) P100(nan,18.0)
cluster.x.upstream_rq_time: No recorded values
`
	st, err := ParseStatsText([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 5 {
		t.Fatalf("%d stats: %+v", len(st), st)
	}
	if st[0].Name != "cluster.outbound|9080||details.default.svc.cluster.local.upstream_cx_overflow" || st[0].Value != 12 {
		t.Errorf("counter: %+v", st[0])
	}
	if st[1].Name != "listener.0.0.0.0_15006.downstream_cx_total" || st[1].Value != 5 {
		t.Errorf("listener: %+v", st[1])
	}
	if st[2].Text != "istiod-6b8c: 1" {
		t.Errorf("text readout: %+v", st[2])
	}
	q := st[3].Quantiles
	if !st[3].Histogram || len(q) != 4 || q[0].Interval != nil || *q[0].Cumulative != 2.0 || *q[1].Interval != 1.5 || q[2].Quantile != 99.9 {
		t.Errorf("histogram: %+v", st[3])
	}
	if !st[4].Histogram || len(st[4].Quantiles) != 0 || st[4].Name != "cluster.x.upstream_rq_time" {
		t.Errorf("empty histogram: %+v", st[4])
	}
	for _, bad := range []string{"no colon here", "a: b", "h: P0(1,2,3)", "h: P0(x,1)"} {
		if _, err := ParseStatsText([]byte(bad)); err == nil {
			t.Errorf("ParseStatsText(%q) succeeded", bad)
		}
	}
}

func TestParseStatsJSON(t *testing.T) {
	st, err := ParseStatsJSON(fixture(t, "envoy-docs-quickstart_stats_json_filtered_stats_array.json"))
	if err != nil || len(st) != 4 || st[3].Value != 3 {
		t.Fatalf("%+v %v", st, err)
	}
	full := `{"stats":[{"name":"a","value":1},{"name":"v","value":"1.28.0"},
	  {"histograms":{"supported_quantiles":[0,50,100],"computed_quantiles":[{"name":"h","values":[{"interval":null,"cumulative":1},{"interval":2,"cumulative":3},{"interval":null,"cumulative":null}]}]}}]}`
	st, err = ParseStatsJSON([]byte(full))
	if err != nil || len(st) != 3 {
		t.Fatalf("%+v %v", st, err)
	}
	if st[1].Text != "1.28.0" || !st[2].Histogram || st[2].Quantiles[1].Quantile != 50 || *st[2].Quantiles[1].Interval != 2 {
		t.Errorf("%+v", st)
	}
}

func TestParseLogging(t *testing.T) {
	lg := ParseLogging(fixture(t, "consul-envoy_logging_levels.txt"))
	if len(lg) != 57 || lg[0] != (Logger{"admin", "debug"}) || lg[len(lg)-1].Name != "websocket" {
		t.Errorf("%d loggers: %v", len(lg), lg)
	}
}

func FuzzParseStatsText(f *testing.F) {
	for _, name := range []string{"datadog-envoy-legacy_stats_text_multiple_services.txt", "envoy-docs-quickstart_stats_text_filtered_with_histograms.txt", "metricbeat-envoy_stats_text.txt"} {
		if b, err := readFixture(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: P0(nan,1) P50(2,3)\nb: \"x\"\nc: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatsText(b)
		if err != nil {
			return
		}
		// Every parsed stat has a name from the input.
		for _, s := range st {
			if !bytes.Contains(b, []byte(s.Name)) {
				t.Fatalf("stat name %q not in the input", s.Name)
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"istio-1.21-waypoint_config_dump_with_eds.json", "istio-secrets_config_dump.json", "istio-gateway-routes_config_dump.json", "istio-1.5-sidecar-details-v1_config_dump.json"} {
		if b, err := readFixture(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"configs":[{"@type":"type.googleapis.com/x.Y","password":"p"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		// Scrubbing is idempotent, and the kept JSON is inside the output.
		again, n, err := ScrubConfigDumpJSON(d.Raw)
		if err != nil || n != 0 || !bytes.Equal(again, d.Raw) {
			t.Fatalf("second scrub: n=%d err=%v", n, err)
		}
		for _, u := range d.Unknown {
			if !bytes.Contains(d.Raw, u.JSON) {
				t.Fatalf("unknown %s not in the output", u.Path)
			}
		}
		if _, err := Marshal(d.Dump); err != nil {
			t.Fatalf("Marshal: %v", err)
		}
	})
}
