// Package envoyexplain explains an Envoy config dump: what Envoy listens on,
// how each listener's HTTP connection managers route, to which clusters, and
// those clusters' endpoints with health; which resources the control plane
// sent that Envoy rejected or still warms; and the failure shapes worth a
// finding (no healthy host, outlier ejections, routes to missing clusters,
// expiring certificates, circuit-breaker overflow, upstream resets).
//
// It also answers "where does this request go?" (Match) by walking the typed
// route configuration as Envoy does.
//
// The package is pure: it reads decoded admin output (envoyadmin) and does
// no I/O. Its output types are plain structs with JSON tags that map one to
// one onto proto messages.
package envoyexplain

import (
	"fmt"
	"strings"
)

// Explanation is what Explain returns.
type Explanation struct {
	// Counts are the resources as found in the dump.
	Counts Counts `json:"counts"`
	// Findings are the failure shapes found, most severe first.
	Findings []Finding `json:"findings"`
	// Node is who the Envoy is, from the bootstrap.
	Node *Node `json:"node,omitempty"`
	// Listeners, in dump order (static first).
	Listeners []Listener `json:"listeners"`
	// RouteConfigs: static, RDS, then inline (in listener order).
	RouteConfigs []RouteConfig `json:"route_configs"`
	// Clusters, in dump order (static first), with their endpoints.
	Clusters []Cluster `json:"clusters"`
	// EDSOnly are endpoint assignments in the dump's EDS section for
	// clusters the dump does not list (an EDS-only or filtered dump).
	EDSOnly []Cluster `json:"eds_only,omitempty"`
	// Secrets from SDS and static config (names and certificates; never
	// key material).
	Secrets []Secret `json:"secrets,omitempty"`
	// Certificates from /certs and from the dump's secrets, deduplicated.
	Certificates []Certificate `json:"certificates,omitempty"`
	// Unknown are typed configs whose type is unknown (kept as JSON by
	// envoyadmin, not explained).
	Unknown []Unknown `json:"unknown,omitempty"`
}

// Counts are the resources as found in the dump, static and dynamic
// together. A dynamic resource with both an active and a warming version
// counts once, by its active version.
type Counts struct {
	// Listeners: static and dynamic listeners (distinct names).
	Listeners int `json:"listeners"`
	// RouteConfigs: the routes section's static route configurations
	// (Envoy lists there those inline in HTTP connection managers) and
	// dynamic (RDS) ones, plus any inline one the section lacks (a partial
	// dump).
	RouteConfigs int `json:"route_configs"`
	// VirtualHosts and Routes in all those route configurations.
	VirtualHosts int `json:"virtual_hosts"`
	Routes       int `json:"routes"`
	// Clusters: static, dynamic active and dynamic warming (distinct names).
	Clusters int `json:"clusters"`
	// Endpoints: the lb_endpoints of each cluster's load assignment, from
	// the EDS section (include_eds) when it has the cluster, else from the
	// cluster's own load_assignment; plus EDS assignments for clusters the
	// dump does not list.
	Endpoints int `json:"endpoints"`
	// HealthyEndpoints: those whose EDS health is HEALTHY or UNKNOWN (Envoy
	// routes to both).
	HealthyEndpoints int `json:"healthy_endpoints"`
	// Secrets: static, dynamic active and dynamic warming secrets.
	Secrets int `json:"secrets"`
}

// Severity orders findings. Values match triage.v1.Severity.
type Severity int

// Severities.
const (
	Info     Severity = 1
	Warning  Severity = 2
	Critical Severity = 3
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return "unspecified"
}

// MarshalText writes "info", "warning" or "critical".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (s *Severity) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "info":
		*s = Info
	case "warning":
		*s = Warning
	case "critical":
		*s = Critical
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

