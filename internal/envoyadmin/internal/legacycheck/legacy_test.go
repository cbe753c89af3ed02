package legacycheck

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/envoyproxy/go-control-plane/envoy/api/v2"
	_ "github.com/envoyproxy/go-control-plane/envoy/api/v2/auth"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/filter/http/cors/v2"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/filter/http/fault/v2"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/filter/http/router/v2"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/filter/network/http_connection_manager/v2"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/filter/network/tcp_proxy/v2"

	"github.com/triage-sh/triage/internal/envoyadmin"
)

// TestLegacyWireCompatible checks the premise of reading v2 resources as
// v3: for each mapped pair, every field both have (by name) has the same
// number and kind, recursively, and no v2 field's number means another
// field in v3.
func TestLegacyWireCompatible(t *testing.T) {
	// Envoy's own renames between v2 and v3: same number, same meaning.
	known := map[string]string{
		"envoy.api.v2.core.HealthCheck.HttpHealthCheck.receive":   "singular Payload became repeated: wire-compatible",
		"envoy.api.v2.Cluster.drain_connections_on_host_removal":  "renamed ignore_health_on_host_removal in v3",
		"envoy.api.v2.route.RouteAction.host_rewrite":             "renamed host_rewrite_literal (same number 6) in v3",
		"envoy.api.v2.route.RouteAction.auto_host_rewrite_header": "renamed host_rewrite_header in v3",
	}
	type pair struct{ v2, v3 protoreflect.FullName }
	seen := map[pair]bool{}
	var problems []string
	var check func(a, b protoreflect.MessageDescriptor, path string)
	check = func(a, b protoreflect.MessageDescriptor, path string) {
		p := pair{a.FullName(), b.FullName()}
		if seen[p] {
			return
		}
		seen[p] = true
		fs := a.Fields()
		for i := 0; i < fs.Len(); i++ {
			f2 := fs.Get(i)
			if known[string(f2.FullName())] != "" {
				continue
			}
			f3 := b.Fields().ByName(f2.Name())
			if f3 == nil {
				if o := b.Fields().ByNumber(f2.Number()); o != nil {
					problems = append(problems, fmt.Sprintf("%s.%s: v2 field %d is v3's %s", path, f2.Name(), f2.Number(), o.Name()))
				}
				continue
			}
			if f3.Number() != f2.Number() || f3.Kind() != f2.Kind() || f3.Cardinality() != f2.Cardinality() {
				problems = append(problems, fmt.Sprintf("%s.%s: v2 %d %v %v, v3 %d %v %v", path, f2.Name(), f2.Number(), f2.Kind(), f2.Cardinality(), f3.Number(), f3.Kind(), f3.Cardinality()))
				continue
			}
			if f2.Message() != nil && f3.Message() != nil && !f2.IsMap() {
				check(f2.Message(), f3.Message(), path+"."+string(f2.Name()))
			}
		}
	}
	for v2, v3 := range envoyadmin.LegacyV3 {
		a, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(v2))
		if err != nil {
			t.Fatalf("%s: %v", v2, err)
		}
		b, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(v3))
		if err != nil {
			t.Fatalf("%s: %v", v3, err)
		}
		check(a.Descriptor(), b.Descriptor(), v2)
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d message pairs compared", len(seen))
}
