package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felixge/fgprof"
	"github.com/google/pprof/profile"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Real profiles of this test process, made while it does a different
// amount of work for each "pod".

func goroutineProfile(t *testing.T, extra int) []byte {
	t.Helper()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range extra {
		wg.Add(1)
		go parkedWorker(&wg, release)
	}
	defer func() { close(release); wg.Wait() }()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 0); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var sink [][]byte

func heapProfile(t *testing.T, allocs int) []byte {
	t.Helper()
	for i := range allocs {
		sink = append(sink, make([]byte, 4096+i))
	}
	runtime.GC()
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func burn(d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		n += len(fmt.Sprint(n))
	}
	return n
}

func cpuProfile(t *testing.T, work time.Duration) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.StartCPUProfile(&b); err != nil {
		t.Skipf("CPU profiling unavailable: %v", err)
	}
	burn(work)
	pprof.StopCPUProfile()
	return b.Bytes()
}

func wallProfile(t *testing.T, sleep time.Duration) []byte {
	t.Helper()
	var b bytes.Buffer
	stop := fgprof.Start(&b, fgprof.FormatPprof)
	time.Sleep(sleep)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func traceData(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := trace.Start(&b); err != nil {
		t.Skipf("tracing unavailable: %v", err)
	}
	burn(time.Millisecond)
	trace.Stop()
	return b.Bytes()
}

// sums returns the total of each sample type over the samples (of pod,
// or all when pod is "").
func sums(p *profile.Profile, pod string) []int64 {
	out := make([]int64, len(p.SampleType))
	for _, s := range p.Sample {
		if pod != "" && (len(s.Label[PodLabel]) != 1 || s.Label[PodLabel][0] != pod) {
			continue
		}
		for i, v := range s.Value {
			out[i] += v
		}
	}
	return out
}

func parse(t *testing.T, b []byte) *profile.Profile {
	t.Helper()
	p, err := profile.ParseData(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkMerged asserts the merged profile is valid, round-trips, has a pod
// label on every sample, and that each used pod's values add up.
func checkMerged(t *testing.T, merged *profile.Profile, used []PodProfile) {
	t.Helper()
	if err := merged.CheckValid(); err != nil {
		t.Fatalf("merged profile invalid: %v", err)
	}
	var buf bytes.Buffer
	if err := merged.Write(&buf); err != nil {
		t.Fatalf("write merged: %v", err)
	}
	back := parse(t, buf.Bytes())
	if err := back.CheckValid(); err != nil {
		t.Fatalf("merged profile invalid after a round trip: %v", err)
	}
	total := make([]int64, len(merged.SampleType))
	for _, in := range used {
		want := sums(parse(t, in.Data), "")
		got := sums(back, in.Pod)
		if !slices.Equal(got, want) {
			t.Errorf("pod %s: merged values %v, the pod's profile has %v", in.Pod, got, want)
		}
		for i := range want {
			total[i] += want[i]
		}
	}
	if got := sums(back, ""); !slices.Equal(got, total) {
		t.Errorf("merged values %v, the inputs add up to %v", got, total)
	}
	pods := map[string]bool{}
	for _, s := range back.Sample {
		if len(s.Label[PodLabel]) != 1 {
			t.Fatalf("sample without one pod label: %v", s.Label)
		}
		pods[s.Label[PodLabel][0]] = true
	}
	for _, in := range used {
		if !pods[in.Pod] && slices.ContainsFunc(sums(parse(t, in.Data), ""), func(v int64) bool { return v != 0 }) {
			t.Errorf("no sample labelled pod=%s", in.Pod)
		}
	}
}

func TestMergeProfiles(t *testing.T) {
	gor := []PodProfile{
		{"shop/a", goroutineProfile(t, 3)},
		{"shop/b", goroutineProfile(t, 40)},
		{"shop/c", goroutineProfile(t, 7)},
	}
	heap := []PodProfile{
		{"shop/a", heapProfile(t, 10)},
		{"shop/b", heapProfile(t, 200)},
	}
	cpu := []PodProfile{
		{"shop/a", cpuProfile(t, 120*time.Millisecond)},
		{"shop/b", cpuProfile(t, 60*time.Millisecond)},
	}
	wall := []PodProfile{
		{"shop/a", wallProfile(t, 60*time.Millisecond)},
		{"shop/b", wallProfile(t, 30*time.Millisecond)},
	}
	corrupt := PodProfile{"shop/x", []byte("\x1f\x8b not really gzip")}
	tests := []struct {
		name    string
		pods    []PodProfile
		used    []PodProfile
		refused map[string]error // pod -> errors.Is target (nil: any error)
	}{
		{name: "goroutine", pods: gor, used: gor},
		{name: "heap", pods: heap, used: heap},
		{name: "cpu", pods: cpu, used: cpu},
		{name: "wall (fgprof)", pods: wall, used: wall},
		{
			name:    "one pod on another profile type, one corrupt, one trace",
			pods:    append(slices.Clone(gor), PodProfile{"shop/h", heap[0].Data}, corrupt, PodProfile{"shop/t", traceData(t)}),
			used:    gor,
			refused: map[string]error{"shop/h": nil, "shop/x": nil, "shop/t": ErrTraceNotMergeable},
		},
		{
			name:    "tie between shapes: the first pod's wins",
			pods:    []PodProfile{{"shop/b", wall[1].Data}, {"shop/a", cpu[0].Data}},
			used:    []PodProfile{{"shop/a", cpu[0].Data}},
			refused: map[string]error{"shop/b": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged, bad, err := MergeProfiles(tt.pods)
			if err != nil {
				t.Fatal(err)
			}
			checkMerged(t, merged, tt.used)
			if len(bad) != len(tt.refused) {
				t.Errorf("refused %v, want %d pods refused", bad, len(tt.refused))
			}
			for _, e := range bad {
				target, ok := tt.refused[e.Pod]
				switch {
				case !ok:
					t.Errorf("pod %s refused unexpectedly: %v", e.Pod, e.Err)
				case target != nil && !errors.Is(e, target):
					t.Errorf("pod %s refused with %v, want %v", e.Pod, e.Err, target)
				case !strings.HasPrefix(e.Error(), e.Pod+": "):
					t.Errorf("error %q does not name the pod", e.Error())
				}
			}
		})
	}
}

func TestMergeProfilesNoneUsable(t *testing.T) {
	_, bad, err := MergeProfiles([]PodProfile{{"a/x", []byte("garbage")}, {"a/t", traceData(t)}})
	if !errors.Is(err, ErrNoProfile) || len(bad) != 2 {
		t.Errorf("err %v, refused %v: want ErrNoProfile and 2 refused", err, bad)
	}
	if _, _, err := MergeProfiles(nil); !errors.Is(err, ErrNoProfile) {
		t.Errorf("no pods: err %v, want ErrNoProfile", err)
	}
}

// An app's own pprof label named pod is replaced, so -tagfocus pod= is
// unambiguous.
func TestMergeProfilesReplacesPodLabel(t *testing.T) {
	p := parse(t, goroutineProfile(t, 1))
	for _, s := range p.Sample {
		s.Label = map[string][]string{PodLabel: {"app-set"}, "route": {"/x"}}
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	merged, _, err := MergeProfiles([]PodProfile{{"ns/a", b.Bytes()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range merged.Sample {
		if got := s.Label[PodLabel]; len(got) != 1 || got[0] != "ns/a" || s.Label["route"][0] != "/x" {
			t.Fatalf("labels %v, want pod=ns/a and the app's route kept", s.Label)
		}
	}
}

func TestMergeable(t *testing.T) {
	for _, pt := range []triagev1.ProfileType{triagev1.ProfileType_PROFILE_TYPE_CPU, triagev1.ProfileType_PROFILE_TYPE_WALL, triagev1.ProfileType_PROFILE_TYPE_HEAP} {
		if err := Mergeable(pt); err != nil {
			t.Errorf("Mergeable(%v) = %v", pt, err)
		}
	}
	if err := Mergeable(triagev1.ProfileType_PROFILE_TYPE_TRACE); !errors.Is(err, ErrTraceNotMergeable) {
		t.Errorf("Mergeable(trace) = %v", err)
	}
}

func TestSummarizeProfile(t *testing.T) {
	pods := []PodProfile{
		{"shop/a", goroutineProfile(t, 2)},
		{"shop/b", goroutineProfile(t, 3)},
		{"shop/c", goroutineProfile(t, 400)},
		{"shop/x", []byte("corrupt")},
	}
	merged, bad, err := MergeProfiles(pods)
	if err != nil {
		t.Fatal(err)
	}
	s := SummarizeProfile(merged, bad)
	if s.Pods != 3 || len(s.Excluded) != 1 || s.Excluded[0].Pod != "shop/x" {
		t.Fatalf("summary %+v: want 3 pods and shop/x excluded", s)
	}
	if s.SampleTypes[s.Default] != "goroutine/count" {
		t.Errorf("default sample type %q", s.SampleTypes[s.Default])
	}
	var share float64
	for i, sh := range s.Shares {
		want := sums(parse(t, pods[i].Data), "")
		if sh.Pod != pods[i].Pod || !slices.Equal(sh.Values, want) {
			t.Errorf("share %d = %+v, want pod %s values %v", i, sh, pods[i].Pod, want)
		}
		share += sh.Share
		if (sh.Outlier == "high") != (sh.Pod == "shop/c") {
			t.Errorf("pod %s outlier %q", sh.Pod, sh.Outlier)
		}
	}
	if share < 0.999 || share > 1.001 {
		t.Errorf("shares add up to %v", share)
	}
}

func TestPodErrorJSON(t *testing.T) {
	b, err := json.Marshal([]PodError{{Pod: "ns/a\"b", Err: errors.New("bad \x00 byte \xff and \"quotes\"")}})
	if err != nil || !json.Valid(b) {
		t.Fatalf("PodError JSON %s: %v", b, err)
	}
	var back []map[string]string
	if err := json.Unmarshal(b, &back); err != nil || back[0]["pod"] != "ns/a\"b" || !strings.Contains(back[0]["error"], "quotes") {
		t.Errorf("round trip: %v %v", back, err)
	}
}
