// Package kubetest holds the tests that run triage's admission webhook
// against a real control plane: Debian's etcd and a kube-apiserver built from
// the Go module proxy (scripts/kube-control-plane.sh builds and caches both).
//
// TestMain starts etcd and kube-apiserver on random loopback ports in a
// temporary directory (RBAC, the PodSecurity and MutatingAdmissionWebhook
// admission plugins, ServiceAccount admission off so bare pods can be
// created), serves internal/injector's handler in-process over TLS, and
// registers deploy/base/mutatingwebhookconfiguration.yaml pointed at it. Pods
// are only created as API objects: no scheduler or kubelet runs.
//
// Without etcd in PATH or a kube-apiserver binary (the cache the script fills,
// or $TRIAGE_KUBE_APISERVER), or with -short, every test skips and says which
// script to run. TRIAGE_KUBETEST_KEEP=1 keeps the control plane's directory
// (etcd, kube-apiserver and injector logs) for a look after the run.
package kubetest
