// Package worker is the Envoy capability's engine: it reads Envoy's admin
// (internal/envoyadmin) and explains it (internal/envoyexplain), serving
// EnvoyService. It runs in its own process, cmd/triage-envoy, started by the
// sidecar on the first Envoy call: the Envoy API types it must link cost
// about 12 MiB of RSS from the moment a process starts, which a sidecar
// without an Envoy, or whose Envoy nobody asks about, should not pay.
package worker
