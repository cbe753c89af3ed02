package envoyadmin

import (
	"bytes"
	"encoding/base64"
	"strings"
	"sync"

	udpaannotations "github.com/cncf/xds/go/udpa/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/triage-sh/triage/internal/redact"
)

// What counts as a secret. The typed Scrub and the JSON scrubber share these
// rules so that the typed dump and the raw JSON redact the same values:
//
//   - every field Envoy's API marks (udpa.annotations.sensitive): private
//     keys, key passwords, PKCS12 bundles, session ticket keys, generic
//     secrets, Redis and basic-auth credentials, API keys, AWS credentials,
//     private key provider configs, ext_authz context extensions;
//   - string, bytes and DataSource fields whose names say secret but that the
//     API does not mark: gRPC call credentials (access_token, json_key,
//     google_refresh_token, ...), OAuth client secrets, HMAC secrets, tokens;
//   - in schemaless JSON (google.protobuf.Struct, TypedStruct values, types
//     go-control-plane does not know): string values under keys that say
//     secret (password, token, secret, private key, credential, ...);
//   - anywhere: a string holding a PEM private key, or bytes (base64) holding
//     one;
//   - the value of a header (request_headers_to_add and the like) whose name
//     looks secret (authorization, cookie, x-api-key, ...).
//
// A sensitive DataSource keeps its filename and environment variable name and
// loses inline_bytes and inline_string. A sensitive message of another type
// loses every string and bytes value inside it.

const (
	redactedString = redact.Redacted // "[redacted]", what Envoy itself prints
	// redactedBytes is "[redacted]" base64-encoded, the JSON form of a bytes
	// field; Envoy prints the same for a redacted inline_bytes.
	redactedBytes = "W3JlZGFjdGVkXQ=="
)

var (
	redactedStringJSON = []byte(`"` + redactedString + `"`)
	redactedBytesJSON  = []byte(`"` + redactedBytes + `"`)
)

// secretFieldNames are field names (lower case, without '_') that hold
// secrets when the field is a string, bytes or DataSource.
var secretFieldNames = map[string]bool{
	"privatekey": true, "password": true, "passwd": true, "passphrase": true, "pkcs12": true,
	"secret": true, "secrets": true, "secretdata": true, "clientsecret": true, "hmacsecret": true,
	"sharedsecret": true, "accesstoken": true, "googlerefreshtoken": true, "jsonkey": true,
	"authorizationtoken": true, "token": true, "backendtoken": true, "secretaccesskey": true,
	"sessiontoken": true, "apikey": true, "signingkey": true, "authpassword": true,
	"downstreamauthpassword": true, "downstreamauthpasswords": true, "bearertokenvalue": true,
}

// schemalessSecretWords mark a key in schemaless JSON as secret when its
// normalized form contains one of them...
var schemalessSecretWords = []string{"password", "passwd", "passphrase", "secret", "token", "privatekey", "apikey", "credential", "hmac", "authorization", "pkcs12"}

// ...unless it names something rather than holding it.
var schemalessNotSecretSuffixes = []string{"name", "names", "path", "file", "filename", "type", "uri", "url", "header", "headers", "prefix", "suffix", "ttl", "expiry", "expiresin", "lifetime", "endpoint", "provider", "source", "bucket", "count", "len", "length", "size", "seconds", "format", "cookie"}

