package fleet

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

var explainNow = time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)

// explainFor is a realistic explanation of pod "shop/<name>" (hostname =
// pod name, as in Kubernetes), its sidecar started some minutes ago.
func explainFor(name string, i int) *triagev1.ExplainResponse {
	return &triagev1.ExplainResponse{
		Build:    &triagev1.Build{Version: "v0.3.1", Revision: "4f2a9c1e8b7d6a5f", GoVersion: "go1.26.0", Platform: "linux/amd64", Started: timestamppb.New(explainNow.Add(-time.Duration(10+i) * time.Minute))},
		Time:     timestamppb.New(explainNow),
		Hostname: name,
		Settings: []*triagev1.Setting{
			{Name: "addr", Value: "127.0.0.1:7070", Source: triagev1.Source_SOURCE_DEFAULT, Origin: "default"},
			{Name: "audit-log", Value: "/var/log/triage/" + name + "/audit.log", Source: triagev1.Source_SOURCE_FILE, Origin: "/etc/triage.yaml:4"},
			{Name: "max-inflight", Value: "64", Source: triagev1.Source_SOURCE_ENV, Origin: "TRIAGE_MAX_INFLIGHT"},
			{Name: "gops-pid", Value: string(rune('0' + 7 + i%3)), Source: triagev1.Source_SOURCE_FLAG, Origin: "--gops-pid"},
			{Name: "pod-ip", Value: "10.0.0." + string(rune('1'+i)), Source: triagev1.Source_SOURCE_ENV, Origin: "TRIAGE_POD_IP"},
			{Name: "tokens-file", Value: "[redacted]", Source: triagev1.Source_SOURCE_FLAG, Origin: "--tokens-file"},
		},
		Auth: &triagev1.Auth{Modes: []string{"token"}, PolicyFile: "/etc/triage/policy.yaml", Bindings: 4,
			Caller: &triagev1.Identity{Name: "system:serviceaccount:triage-system:triage-viewer", Method: "token", Roles: []string{"viewer"}}},
		Capabilities: []*triagev1.Capability{
			{Name: "explain", Enabled: true, Reason: "on"},
			{Name: "process", Enabled: true, Reason: "on"},
			{Name: "capture", Reason: "no CAP_NET_RAW", Fix: "grant NET_RAW to the sidecar container"},
		},
		Processes: []*triagev1.ProcessSummary{
			{Pid: 1, Command: "pause"},
			{Pid: int32(7 + i%3), Command: "shop"},
			{Pid: int32(30 + i), Command: "triage-sidecar", Self: true},
		},
		App: &triagev1.App{Source: "agent", Reachable: true, Pid: int32(7 + i%3), GoVersion: "go1.26.0", AgentVersion: "v0.3.1",
			Uptime: durationpb.New(time.Duration(600+i) * time.Second),
			Build:  &triagev1.GoBuild{GoVersion: "go1.26.0", Main: &triagev1.GoModule{Path: "example.com/shop", Version: "v1.4.0"}},
			Config: []*triagev1.RegisteredValue{{Name: "db", Json: `{"pool":20,"host":"db.shop"}`}}},
		Findings: []*triagev1.Finding{
			{Severity: triagev1.Severity_SEVERITY_INFO, Code: "no-gomemlimit", Message: "shop has no GOMEMLIMIT", Pid: int32(7 + i%3)},
		},
	}
}

func fleetOf(n int, edit func(i int, r *triagev1.ExplainResponse)) []PodExplain {
	var pods []PodExplain
	for i := range n {
		name := "shop-7d9f8-" + string(rune('a'+i))
		r := explainFor(name, i)
		if edit != nil {
			edit(i, r)
		}
		pods = append(pods, PodExplain{Pod: "shop/" + name, Explain: r})
	}
	return pods
}

func short(pods []string) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = strings.TrimPrefix(p, "shop/shop-7d9f8-")
	}
	return out
}

