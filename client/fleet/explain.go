package fleet

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// PodExplain is one pod's explanation.
type PodExplain struct {
	Pod     string
	Explain *triagev1.ExplainResponse
	// EnvoyVersion is the pod's Envoy version (from EnvoyExplain), "" when
	// the pod has no Envoy or it was not asked.
	EnvoyVersion string
}

// PerPodSettings are the settings expected to differ from pod to pod:
// their values are the pod's own identity, address or process. DiffExplain
// counts how many values they have but never reports them as drift.
var PerPodSettings = []string{
	"pod-name", "pod-namespace", "pod-ip", "pod-uid", "node-name", "node-ip",
	"host-ip", "hostname", "gops-pid",
}

// Kinds of Difference, in the order DiffExplain lists them.
const (
	KindVersion    = "version"
	KindSetting    = "setting"
	KindCapability = "capability"
	KindAuth       = "auth"
	KindAppConfig  = "app-config"
)

var kindOrder = []string{KindVersion, KindSetting, KindCapability, KindAuth, KindAppConfig}

// ExplainDiff is what differs between pods' explanations.
type ExplainDiff struct {
	// Pods is the number of pods compared.
	Pods int `json:"pods"`
	// Agree is true when nothing differs but what is expected to, and
	// every finding is on every pod.
	Agree bool `json:"agree"`
	// Differences are the drifting values: versions, then settings,
	// capabilities, auth and the app's registered configuration, each by
	// name.
	Differences []Difference `json:"differences"`
	// Expected are the per-pod values that differ, as they should.
	Expected []Expected `json:"expected"`
	// Findings are every finding, most severe first, then by code and
	// subject; All says whether every pod has it.
	Findings []FindingSpread `json:"findings"`
}

// Difference is one value that is not the same on every pod.
type Difference struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Values group the pods by value, most pods first, then by value.
	Values []ValueGroup `json:"values"`
}

// ValueGroup is the pods that share one value.
type ValueGroup struct {
	// Value is the value as the sidecar reported it, with the pod's own
	// name replaced by "<pod>" (so /run/<pod>/x matches across pods).
	Value string `json:"value"`
	// Source is where a setting's value came from: default, file, env,
	// flag, dev.
	Source string `json:"source,omitempty"`
	// Missing is true for the pods that do not report the value at all.
	Missing bool     `json:"missing,omitempty"`
	Pods    []string `json:"pods"`
}

// Expected is a per-pod value: how many distinct values it has.
type Expected struct {
	Name     string `json:"name"`
	Distinct int    `json:"distinct"`
	Pods     int    `json:"pods"`
}

// FindingSpread is one finding and the pods that have it.
type FindingSpread struct {
	Severity triagev1.Severity `json:"-"`
	// Level is the severity in lower case: critical, warning, info.
	Level string `json:"severity"`
	Code  string `json:"code"`
	// Subject is the command of the process the finding is about, if any
	// (pids differ per pod, so the command is what matches across pods).
	Subject string `json:"subject,omitempty"`
	// Message and Fix are the first pod's (messages carry per-pod numbers).
	Message string   `json:"message"`
	Fix     string   `json:"fix,omitempty"`
	Pods    []string `json:"pods"`
	All     bool     `json:"all"`
}