// normalize lower-cases name and drops '_', '-' and '.', so snake_case and
// lowerCamelCase JSON names compare equal.
func normalize(name string) string {
	var buf [64]byte
	b := buf[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '-' || c == '.':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// schemalessSecretKey reports whether a key in schemaless JSON holds a secret.
func schemalessSecretKey(key string) bool {
	n := normalize(key)
	if secretFieldNames[n] {
		return true
	}
	hit := false
	for _, w := range schemalessSecretWords {
		if strings.Contains(n, w) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	for _, s := range schemalessNotSecretSuffixes {
		if strings.HasSuffix(n, s) {
			return false
		}
	}
	return true
}

// sensitiveHeaders are header names whose values are credentials.
var sensitiveHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"x-api-key": true, "api-key": true, "x-auth-token": true, "x-amz-security-token": true,
}

func sensitiveHeader(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	return sensitiveHeaders[n] || redact.IsSecretName(n)
}

var pemKey = []byte("PRIVATE KEY")

// base64 of "-----BEGIN", how every base64-encoded PEM block starts.
var b64PEM = []byte("LS0tLS1CRUdJTi")

// holdsPrivateKey reports whether a string (as it appears in JSON, or
// decoded) holds a PEM private key, as text or base64.
func holdsPrivateKey(s []byte) bool {
	if bytes.Contains(s, pemKey) {
		return true
	}
	if i := bytes.Index(s, b64PEM); i >= 0 {
		enc := s[i:]
		if j := bytes.IndexAny(enc, "\"\\ \n"); j >= 0 {
			enc = enc[:j]
		}
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		n, _ := base64.StdEncoding.Decode(dec, enc)
		if n == 0 {
			n, _ = base64.RawStdEncoding.Decode(dec, bytes.TrimRight(enc, "="))
		}
		return bytes.Contains(dec[:n], pemKey)
	}
	return false
}

type msgKind uint8

const (
	mkNormal      msgKind = iota
	mkAny                 // google.protobuf.Any
	mkSchemaless          // Struct, Value, ListValue
	mkScalarWKT           // JSON scalar: Duration, Timestamp, FieldMask, wrappers
	mkEmptyWKT            // google.protobuf.Empty: {}
	mkDataSource          // envoy.config.core.v3.DataSource (and v2's)
	mkHeaderValue         // envoy.config.core.v3.HeaderValue (and v2's)
	mkNode                // envoy.config.core.v3.Node: its build version names the Envoy
)

type msgInfo struct {
	md   protoreflect.MessageDescriptor
	kind msgKind
	// stringWrapper: StringValue or BytesValue (bytesWrapper).
	stringWrapper, bytesWrapper bool
	// fields by proto name and JSON name.
	fields map[string]*fieldInfo
}

type fieldInfo struct {
	fd protoreflect.FieldDescriptor
	// secret: the field's value is a secret (annotated, or by name).
	secret bool
	// inline: a DataSource's inline_bytes or inline_string.
	inline bool
	// buildVersion: Node.build_version (v2) or its hidden v3 form.
	buildVersion bool
}

var msgInfos sync.Map // protoreflect.FullName -> *msgInfo

func infoFor(md protoreflect.MessageDescriptor) *msgInfo {
	if v, ok := msgInfos.Load(md.FullName()); ok {
		return v.(*msgInfo)
	}
	mi := &msgInfo{md: md, fields: map[string]*fieldInfo{}}
	switch md.FullName() {
	case "google.protobuf.Any":
		mi.kind = mkAny
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		mi.kind = mkSchemaless
	case "google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.FieldMask",
		"google.protobuf.BoolValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.FloatValue",
		"google.protobuf.DoubleValue":
		mi.kind = mkScalarWKT
	case "google.protobuf.StringValue":
		mi.kind, mi.stringWrapper = mkScalarWKT, true
	case "google.protobuf.BytesValue":
		mi.kind, mi.bytesWrapper = mkScalarWKT, true
	case "google.protobuf.Empty":
		mi.kind = mkEmptyWKT
	case "envoy.config.core.v3.DataSource", "envoy.api.v2.core.DataSource":
		mi.kind = mkDataSource
	case "envoy.config.core.v3.HeaderValue", "envoy.api.v2.core.HeaderValue":
		mi.kind = mkHeaderValue
	case "envoy.config.core.v3.Node", "envoy.api.v2.core.Node":
		mi.kind = mkNode
	}
	fs := md.Fields()
	for i := 0; i < fs.Len(); i++ {
		fd := fs.Get(i)
		fi := &fieldInfo{fd: fd, secret: secretField(fd)}
		if mi.kind == mkDataSource && (fd.Name() == "inline_bytes" || fd.Name() == "inline_string") {
			fi.inline = true
		}
		if mi.kind == mkNode && (fd.Name() == "build_version" || fd.Name() == "hidden_envoy_deprecated_build_version") {
			fi.buildVersion = true
		}
		mi.fields[string(fd.Name())] = fi
		mi.fields[fd.JSONName()] = fi
	}
	v, _ := msgInfos.LoadOrStore(md.FullName(), mi)
	return v.(*msgInfo)
}

// secretField reports whether a field holds a secret.
func secretField(fd protoreflect.FieldDescriptor) bool {
	if opts := fd.Options(); opts != nil && proto.HasExtension(opts, udpaannotations.E_Sensitive) {
		if s, _ := proto.GetExtension(opts, udpaannotations.E_Sensitive).(bool); s {
			return true
		}
	}
	if !secretFieldNames[normalize(string(fd.Name()))] {
		return false
	}
	vd := fd
	if fd.IsMap() {
		vd = fd.MapValue()
	}
	switch vd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return true
	case protoreflect.MessageKind:
		switch vd.Message().FullName() {
		case "envoy.config.core.v3.DataSource", "envoy.api.v2.core.DataSource",
			"google.protobuf.StringValue", "google.protobuf.BytesValue":
			return true
		}
	}
	return false
}