// diffLine renders a Difference compactly for comparisons:
// "setting max-inflight: 64(env)=a,b,c 32(env)=d".
func diffLine(d Difference) string {
	var parts []string
	for _, v := range d.Values {
		val := v.Value
		if v.Missing {
			val = "<missing>"
		}
		if v.Source != "" {
			val += "(" + v.Source + ")"
		}
		parts = append(parts, val+"="+strings.Join(short(v.Pods), ","))
	}
	return d.Kind + " " + d.Name + ": " + strings.Join(parts, " ")
}

func TestDiffExplain(t *testing.T) {
	tests := []struct {
		name        string
		pods        []PodExplain
		agree       bool
		differences []string
		partial     []string // findings on some pods: "code subject=pods"
		common      []string // findings on all pods: "code subject"
		expected    []string // names of expected per-pod differences
	}{
		{
			name:     "all agree; per-pod values are expected",
			pods:     fleetOf(4, nil),
			agree:    true,
			common:   []string{"no-gomemlimit shop"},
			expected: []string{"app pid", "app uptime", "hostname", "setting gops-pid", "setting pod-ip", "sidecar started"},
		},
		{
			name: "one pod drifts: setting value, source, missing setting, capability, version, finding",
			pods: fleetOf(5, func(i int, r *triagev1.ExplainResponse) {
				switch i {
				case 1:
					r.Settings[2].Value = "32" // max-inflight
				case 2:
					r.Settings[0].Source = triagev1.Source_SOURCE_FLAG // addr, same value
					r.Settings[0].Origin = "--addr"
				case 3:
					r.Settings = slices.Delete(r.Settings, 5, 6) // no tokens-file
					r.Capabilities[2].Enabled, r.Capabilities[2].Reason = true, "on"
					r.Build.Version, r.Build.Revision = "v0.3.2", "aaaabbbbccccdddd"
					r.Findings = append(r.Findings, &triagev1.Finding{Severity: triagev1.Severity_SEVERITY_CRITICAL, Code: "fd-near-limit", Message: "shop uses 990 of 1024 fds", Pid: r.App.Pid})
					r.App.Config[0].Json = `{"pool":5,"host":"db.shop"}`
				}
			}),
			differences: []string{
				"version sidecar: v0.3.1 (rev 4f2a9c1e8b7d)=a,b,c,e v0.3.2 (rev aaaabbbbcccc)=d",
				"setting addr: 127.0.0.1:7070(default)=a,b,d,e 127.0.0.1:7070(flag)=c",
				"setting max-inflight: 64(env)=a,c,d,e 32(env)=b",
				"setting tokens-file: [redacted](flag)=a,b,c,e <missing>=d",
				"capability capture: off: no CAP_NET_RAW=a,b,c,e on=d",
				`app-config db: {"pool":20,"host":"db.shop"}=a,b,c,e {"pool":5,"host":"db.shop"}=d`,
			},
			partial:  []string{"fd-near-limit shop=d"},
			common:   []string{"no-gomemlimit shop"},
			expected: []string{"app pid", "app uptime", "hostname", "setting gops-pid", "setting pod-ip", "sidecar started"},
		},
		{
			name: "envoy and app versions, a finding only on some",
			pods: func() []PodExplain {
				ps := fleetOf(3, func(i int, r *triagev1.ExplainResponse) {
					if i == 0 {
						r.App.GoVersion = "go1.25.4"
						r.Findings = nil
					}
				})
				ps[0].EnvoyVersion, ps[1].EnvoyVersion, ps[2].EnvoyVersion = "1.34.1", "1.34.1", "1.35.0"
				return ps
			}(),
			differences: []string{
				"version app go: go1.26.0=b,c go1.25.4=a",
				"version envoy: 1.34.1=a,b 1.35.0=c",
			},
			partial:  []string{"no-gomemlimit shop=b,c"},
			expected: []string{"app pid", "app uptime", "hostname", "setting gops-pid", "setting pod-ip", "sidecar started"},
		},
		{
			name:  "one pod: nothing to compare",
			pods:  fleetOf(1, nil),
			agree: true, common: []string{"no-gomemlimit shop"},
		},
		{name: "no pods", pods: nil, agree: true},
		{name: "nil explanations are skipped", pods: []PodExplain{{Pod: "shop/x"}}, agree: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DiffExplain(tt.pods)
			if d.Agree != tt.agree {
				t.Errorf("Agree = %v, want %v", d.Agree, tt.agree)
			}
			var got []string
			for _, x := range d.Differences {
				got = append(got, diffLine(x))
			}
			if !slices.Equal(got, tt.differences) {
				t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.differences, "\n"))
			}
			var partial, common []string
			for _, f := range d.Findings {
				if f.All {
					common = append(common, f.Code+" "+f.Subject)
				} else {
					partial = append(partial, f.Code+" "+f.Subject+"="+strings.Join(short(f.Pods), ","))
				}
			}
			if !slices.Equal(partial, tt.partial) || !slices.Equal(common, tt.common) {
				t.Errorf("findings: partial %v common %v, want %v %v", partial, common, tt.partial, tt.common)
			}
			var exp []string
			for _, e := range d.Expected {
				exp = append(exp, e.Name)
				if e.Distinct < 2 || e.Pods != d.Pods {
					t.Errorf("expected %+v: want at least 2 distinct values over %d pods", e, d.Pods)
				}
			}
			if !slices.Equal(exp, tt.expected) {
				t.Errorf("expected per-pod %v, want %v", exp, tt.expected)
			}
		})
	}
}