// DiffExplain compares the pods' explanations. Pods are compared by name
// order; nil explanations are skipped like failed pods.
func DiffExplain(pods []PodExplain) *ExplainDiff {
	pods = slices.DeleteFunc(slices.Clone(pods), func(p PodExplain) bool { return p.Explain == nil })
	slices.SortStableFunc(pods, func(a, b PodExplain) int { return cmp.Compare(a.Pod, b.Pod) })
	pods = slices.CompactFunc(pods, func(a, b PodExplain) bool { return a.Pod == b.Pod })
	d := &ExplainDiff{Pods: len(pods), Differences: []Difference{}, Expected: []Expected{}, Findings: []FindingSpread{}}
	if len(pods) == 0 {
		d.Agree = true
		return d
	}

	// values[kind/name][pod] = value (with source), then grouped.
	type cell struct{ value, source string }
	values := map[[2]string]map[string]cell{}
	expected := map[string]map[string]bool{}
	perPod := map[string]bool{}
	for _, n := range PerPodSettings {
		perPod[n] = true
	}
	set := func(kind, name, pod, value, source string) {
		k := [2]string{kind, name}
		if values[k] == nil {
			values[k] = map[string]cell{}
		}
		values[k][pod] = cell{value, source}
	}
	expect := func(name, value string) {
		if expected[name] == nil {
			expected[name] = map[string]bool{}
		}
		expected[name][value] = true
	}
	for _, p := range pods {
		r := p.Explain
		norm := normaliser(p.Pod, r.GetHostname())
		b := r.GetBuild()
		set(KindVersion, "sidecar", p.Pod, versionRev(b.GetVersion(), b.GetRevision()), "")
		set(KindVersion, "sidecar go", p.Pod, b.GetGoVersion(), "")
		set(KindVersion, "sidecar platform", p.Pod, b.GetPlatform(), "")
		if a := r.GetApp(); a != nil {
			set(KindVersion, "app go", p.Pod, a.GetGoVersion(), "")
			if m := a.GetBuild().GetMain(); m != nil {
				set(KindVersion, "app", p.Pod, versionRev(m.GetVersion(), a.GetBuild().GetSettings()["vcs.revision"]), "")
			}
			if a.GetAgentVersion() != "" {
				set(KindVersion, "agent", p.Pod, a.GetAgentVersion(), "")
			}
			reach := "reachable"
			if !a.GetReachable() {
				reach = "unreachable"
			}
			set(KindAuth, "app agent", p.Pod, a.GetSource()+" "+reach, "")
			for _, v := range a.GetConfig() {
				val := v.GetJson()
				if v.GetError() != "" {
					val = "error: " + v.GetError()
				}
				set(KindAppConfig, v.GetName(), p.Pod, norm(val), "")
			}
			expect("app pid", fmt.Sprint(a.GetPid()))
			if a.GetUptime() != nil {
				expect("app uptime", a.GetUptime().AsDuration().String())
			}
		}
		if p.EnvoyVersion != "" {
			set(KindVersion, "envoy", p.Pod, p.EnvoyVersion, "")
		}
		for _, s := range r.GetSettings() {
			if perPod[s.GetName()] {
				expect("setting "+s.GetName(), s.GetValue())
				continue
			}
			set(KindSetting, s.GetName(), p.Pod, norm(s.GetValue()), lowerEnum(s.GetSource().String(), "SOURCE_"))
		}
		for _, c := range r.GetCapabilities() {
			v := "on"
			if !c.GetEnabled() {
				v = "off"
				if c.GetReason() != "" {
					v += ": " + c.GetReason()
				}
			}
			set(KindCapability, c.GetName(), p.Pod, v, "")
		}
		if au := r.GetAuth(); au != nil {
			set(KindAuth, "modes", p.Pod, strings.Join(au.GetModes(), ", "), "")
			set(KindAuth, "policy", p.Pod, fmt.Sprintf("%s (%d bindings)", au.GetPolicyFile(), au.GetBindings()), "")
			set(KindAuth, "caller roles", p.Pod, strings.Join(au.GetCaller().GetRoles(), ", "), "")
		}
		expect("hostname", r.GetHostname())
		if st := b.GetStarted(); st != nil {
			expect("sidecar started", st.AsTime().String())
		}
	}

	for k, byPod := range values {
		groups := map[cell][]string{}
		var missing []string
		for _, p := range pods {
			c, ok := byPod[p.Pod]
			if !ok {
				missing = append(missing, p.Pod)
				continue
			}
			groups[c] = append(groups[c], p.Pod)
		}
		if len(groups)+min(len(missing), 1) < 2 {
			continue
		}
		diff := Difference{Kind: k[0], Name: k[1]}
		for c, ps := range groups {
			diff.Values = append(diff.Values, ValueGroup{Value: c.value, Source: c.source, Pods: ps})
		}
		if len(missing) > 0 {
			diff.Values = append(diff.Values, ValueGroup{Missing: true, Pods: missing})
		}
		slices.SortFunc(diff.Values, func(a, b ValueGroup) int {
			return cmp.Or(cmp.Compare(len(b.Pods), len(a.Pods)), compareBool(a.Missing, b.Missing),
				cmp.Compare(a.Value, b.Value), cmp.Compare(a.Source, b.Source))
		})
		d.Differences = append(d.Differences, diff)
	}
	slices.SortFunc(d.Differences, func(a, b Difference) int {
		return cmp.Or(cmp.Compare(slices.Index(kindOrder, a.Kind), slices.Index(kindOrder, b.Kind)), cmp.Compare(a.Name, b.Name))
	})
	for name, vs := range expected {
		if len(vs) > 1 {
			d.Expected = append(d.Expected, Expected{Name: name, Distinct: len(vs), Pods: len(pods)})
		}
	}
	slices.SortFunc(d.Expected, func(a, b Expected) int { return cmp.Compare(a.Name, b.Name) })

	d.Findings = spreadFindings(pods)
	d.Agree = len(d.Differences) == 0
	for _, f := range d.Findings {
		d.Agree = d.Agree && f.All
	}
	return d
}

