package fleet

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/pprof/profile"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// PodLabel is the sample label MergeProfiles adds: `go tool pprof
// -tagfocus pod=NAME merged.pb.gz` shows one pod, -tagignore all but one.
const PodLabel = "pod"

// ErrTraceNotMergeable is returned for execution traces, which have no
// merged form.
var ErrTraceNotMergeable = errors.New("execution traces are not merged; use --per-pod-dir to keep one per pod")

// ErrNoProfile is returned by MergeProfiles when no pod's profile can be
// used.
var ErrNoProfile = errors.New("no profile could be merged")

// Mergeable says whether profiles of type t can be merged: nil, or
// ErrTraceNotMergeable for traces. Call it before collecting, so that a
// fleet trace is refused before every pod spends time on it.
func Mergeable(t triagev1.ProfileType) error {
	if t == triagev1.ProfileType_PROFILE_TYPE_TRACE {
		return ErrTraceNotMergeable
	}
	return nil
}

// PodProfile is one pod's profile: the pprof bytes (gzipped or not) as
// client.Profile wrote them.
type PodProfile struct {
	Pod  string
	Data []byte
}

// PodError is a pod whose result was left out, and why.
type PodError struct {
	Pod string `json:"pod"`
	Err error  `json:"-"`
}

// Error implements error: "ns/pod: reason".
func (e PodError) Error() string { return e.Pod + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e PodError) Unwrap() error { return e.Err }

// MarshalJSON writes {"pod": ..., "error": ...}.
func (e PodError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Pod   string `json:"pod"`
		Error string `json:"error"`
	}{e.Pod, e.Err.Error()})
}

// MergeProfiles parses each pod's profile, labels every sample
// pod=<name> (replacing a pod label the app may have set) and merges them
// into one profile with profile.Merge. Profiles that cannot join the rest
// (corrupt data, an execution trace, or sample or period types that
// differ from those most pods have) are left out and reported per pod;
// the merge fails only when no profile is usable, with ErrNoProfile. The
// result passes CheckValid; its samples' values add up to the inputs'.
func MergeProfiles(pods []PodProfile) (*profile.Profile, []PodError, error) {
	type parsed struct {
		pod   string
		p     *profile.Profile
		shape string
	}
	var ok []parsed
	var bad []PodError
	for _, in := range pods {
		if isTrace(in.Data) {
			bad = append(bad, PodError{Pod: in.Pod, Err: ErrTraceNotMergeable})
			continue
		}
		p, err := profile.ParseData(in.Data)
		if err == nil {
			err = p.CheckValid()
		}
		if err != nil {
			bad = append(bad, PodError{Pod: in.Pod, Err: fmt.Errorf("parse the profile: %w; keep it with --per-pod-dir and check it with go tool pprof", err)})
			continue
		}
		if len(p.SampleType) == 0 {
			bad = append(bad, PodError{Pod: in.Pod, Err: errors.New("the profile has no sample types")})
			continue
		}
		for _, s := range p.Sample {
			if s.Label == nil {
				s.Label = map[string][]string{}
			}
			s.Label[PodLabel] = []string{in.Pod}
			if s.NumLabel != nil {
				delete(s.NumLabel, PodLabel)
				delete(s.NumUnit, PodLabel)
			}
		}
		ok = append(ok, parsed{pod: in.Pod, p: p, shape: shape(p)})
	}
	if len(ok) == 0 {
		return nil, sortErrors(bad), fmt.Errorf("%w: every pod's profile was refused (see the per-pod errors)", ErrNoProfile)
	}

	// The shape most pods have wins; on a tie, the first pod's by name.
	votes := map[string]int{}
	first := map[string]string{}
	for _, x := range ok {
		votes[x.shape]++
		if f, seen := first[x.shape]; !seen || x.pod < f {
			first[x.shape] = x.pod
		}
	}
	win := ok[0].shape
	for s, n := range votes {
		if n > votes[win] || (n == votes[win] && first[s] < first[win]) {
			win = s
		}
	}
	var use []*profile.Profile
	var names []string
	for _, x := range ok {
		if x.shape != win {
			bad = append(bad, PodError{Pod: x.pod, Err: fmt.Errorf("its samples are %s, but most pods' are %s: is this pod running another profile type or an older sidecar?", x.shape, win)})
			continue
		}
		use = append(use, x.p)
		names = append(names, x.pod)
	}

	merged, err := profile.Merge(use)
	if err != nil {
		// Find the culprits one at a time rather than lose every pod.
		merged = nil
		for i, p := range use {
			if merged == nil {
				merged = p
				continue
			}
			m, err := profile.Merge([]*profile.Profile{merged, p})
			if err != nil {
				bad = append(bad, PodError{Pod: names[i], Err: fmt.Errorf("merge with the other pods' profiles: %w", err)})
				continue
			}
			merged = m
		}
		if merged, err = profile.Merge([]*profile.Profile{merged}); err != nil {
			return nil, sortErrors(bad), fmt.Errorf("merge profiles: %w", err)
		}
	}
	if err := merged.CheckValid(); err != nil {
		return nil, sortErrors(bad), fmt.Errorf("merged profile is invalid: %w; collect with --per-pod-dir instead", err)
	}
	return merged, sortErrors(bad), nil
}

