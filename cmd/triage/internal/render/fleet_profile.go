package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/triage-sh/triage/client/fleet"
)

// FleetProfile writes what a merged profile holds: where it was written,
// how to look at one pod, each pod's part of the default sample type, and
// the pods left out and why.
func FleetProfile(w io.Writer, s *fleet.ProfileSummary, file string, st Style) error {
	ew := &errWriter{w: w}
	pods := make([]string, 0, len(s.Shares)+len(s.Excluded))
	for _, sh := range s.Shares {
		pods = append(pods, sh.Pod)
	}
	for _, e := range s.Excluded {
		pods = append(pods, e.Pod)
	}
	name := fleet.ShortNames(pods)
	what := "profile"
	if s.Default >= 0 && s.Default < len(s.SampleTypes) {
		what = s.SampleTypes[s.Default]
	}
	fmt.Fprintf(ew, "%s · %s\n", st.Paint(Bold, fmt.Sprintf("merged %s into %s", Plural(s.Pods, "pod's profile", "pods' profiles"), file)), what)
	if len(s.Shares) > 0 {
		fmt.Fprintf(ew, "one pod: go tool pprof -tagfocus %s=%s %s\n", fleet.PodLabel, s.Shares[0].Pod, file)
		Section(ew, st, false, "PODS")
		kind, _, _ := strings.Cut(what, "/")
		t := NewTable("POD", strings.ToUpper(kind), "SHARE").AlignRight(1, 2)
		for _, sh := range s.Shares {
			v := "-"
			if s.Default >= 0 {
				v = sampleValue(sh.Values[s.Default], what)
			}
			t.Row(oddIf(st, sh.Outlier != "", name(sh.Pod)), oddIf(st, sh.Outlier != "", v), Percent(sh.Share, 1))
		}
		t.Write(ew, st)
	}
	if len(s.Excluded) > 0 {
		Section(ew, st, false, fmt.Sprintf("LEFT OUT (%d)", len(s.Excluded)))
		t := NewTable("POD", "WHY")
		width := 0
		for _, e := range s.Excluded {
			width = max(width, len(name(e.Pod)))
		}
		for _, e := range s.Excluded {
			// The whole reason is in -o json.
			t.Row(C(Yellow, name(e.Pod)), Truncate(e.Err.Error(), max(fleetWidth-len(indent)-width-2, 40)))
		}
		t.Write(ew, st)
	}
	return ew.err
}

// sampleValue formats a sample value by its unit ("cpu/nanoseconds").
func sampleValue(v int64, typeUnit string) string {
	_, unit, _ := strings.Cut(typeUnit, "/")
	switch unit {
	case "nanoseconds":
		return Latency(time.Duration(v))
	case "bytes":
		if v >= 0 {
			return Bytes(uint64(v))
		}
	}
	return fmt.Sprint(v)
}