// Finding is a known failure shape, like sidecar explain's findings:
// Title maps to triage.v1.Finding.message, Evidence to evidence.
type Finding struct {
	Severity Severity `json:"severity"`
	// Code is a stable kebab-case id, e.g. "envoy-resource-rejected".
	Code string `json:"code"`
	// Title is one line for a human.
	Title string `json:"title"`
	// Detail explains what it means.
	Detail string `json:"detail,omitempty"`
	// Evidence are the facts behind it, e.g. "upstream_cx_overflow=12".
	Evidence []string `json:"evidence,omitempty"`
	// Resource names what it is about, e.g. "cluster outbound|9080||details".
	Resource string `json:"resource,omitempty"`
	// Fix says what to do.
	Fix string `json:"fix,omitempty"`
}

// Node is the Envoy's identity from its bootstrap.
type Node struct {
	ID           string `json:"id,omitempty"`
	Cluster      string `json:"cluster,omitempty"`
	EnvoyVersion string `json:"envoy_version,omitempty"`
	// IstioVersion is the node metadata's ISTIO_VERSION, when present.
	IstioVersion string `json:"istio_version,omitempty"`
}

// Resource is how a resource came to Envoy and its state.
type Resource struct {
	// Source: "static", "dynamic" (xDS) or "inline" (inside another).
	Source string `json:"source"`
	// State: "active", "warming", "draining" or "rejected" (only an
	// error_state, nothing accepted).
	State string `json:"state,omitempty"`
	// Version is the xDS version_info of the accepted resource.
	Version string `json:"version,omitempty"`
	// LastUpdated is when Envoy accepted it, RFC 3339.
	LastUpdated string `json:"last_updated,omitempty"`
	// Rejected is set when Envoy refused the control plane's last update.
	Rejected *Rejection `json:"rejected,omitempty"`
	// Legacy is the v2 type URL when the resource came in a v2 type.
	Legacy string `json:"legacy,omitempty"`
}

// Rejection is a resource update Envoy refused (error_state).
type Rejection struct {
	Details     string `json:"details"`
	Version     string `json:"version,omitempty"`
	LastAttempt string `json:"last_attempt,omitempty"`
}

// Listener is one listener.
type Listener struct {
	Name     string `json:"name"`
	Address  string `json:"address,omitempty"`
	Resource        // source, state, version
	// Warming is set when a warming version waits beside the active one.
	Warming      bool          `json:"warming,omitempty"`
	FilterChains []FilterChain `json:"filter_chains,omitempty"`
	// ListenerFilters are the listener filter names (tls_inspector, ...).
	ListenerFilters []string `json:"listener_filters,omitempty"`
}

// FilterChain is one filter chain of a listener.
type FilterChain struct {
	Name string `json:"name,omitempty"`
	// Match summarises the filter_chain_match, e.g. "port=9080 tls alpn=h2".
	Match string `json:"match,omitempty"`
	// Default is true for the listener's default_filter_chain.
	Default bool `json:"default,omitempty"`
	// TLS is true when the chain terminates TLS (a transport socket).
	TLS bool `json:"tls,omitempty"`
	// Filters are the network filter names in order.
	Filters []string                `json:"filters,omitempty"`
	HTTP    []HTTPConnectionManager `json:"http,omitempty"`
	TCP     []TCPProxy              `json:"tcp,omitempty"`
}

// HTTPConnectionManager is an HCM's routing.
type HTTPConnectionManager struct {
	StatPrefix string `json:"stat_prefix,omitempty"`
	// RouteConfig is the RDS route config name or the inline one's name.
	RouteConfig string `json:"route_config,omitempty"`
	// Via is "rds", "inline" or "scoped".
	Via         string   `json:"via"`
	HTTPFilters []string `json:"http_filters,omitempty"`
}

// TCPProxy is a tcp_proxy filter's target.
type TCPProxy struct {
	StatPrefix       string            `json:"stat_prefix,omitempty"`
	Cluster          string            `json:"cluster,omitempty"`
	WeightedClusters []WeightedCluster `json:"weighted_clusters,omitempty"`
}

// WeightedCluster is one target of a weighted split.
type WeightedCluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

