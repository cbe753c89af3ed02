// Package kube is the Kubernetes side of the triage CLI: it turns a target
// such as deploy/web or -l app=web into the pods that run the triage
// sidecar, mints each call's bearer token with the TokenRequest API, reaches
// each sidecar through the API server's port-forward (or directly at the pod
// IP with --direct), and runs one function per pod with bounded
// concurrency, deadlines and progress.
//
// The pieces, in the order a command uses them:
//
//   - [Flags] registers the connection flags (--kubeconfig, --context,
//     -n, --direct, ...) and [New] loads the kubeconfig the way kubectl
//     does (KUBECONFIG, then the in-cluster configuration).
//   - [ParseTarget] parses the command's arguments and [Kube.Resolve] lists
//     the target's pods, keeping pods that cannot be reached (not running,
//     not injected) with a Skip reason instead of dropping them.
//   - [TokenSource] mints short-lived tokens for the tier ServiceAccount a
//     command needs (triage-viewer, triage-profiler, ...) with triage's
//     audience, as the user: RBAC decides who may mint which tier.
//   - [Kube.Dial] opens a port-forward to one pod (websocket first, SPDY as
//     fallback, like kubectl) and returns a connected client.
//   - [FanOut] runs a function on many pods. Its concurrency limit bounds
//     the active phases only: a function gives its [Slot] back while the
//     sidecar samples, so a 5 s profile of 100 pods takes about 5 s, and
//     [FanOutOptions.AlignStart] starts timed collections together.
//   - [ErrorTable] lists the pods that failed or were skipped.
//
// Tokens are never logged or printed, and never appear in errors.
package kube
