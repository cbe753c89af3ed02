package sidecar

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc"
	channelzpb "google.golang.org/grpc/channelz/grpc_channelz_v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// open is the permission of methods anyone may call: grpc.health.v1 only.
const open = triagev1.Permission(-1)

// externalPermissions are the services triage serves but does not define:
// their .proto files carry no (triage.v1.permission) option, so each gets
// one permission for all its methods here. Health is open; reflection and
// channelz (the sidecar's own connections and call counts) are reads.
var externalPermissions = map[string]triagev1.Permission{
	healthpb.Health_ServiceDesc.ServiceName:     open,
	"grpc.reflection.v1.ServerReflection":       triagev1.Permission_PERMISSION_VIEW,
	"grpc.reflection.v1alpha.ServerReflection":  triagev1.Permission_PERMISSION_VIEW,
	channelzpb.Channelz_ServiceDesc.ServiceName: triagev1.Permission_PERMISSION_VIEW,
}

// permissionTable maps full method names ("/triage.v1.ExplainService/Explain")
// to the permission each requires.
type permissionTable map[string]triagev1.Permission

// buildPermissions reads the (triage.v1.permission) option of every method of
// every service registered on s. A triage method without one is an error, so
// the server never starts with a method that nothing protects.
func buildPermissions(s *grpc.Server) (permissionTable, error) {
	t := permissionTable{}
	var missing []string
	for svc, info := range s.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if p, ok := externalPermissions[svc]; ok {
				t[full] = p
				continue
			}
			p, err := methodPermission(svc, m.Name)
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s: %v", full, err))
				continue
			}
			t[full] = p
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("methods without a permission (add option (triage.v1.permission) in the .proto): %s", strings.Join(missing, "; "))
	}
	return t, nil
}

// methodPermission reads one method's permission option from the registry.
func methodPermission(service, method string) (triagev1.Permission, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return 0, fmt.Errorf("service descriptor not registered: %w", err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return 0, fmt.Errorf("%s is not a service", service)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return 0, fmt.Errorf("method not in descriptor")
	}
	p, _ := proto.GetExtension(md.Options(), triagev1.E_Permission).(triagev1.Permission)
	if p == triagev1.Permission_PERMISSION_UNSPECIFIED {
		return 0, fmt.Errorf("no permission declared")
	}
	return p, nil
}

// permissionName is the short name used in audit records and messages.
func permissionName(p triagev1.Permission) string {
	if p == open {
		return "open"
	}
	return strings.ToLower(strings.TrimPrefix(p.String(), "PERMISSION_"))
}