// The inputs are not modified, so the caller can still print them.
func TestDiffExplainLeavesInputs(t *testing.T) {
	pods := fleetOf(3, nil)
	before := proto.Clone(pods[0].Explain)
	DiffExplain(pods)
	if !proto.Equal(before, pods[0].Explain) {
		t.Error("DiffExplain modified its input")
	}
}

func TestDiffExplainGolden(t *testing.T) {
	pods := fleetOf(5, func(i int, r *triagev1.ExplainResponse) {
		if i == 3 {
			r.Settings[2].Value = "32"
			r.Findings = append(r.Findings, &triagev1.Finding{Severity: triagev1.Severity_SEVERITY_CRITICAL, Code: "fd-near-limit", Message: "shop uses 990 of 1024 fds", Pid: r.App.Pid})
		}
	})
	goldenJSON(t, "explain_diff.json", DiffExplain(pods))
}

// FuzzDiffExplain varies settings, capabilities and findings from random
// bytes and checks that every pod lands in exactly one value group of each
// difference.
func FuzzDiffExplain(f *testing.F) {
	f.Add([]byte{3, 0, 1, 2, 3, 4, 5, 6})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		n := int(b[0]%6) + 1
		pods := fleetOf(n, func(i int, r *triagev1.ExplainResponse) {
			for k := 1 + i; k < len(b); k += n {
				switch v := b[k]; v % 5 {
				case 0:
					r.Settings[int(v/5)%len(r.Settings)].Value = string(rune('a' + v%7))
				case 1:
					if len(r.Settings) > 1 {
						r.Settings = r.Settings[1:]
					}
				case 2:
					r.Capabilities[int(v/5)%3].Enabled = v&8 != 0
				case 3:
					r.Findings = append(r.Findings, &triagev1.Finding{Code: string(rune('a' + v%3)), Pid: int32(v % 9), Severity: triagev1.Severity(v % 4)})
				case 4:
					r.App = nil
				}
			}
		})
		d := DiffExplain(pods)
		for _, x := range d.Differences {
			seen := map[string]int{}
			for _, v := range x.Values {
				for _, p := range v.Pods {
					seen[p]++
				}
			}
			if len(seen) != d.Pods || len(x.Values) < 2 {
				t.Fatalf("difference %s covers %d of %d pods in %d groups", diffLine(x), len(seen), d.Pods, len(x.Values))
			}
			for p, c := range seen {
				if c != 1 {
					t.Fatalf("pod %s in %d groups of %s", p, c, x.Name)
				}
			}
		}
		for _, fs := range d.Findings {
			if fs.All != (len(fs.Pods) == d.Pods) {
				t.Fatalf("finding %+v: All is wrong", fs)
			}
		}
	})
}
