package adminurl

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		raw    string
		remote bool
		want   Target
		err    string
	}{
		{raw: "http://127.0.0.1:15000", want: Target{Scheme: "http", Host: "127.0.0.1:15000"}},
		{raw: "http://localhost:9901/", want: Target{Scheme: "http", Host: "localhost:9901"}},
		{raw: "https://[::1]:9901/admin", want: Target{Scheme: "https", Host: "[::1]:9901", Path: "/admin"}},
		{raw: "unix:///var/run/envoy/admin.sock", want: Target{Scheme: "unix", Socket: "/var/run/envoy/admin.sock"}},
		{raw: "unix://relative/admin.sock", want: Target{Scheme: "unix", Socket: "relative/admin.sock"}},
		{raw: "http://10.1.2.3:15000", err: "not loopback"},
		{raw: "http://10.1.2.3:15000", remote: true, want: Target{Scheme: "http", Host: "10.1.2.3:15000"}},
		{raw: "http://envoy.example:15000", err: "not loopback"},
		{raw: "ftp://127.0.0.1:15000", err: `scheme "ftp"`},
		{raw: "http://", err: "no host"},
		{raw: "unix://", err: "no path"},
		{raw: "http://[::1", err: "does not parse"},
	}
	for _, c := range cases {
		got, err := Parse(c.raw, c.remote)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %+v, %v; want an error with %q", c.raw, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.raw, got, err, c.want)
		}
	}
}