func spreadFindings(pods []PodExplain) []FindingSpread {
	byKey := map[[2]string]*FindingSpread{}
	var out []*FindingSpread
	for _, p := range pods {
		cmds := map[int32]string{}
		for _, pr := range p.Explain.GetProcesses() {
			cmds[pr.GetPid()] = pr.GetCommand()
		}
		seen := map[[2]string]bool{}
		for _, f := range p.Explain.GetFindings() {
			subj := ""
			if f.GetPid() != 0 {
				subj = cmds[f.GetPid()]
				if subj == "" {
					subj = "a process"
				}
			}
			k := [2]string{f.GetCode(), subj}
			if seen[k] {
				continue
			}
			seen[k] = true
			fs := byKey[k]
			if fs == nil {
				fs = &FindingSpread{Severity: f.GetSeverity(), Code: f.GetCode(), Subject: subj, Message: f.GetMessage(), Fix: f.GetFix()}
				byKey[k] = fs
				out = append(out, fs)
			}
			fs.Severity = max(fs.Severity, f.GetSeverity())
			fs.Pods = append(fs.Pods, p.Pod)
		}
	}
	res := make([]FindingSpread, 0, len(out))
	for _, f := range out {
		f.All = len(f.Pods) == len(pods)
		f.Level = lowerEnum(f.Severity.String(), "SEVERITY_") // of the most severe
		res = append(res, *f)
	}
	slices.SortFunc(res, func(a, b FindingSpread) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Subject, b.Subject))
	})
	return res
}

// normaliser replaces the pod's own name (and hostname) in a value with
// "<pod>", so that per-pod paths and names compare equal.
func normaliser(pod, hostname string) func(string) string {
	var names []string
	if _, short, ok := strings.Cut(pod, "/"); ok && len(short) >= 3 {
		names = append(names, short)
	}
	if len(hostname) >= 3 && !slices.Contains(names, hostname) {
		names = append(names, hostname)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(len(b), len(a)) }) // longest first
	return func(v string) string {
		for _, n := range names {
			v = strings.ReplaceAll(v, n, "<pod>")
		}
		return v
	}
}

func versionRev(version, rev string) string {
	if version == "" {
		version = "unknown"
	}
	if rev != "" {
		version += " (rev " + rev[:min(len(rev), 12)] + ")"
	}
	return version
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// lowerEnum turns an enum name such as "SEVERITY_WARNING" into "warning"
// by dropping prefix.
func lowerEnum(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}
