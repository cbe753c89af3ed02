// Package legacycheck holds a test only: it links Envoy's v2 API packages,
// which the sidecar does not (see envoyadmin's types.go), to check that each
// v2 resource type in envoyadmin.LegacyV3 reads correctly as its v3 successor.
package legacycheck
