// Package kubetest holds the tests that run triage against a real control
// plane: Debian's etcd and a kube-apiserver built from the Go module proxy
// (scripts/kube-control-plane.sh builds and caches both), started by package
// internal/kubetest/cluster.
//
// TestMain starts the cluster, serves internal/injector's handler in-process
// over TLS, and registers deploy/base/mutatingwebhookconfiguration.yaml
// pointed at it (if the webhook does not start, its tests fail and the
// others still run). The injection tests create pods only as API objects.
// The port-forward tests add the cluster's fake kubelet and running pods
// whose ports are loopback servers, and forward to them through the API
// server over websocket and SPDY, as users RBAC allows or refuses; the
// token tests mint ServiceAccount tokens with TokenRequest and check their
// claims, their audience and who may mint them.
//
// Without etcd in PATH or a kube-apiserver binary (the cache the script fills,
// or $TRIAGE_KUBE_APISERVER), or with -short, every test skips and says which
// script to run. TRIAGE_KUBETEST_KEEP=1 keeps the control plane's directory
// (etcd, kube-apiserver and injector logs) for a look after the run.
package kubetest
