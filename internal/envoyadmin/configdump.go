package envoyadmin

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// ConfigDump is a decoded /config_dump.
type ConfigDump struct {
	// Dump is the typed dump. An Any whose type go-control-plane does not
	// know keeps its type URL with an empty value; its JSON is in Unknown.
	Dump *adminv3.ConfigDump
	// Raw is the JSON as Envoy sent it, with secrets scrubbed.
	Raw []byte
	// Unknown lists the typed configs whose type is unknown, kept as JSON.
	Unknown []UnknownType
	// Legacy lists the v2 type URLs (envoy.api.v2.*, envoy.config.*.v2.*)
	// found inside the v3 dump, with how many of each. Envoy 1.13-1.16 sent
	// v2 resources in v3 dumps; they decode as their v2 types, and
	// envoyexplain reads them as their wire-compatible v3 equivalents.
	Legacy []TypeCount
	// Redacted is how many secret values Scrub replaced.
	Redacted int
}

// UnknownType is one typed config whose type URL go-control-plane does not
// register (e.g. Istio's own filters), kept as JSON.
type UnknownType struct {
	// Path locates it in the dump, e.g.
	// configs[2].dynamic_listeners[0].active_state.listener.filter_chains[0].filters[1].typed_config
	Path    string `json:"path"`
	TypeURL string `json:"type_url"`
	// JSON is the object as it appears in Raw (scrubbed).
	JSON json.RawMessage `json:"json"`
}

// TypeCount is a type URL and how often it occurs.
type TypeCount struct {
	TypeURL string `json:"type_url"`
	Count   int    `json:"count"`
}

// UnsupportedVersionError reports a pre-v3 config dump (envoy.admin.v2alpha
// types, Envoy 1.12 and older). Reading it as v3 would misread it.
type UnsupportedVersionError struct {
	// TypeURLs are the v2alpha admin types found.
	TypeURLs []string
	// EnvoyVersion is the build version from the dump's bootstrap, if found.
	EnvoyVersion string
}

func (e *UnsupportedVersionError) Error() string {
	v := ""
	if e.EnvoyVersion != "" {
		v = " (Envoy " + e.EnvoyVersion + ")"
	}
	return fmt.Sprintf("config dump uses the pre-v3 admin API%s: %s; triage reads v3 config dumps only (Envoy 1.13 and newer, Istio 1.5 and newer); upgrade the proxy or read this dump with a tool of its era",
		v, strings.Join(e.TypeURLs, ", "))
}

const typePrefix = "type.googleapis.com/"

// envoyVersion extracts the version from a build version string such as
// "a975561b98.../1.11.0-dev/Clean/RELEASE/BoringSSL".
func envoyVersion(build string) string {
	parts := strings.Split(build, "/")
	if len(parts) >= 2 && parts[1] != "" {
		return parts[1]
	}
	return build
}

// v2alphaBuildVersion finds the node's build version in a v2alpha dump,
// whose types are not linked in, so that the error can name the Envoy.
func v2alphaBuildVersion(raw []byte) string {
	var d struct {
		Configs []struct {
			Bootstrap struct {
				Node struct {
					BuildVersion      string `json:"build_version"`
					BuildVersionCamel string `json:"buildVersion"`
				} `json:"node"`
			} `json:"bootstrap"`
		} `json:"configs"`
	}
	if json.Unmarshal(raw, &d) != nil {
		return ""
	}
	for _, c := range d.Configs {
		if v := c.Bootstrap.Node.BuildVersion + c.Bootstrap.Node.BuildVersionCamel; v != "" {
			return v
		}
	}
	return ""
}

// Decode scrubs and decodes a /config_dump answer (snake_case or
// lowerCamelCase, any Envoy from 1.13). Unknown types are kept as JSON and
// listed, never fatal; fields newer than go-control-plane are skipped. A
// v2alpha dump is an *Error of KindUnsupported wrapping an
// *UnsupportedVersionError.
func Decode(raw []byte) (*ConfigDump, error) {
	res, err := walkJSON(raw, configDumpDesc(), true)
	if err != nil {
		return nil, &Error{Kind: KindDecode, Msg: "config dump is not valid JSON", Err: err}
	}
	if len(res.v2alpha) > 0 {
		if res.buildVersion == "" {
			res.buildVersion = v2alphaBuildVersion(raw)
		}
		ue := &UnsupportedVersionError{TypeURLs: res.v2alpha, EnvoyVersion: envoyVersion(res.buildVersion)}
		return nil, &Error{Kind: KindUnsupported, Msg: ue.Error(), Err: ue}
	}
	d := &adminv3.ConfigDump{}
	if err := unmarshalOpts().Unmarshal(res.out, d); err != nil {
		return nil, &Error{Kind: KindDecode, Msg: "config dump does not decode as envoy.admin.v3.ConfigDump", Err: err}
	}
	return &ConfigDump{Dump: d, Raw: res.out, Unknown: res.unknown, Legacy: res.legacyCounts(), Redacted: res.redacted}, nil
}