// shape is what profiles must share to merge: sample types and period type.
func shape(p *profile.Profile) string {
	var parts []string
	for _, st := range p.SampleType {
		parts = append(parts, st.Type+"/"+st.Unit)
	}
	s := "[" + strings.Join(parts, " ") + "]"
	if p.PeriodType != nil {
		s += " per " + p.PeriodType.Type + "/" + p.PeriodType.Unit
	}
	return s
}

// isTrace recognises a Go execution trace by its header ("go 1.22 trace\x00...").
func isTrace(b []byte) bool {
	head, _, ok := bytes.Cut(b[:min(len(b), 16)], []byte(" trace\x00"))
	return ok && bytes.HasPrefix(head, []byte("go 1."))
}

func sortErrors(es []PodError) []PodError {
	slices.SortStableFunc(es, func(a, b PodError) int { return cmp.Compare(a.Pod, b.Pod) })
	return es
}

// ProfileSummary is what a fleet profile shows besides the merged file:
// each pod's part of it and the pods left out.
type ProfileSummary struct {
	// Pods is the number of pods merged.
	Pods int `json:"pods"`
	// SampleTypes are "type/unit" of each value; Default indexes the one
	// pprof shows by default and Share is computed on.
	SampleTypes []string `json:"sample_types"`
	Default     int      `json:"default"`
	// Shares are the pods by name.
	Shares []PodShare `json:"shares"`
	// Excluded are the pods left out, by name.
	Excluded []PodError `json:"excluded"`
}

// PodShare is one pod's part of a merged profile.
type PodShare struct {
	Pod string `json:"pod"`
	// Values are the pod's totals, one per sample type.
	Values []int64 `json:"values"`
	// Share is the pod's part of the default sample type's total, 0 to 1.
	Share float64 `json:"share"`
	// Outlier is "high" or "low" when the pod's default value is odd
	// against the other pods'.
	Outlier string `json:"outlier,omitempty"`
}

// SummarizeProfile totals a merged profile per pod (by the pod label
// MergeProfiles added).
func SummarizeProfile(p *profile.Profile, excluded []PodError) *ProfileSummary {
	s := &ProfileSummary{Shares: []PodShare{}, Excluded: excluded, Default: len(p.SampleType) - 1}
	if s.Excluded == nil {
		s.Excluded = []PodError{}
	}
	for i, st := range p.SampleType {
		s.SampleTypes = append(s.SampleTypes, st.Type+"/"+st.Unit)
		if st.Type == p.DefaultSampleType {
			s.Default = i
		}
	}
	byPod := map[string][]int64{}
	for _, smp := range p.Sample {
		pod := strings.Join(smp.Label[PodLabel], ",")
		if byPod[pod] == nil {
			byPod[pod] = make([]int64, len(p.SampleType))
		}
		for i, v := range smp.Value {
			byPod[pod][i] += v
		}
	}
	var total int64
	for pod, vs := range byPod {
		s.Shares = append(s.Shares, PodShare{Pod: pod, Values: vs})
		if s.Default >= 0 {
			total += vs[s.Default]
		}
	}
	slices.SortFunc(s.Shares, func(a, b PodShare) int { return cmp.Compare(a.Pod, b.Pod) })
	s.Pods = len(s.Shares)
	if s.Default < 0 {
		return s
	}
	vals := make([]int64, len(s.Shares))
	for i, sh := range s.Shares {
		vals[i] = sh.Values[s.Default]
	}
	sorted := sortedCopy(vals)
	for i := range s.Shares {
		sh := &s.Shares[i]
		if total > 0 {
			sh.Share = float64(vals[i]) / float64(total)
		}
		sh.Outlier = deviation(vals[i], without(sorted, vals[i]))
	}
	return s
}
