// Package cluster runs a real Kubernetes control plane for tests and
// benchmarks: Debian's etcd and a kube-apiserver built from the Go module
// proxy (scripts/kube-control-plane.sh builds and caches both; FindBinaries
// finds them and otherwise says how to get them).
//
// Start runs both on random loopback ports in a temporary directory (in
// /dev/shm when it has room), with RBAC, the PodSecurity and webhook
// admission plugins, ServiceAccount admission off (bare pods, no controller
// manager), ServiceAccount tokens issued by IssuerURL and accepted only for
// that audience, and static-token users (Options.Users: "alice" in group
// "oncall" and "bob" by default) for UserConfig. Startup takes a few
// seconds.
//
// No scheduler, controller manager or kubelet runs. StartKubelet adds a
// fake kubelet: a Ready Node whose HTTPS endpoint (trusted by the API
// server through --kubelet-certificate-authority, and accepting only the
// API server's client certificate) serves port-forward with the kubelet's
// own code (k8s.io/cri-streaming), forwarding each pod port to a local
// address given to Kubelet.Expose. CreateRunningPod creates a pod on that
// node and marks it running and ready, so `kubectl port-forward` and
// client-go's tools/portforward (PortForward here, over websocket or SPDY)
// reach loopback servers through the real API server, with RBAC.
//
// MintToken, CreateServiceAccounts, GrantTokenMinting and GrantPortForward
// set up what triage's Kubernetes authentication uses: tier ServiceAccounts
// in TriageNamespace, tokens for TriageAudience, and the RBAC that decides
// who may mint them.
//
// Port-forward RBAC, as this API server enforces it: SPDY is a POST,
// authorized as create on pods/portforward; the websocket upgrade is a GET,
// authorized as get and then also as create. A role for kubectl
// port-forward therefore grants both verbs (kubectl falls back to SPDY
// after a refused websocket upgrade, so create alone works for it, one
// round trip later).
package cluster
