// Package adminurl parses an Envoy admin address as triage accepts it. It
// is its own package so that the sidecar can check --envoy-admin at start
// without linking Envoy's API types (see envoyadmin's types.go).
package adminurl

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Target is a parsed admin address.
type Target struct {
	// Scheme is "http", "https" or "unix".
	Scheme string
	// Host is host:port for http and https.
	Host string
	// Path is the URL path prefix for http and https.
	Path string
	// Socket is the Unix socket path for unix.
	Socket string
}

// Parse checks raw: http://host:port or https://... (loopback unless
// allowRemote: Envoy's admin is unauthenticated), or unix:///path.
func Parse(raw string, allowRemote bool) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("envoy admin URL does not parse: %v", err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return Target{}, fmt.Errorf("envoy admin URL has no host; want http://127.0.0.1:15000 or unix:///path")
		}
		if !allowRemote && !IsLoopback(u.Hostname()) {
			return Target{}, fmt.Errorf("envoy admin address %s is not loopback; Envoy's admin is unauthenticated, so triage reaches it only on localhost or a Unix socket", u.Host)
		}
		return Target{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")}, nil
	case "unix":
		path := u.Path
		if u.Host != "" { // unix://relative/path
			path = u.Host + u.Path
		}
		if path == "" {
			return Target{}, fmt.Errorf("unix socket URL has no path; want unix:///path/to/admin.sock")
		}
		return Target{Scheme: "unix", Socket: path}, nil
	}
	return Target{}, fmt.Errorf("envoy admin URL scheme %q is not http, https or unix", u.Scheme)
}

// IsLoopback reports whether host is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
