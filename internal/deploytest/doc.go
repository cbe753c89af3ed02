// Package deploytest checks the Kubernetes manifests under deploy/ as
// kustomize renders them: every object is decoded strictly into its Go API
// type (a misspelt or misplaced field fails), then the injector's
// installation is checked against what issue 6 and package internal/inject
// require (webhook selectors and policies, two replicas and a
// PodDisruptionBudget, the restricted Pod Security Standard, least-privilege
// RBAC, the NetworkPolicy, and the certificate wiring of each overlay).
//
// The rendering is done by scripts/manifests.sh (`make manifests`), which
// runs kustomize through `go run` at a pinned version so that kustomize
// stays out of go.mod, writes one file per overlay into a directory, and
// runs this package's tests with TRIAGE_MANIFESTS_DIR naming that
// directory. Without the variable the manifest tests skip (plain
// `go test ./...` needs no kustomize); the decoder's and the Dockerfiles' tests always run.
package deploytest