var configDumpDesc = sync.OnceValue(func() protoreflect.MessageDescriptor {
	return (&adminv3.ConfigDump{}).ProtoReflect().Descriptor()
})

// IsLegacyType reports whether a type URL names a v2 (pre-v3) Envoy API type
// other than the admin dump wrappers.
func IsLegacyType(typeURL string) bool {
	n := strings.TrimPrefix(typeURL, typePrefix)
	if strings.HasPrefix(n, "envoy.admin.") {
		return false
	}
	return strings.HasPrefix(n, "envoy.api.v2.") ||
		(strings.HasPrefix(n, "envoy.config.") && (strings.Contains(n, ".v2.") || strings.Contains(n, ".v2alpha.")))
}

// resolver resolves type URLs from the global registry (the types of
// types.go), v2 resource types as their v3 successors (LegacyV3). An unknown type
// resolves to an empty placeholder message, so with DiscardUnknown its fields
// are skipped and the Any keeps its type URL with an empty value.
type resolver struct{}

func newResolver() resolver { return resolver{} }

func (resolver) FindMessageByName(n protoreflect.FullName) (protoreflect.MessageType, error) {
	return protoregistry.GlobalTypes.FindMessageByName(n)
}

func (resolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if err == nil {
		return mt, nil
	}
	name := url
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if v3, ok := LegacyV3[name]; ok {
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(v3)); err == nil {
			return mt, nil
		}
	}
	return placeholderType(), nil
}

// LegacyV3 maps the v2 resource types that v3 dumps of older Envoys (Istio
// 1.5 to 1.7) still hold to their v3 successors. Envoy's v2 and v3 APIs are
// wire- and JSON-compatible but for a few renamed fields (Envoy itself
// upgraded v2 resources by re-parsing them as v3), so a v2 resource decodes
// as its v3 type, keeping its v2 type URL; fields v3 removed are dropped.
var LegacyV3 = map[string]string{
	"envoy.api.v2.Listener":                                                        "envoy.config.listener.v3.Listener",
	"envoy.api.v2.Cluster":                                                         "envoy.config.cluster.v3.Cluster",
	"envoy.api.v2.RouteConfiguration":                                              "envoy.config.route.v3.RouteConfiguration",
	"envoy.api.v2.ClusterLoadAssignment":                                           "envoy.config.endpoint.v3.ClusterLoadAssignment",
	"envoy.api.v2.ScopedRouteConfiguration":                                        "envoy.config.route.v3.ScopedRouteConfiguration",
	"envoy.api.v2.auth.Secret":                                                     "envoy.extensions.transport_sockets.tls.v3.Secret",
	"envoy.api.v2.auth.DownstreamTlsContext":                                       "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
	"envoy.api.v2.auth.UpstreamTlsContext":                                         "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
	"envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager": "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
	"envoy.config.filter.network.tcp_proxy.v2.TcpProxy":                            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
	"envoy.config.filter.http.router.v2.Router":                                    "envoy.extensions.filters.http.router.v3.Router",
	"envoy.config.filter.http.fault.v2.HTTPFault":                                  "envoy.extensions.filters.http.fault.v3.HTTPFault",
	"envoy.config.filter.http.cors.v2.Cors":                                        "envoy.extensions.filters.http.cors.v3.Cors",
}

func (resolver) FindExtensionByName(n protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(n)
}

func (resolver) FindExtensionByNumber(m protoreflect.FullName, n protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(m, n)
}

// Resolver returns the resolver Decode uses, for protojson.MarshalOptions
// when re-encoding a typed dump that holds unknown types: they marshal as
// {"@type": url} without content (their JSON is in ConfigDump.Unknown).
func Resolver() interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
} {
	return resolver{}
}

// PlaceholderName is the message name unknown types resolve to.
const PlaceholderName = "triage.envoyadmin.UnknownType"

var placeholderType = sync.OnceValue(func() protoreflect.MessageType {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        protoString("triage/envoyadmin/unknown.proto"),
		Package:     protoString("triage.envoyadmin"),
		Syntax:      protoString("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: protoString("UnknownType")}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		panic(err)
	}
	return dynamicpb.NewMessageType(fd.Messages().Get(0))
})

func protoString(s string) *string { return &s }

// Marshal encodes a typed dump (or any admin message) as JSON with proto
// field names, resolving types as Decode does.
func Marshal(m protoreflect.ProtoMessage) ([]byte, error) {
	return protojson.MarshalOptions{UseProtoNames: true, Resolver: resolver{}}.Marshal(m)
}

func sortedCounts(m map[string]int) []TypeCount {
	out := make([]TypeCount, 0, len(m))
	for k, v := range m {
		out = append(out, TypeCount{TypeURL: k, Count: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TypeURL < out[j].TypeURL })
	return out
}