// RouteConfig is one route configuration.
type RouteConfig struct {
	Name     string `json:"name"`
	Resource        // source (static, dynamic, inline), version
	// UsedBy are the listeners whose HCMs use it.
	UsedBy       []string      `json:"used_by,omitempty"`
	VirtualHosts []VirtualHost `json:"virtual_hosts,omitempty"`
}

// VirtualHost is one virtual host.
type VirtualHost struct {
	Name    string   `json:"name"`
	Domains []string `json:"domains"`
	Routes  []Route  `json:"routes"`
}

// Route is one route.
type Route struct {
	Name string `json:"name,omitempty"`
	// Match describes the match, e.g. "prefix=/api header[x-user]=exact:a".
	Match string `json:"match"`
	// Action: "cluster", "weighted_clusters", "cluster_header",
	// "cluster_specifier_plugin", "redirect", "direct_response",
	// "filter_action" or "non_forwarding".
	Action           string            `json:"action"`
	Cluster          string            `json:"cluster,omitempty"`
	WeightedClusters []WeightedCluster `json:"weighted_clusters,omitempty"`
	// ClusterHeader is the header naming the cluster (cluster_header).
	ClusterHeader string `json:"cluster_header,omitempty"`
	// Redirect describes a redirect, e.g. "https://host/path 301".
	Redirect string `json:"redirect,omitempty"`
	// DirectResponseStatus is a direct response's HTTP status.
	DirectResponseStatus uint32 `json:"direct_response_status,omitempty"`
}

// Cluster is one cluster with its endpoints.
type Cluster struct {
	Name     string `json:"name"`
	Resource        // source, state, version
	// Type: STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST, or the
	// custom cluster type's name.
	Type           string `json:"type"`
	EDSServiceName string `json:"eds_service_name,omitempty"`
	// EndpointsFrom: "eds" (the dump's EDS section), "config" (the cluster's
	// load_assignment), "live" (/clusters) or "" (none known).
	EndpointsFrom string     `json:"endpoints_from,omitempty"`
	Endpoints     []Endpoint `json:"endpoints,omitempty"`
	Total         int        `json:"total"`
	Healthy       int        `json:"healthy"`
	// OutlierEjected counts hosts /clusters shows as ejected.
	OutlierEjected int `json:"outlier_ejected,omitempty"`
	// ReferencedBy counts routes and TCP proxies that target it.
	ReferencedBy int `json:"referenced_by,omitempty"`
}

// Endpoint is one host of a cluster.
type Endpoint struct {
	Address string `json:"address"`
	// Health is the EDS health status (HEALTHY, UNHEALTHY, DRAINING,
	// TIMEOUT, DEGRADED, UNKNOWN) or, from /clusters, the failed checks.
	Health   string `json:"health"`
	Healthy  bool   `json:"healthy"`
	Weight   uint32 `json:"weight,omitempty"`
	Priority uint32 `json:"priority,omitempty"`
	Locality string `json:"locality,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// Flags are /clusters' health flags that are set, e.g.
	// "failed_outlier_check".
	Flags []string `json:"flags,omitempty"`
}

// Secret is one SDS or static secret, without key material.
type Secret struct {
	Name     string `json:"name"`
	Resource        // source, state, version
	// Kind: tls_certificate, validation_context, session_ticket_keys,
	// generic_secret.
	Kind string `json:"kind,omitempty"`
}

// Certificate is one certificate Envoy holds.
type Certificate struct {
	// Source: "certs" (/certs) or "secret:NAME".
	Source       string   `json:"source"`
	Subject      string   `json:"subject,omitempty"`
	SerialNumber string   `json:"serial_number,omitempty"`
	SANs         []string `json:"sans,omitempty"`
	CA           bool     `json:"ca,omitempty"`
	NotBefore    string   `json:"not_before,omitempty"`
	NotAfter     string   `json:"not_after,omitempty"`
	// DaysLeft until NotAfter at the explanation's time; negative when
	// expired.
	DaysLeft int `json:"days_left"`
}

// Unknown is a typed config of an unknown type.
type Unknown struct {
	Path    string `json:"path"`
	TypeURL string `json:"type_url"`
}
