// Package fleet combines what many pods' triage sidecars return into one
// answer, so that a fleet command (`triage goroutines deploy/x`, `triage
// profile deploy/x`, `triage explain deploy/x`, `triage proc deploy/x`)
// shows what the pods have in common and which pod is the odd one out,
// rather than N answers one after the other.
//
// The package knows nothing of Kubernetes: its inputs are per-pod results
// keyed by pod name ("namespace/name"), as a fan-out returns them. Pods
// whose call failed are simply left out of the input; the caller reports
// their errors. Every result is deterministic for a given input (sorted,
// never ordered by map iteration) and marshals to stable snake_case JSON.
//
//   - MergeGoroutines merges goroutine groups across pods by stack and
//     state, with per-pod counts, and flags groups only some pods have,
//     pods with an outlying count for a group, and pods with an outlying
//     number of goroutines.
//   - MergeProfiles merges pprof profiles into one, labelling every sample
//     with pod=<name> so `go tool pprof -tagfocus pod=...` can split it
//     again; profiles that cannot be merged are reported per pod.
//   - DiffExplain says what differs between pods' explanations (settings,
//     versions, capabilities, findings), ignoring what is expected to
//     differ per pod.
//   - ProcRows makes one row per pod of the app process's state.
//
// # Outliers
//
// A pod's value v is compared with the other pods' values (leave one out,
// so that the odd pod cannot drag the median towards itself). Let m be
// their median. v is high when v > max(3m, m+10) and low when v < m/3 and
// m-v > 10: a factor for large values and an absolute margin so that 1
// goroutine against 3 is not news. When the others are an even number,
// high is judged against the upper of their two middle values and low
// against the lower one, so that among three pods {8, 8, 300} only 300
// is odd. Low outliers need at least two other pods; with two pods only
// the higher one can be flagged.
package fleet
