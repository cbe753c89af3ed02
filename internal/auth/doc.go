// Package auth holds the sidecar's authentication and authorization
// building blocks. It is a library: the gRPC server calls it, it knows
// nothing of gRPC.
//
//   - roles.go: the four cumulative roles (viewer, profiler, capturer,
//     operator) and the permissions each grants.
//   - policy.go: the YAML policy that maps identities (exact or glob) to
//     roles; default deny.
//   - tokens.go: the bearer-token file of SHA-256 hashes, compared in
//     constant time.
//   - watch.go: reloading of files on access (no goroutine), keeping the
//     last good value when a new file is bad.
//   - tls.go: the server's TLS 1.3 configuration with certificate, key and
//     client CA reloaded from disk; identity from a client certificate;
//     the CLI's client configuration.
//   - certs.go: a small certificate authority for development mode and
//     tests.
//   - kube*.go: Kubernetes ServiceAccount tokens (offline JWKS or TokenReview/SubjectAccessReview) and the tier policy.
//   - dev.go: development mode, which creates a CA, a server certificate,
//     an operator client certificate and a policy once in a directory.
//
// Identity is a string: a SPIFFE ID, DNS name or common name from a verified
// client certificate, or the identity a bearer token is bound to. The policy
// turns an identity into roles; Grants turns roles and a method's permission
// into a decision.
package auth
