package fleet

import (
	"fmt"
	"testing"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// FuzzMergeGoroutines builds pods from random bytes (a few functions,
// states and lines, so groups collide across pods) and checks that the
// merge never panics and conserves counts.
func FuzzMergeGoroutines(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{1, 255, 0, 0})
	f.Add([]byte{7, 9, 9, 9, 9, 200, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		npods := int(b[0]%8) + 1
		pods := make([]PodGoroutines, npods)
		for i := range pods {
			pods[i] = PodGoroutines{Pod: fmt.Sprintf("ns/p%d", i%6)} // repeated names too
			if i%3 == 0 {
				pods[i].Summary = &triagev1.GoroutineSummary{Total: int64(i * 7), Path: triagev1.GoroutinePath(i % 3)}
			}
		}
		for i := 1; i+3 < len(b); i += 4 {
			p := &pods[int(b[i])%npods]
			g := &triagev1.GoroutineGroup{
				Count: int64(b[i+1]) - 20, // some zero or negative
				State: []string{"", "chan receive", "select", "IO wait"}[b[i+2]%4],
				Frames: []*triagev1.StackFrame{
					{Function: fmt.Sprintf("main.f%d", b[i+3]%5), File: "/app/main.go", Line: int64(b[i+3] % 3)},
					{Function: "main.main", File: "/app/main.go", Line: 9},
				},
				LockedToThread: b[i+2]&16 != 0,
				FramesElided:   b[i+2]&32 != 0,
			}
			if b[i+2]&64 != 0 {
				g.MinWait, g.MaxWait = dur(int(b[i+3]%4)), dur(int(b[i+3]%4)+1)
			}
			if b[i+2]&128 != 0 {
				p.Groups = append(p.Groups, nil)
			}
			p.Groups = append(p.Groups, g)
		}
		for _, exact := range []bool{false, true} {
			m := MergeGoroutinesWith(pods, GoroutineOptions{ExactLines: exact})
			checkConserved(t, uniquePods(pods), m)
			for _, o := range m.Outliers {
				if o.Pod == "" || o.Why == "" {
					t.Fatalf("outlier without pod or reason: %+v", o)
				}
			}
		}
	})
}
