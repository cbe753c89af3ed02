package envoyadmin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// secretDump is a config dump with secret material in every place Envoy can
// hold it, built on the SDS fixtures (whose keys Envoy already redacted).
type secretDump struct {
	raw     []byte
	needles map[string][]byte // what must not survive, by description
	public  map[string][]byte // what must survive
}

func genKey(t *testing.T, typ string) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var der []byte
	if typ == "PRIVATE KEY" {
		der, err = x509.MarshalPKCS8PrivateKey(k)
	} else {
		der, err = x509.MarshalECPrivateKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func newSecretDump(t *testing.T) *secretDump {
	sd := &secretDump{needles: map[string][]byte{}, public: map[string][]byte{}}
	secret := func(desc, v string) string {
		sd.needles[desc] = []byte(v)
		sd.needles[desc+" (base64)"] = []byte(b64(v))
		if strings.Contains(v, "PRIVATE KEY") {
			// A line of the key's body, as it appears in any encoding.
			lines := strings.Split(v, "\n")
			sd.needles[desc+" (body)"] = []byte(lines[1][:40])
		}
		return v
	}
	// The istio SDS fixture, with a real key where Envoy put "[redacted]".
	var istio map[string]any
	if err := json.Unmarshal(fixture(t, "istio-secrets_config_dump.json"), &istio); err != nil {
		t.Fatal(err)
	}
	sds := istio["configs"].([]any)[0].(map[string]any)
	def := sds["dynamic_active_secrets"].([]any)[0].(map[string]any)
	tc := def["secret"].(map[string]any)["tls_certificate"].(map[string]any)
	chain := tc["certificate_chain"].(map[string]any)["inline_bytes"].(string)
	sd.public["istio certificate chain"] = []byte(chain[:60])
	tc["private_key"] = map[string]any{"inline_bytes": b64(secret("istio key", genKey(t, "EC PRIVATE KEY")))}
	tc["password"] = map[string]any{"inline_string": secret("key password", "hunter2-key-password")}
	sds["dynamic_active_secrets"] = append(sds["dynamic_active_secrets"].([]any),
		map[string]any{"name": "tickets", "secret": map[string]any{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "tickets",
			"session_ticket_keys": map[string]any{"keys": []any{map[string]any{"inline_bytes": b64(secret("ticket key", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))}}}}},
		map[string]any{"name": "generic", "secret": map[string]any{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "generic",
			"generic_secret": map[string]any{"secret": map[string]any{"inline_string": secret("generic secret", "generic-s3cret-value")},
				"secrets": map[string]any{"hmac": map[string]any{"inline_bytes": b64(secret("generic map secret", "hmac-s3cret-bytes"))}}}}},
	)
	sds["static_secrets"] = []any{map[string]any{"name": "static", "secret": map[string]any{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "static",
		"tlsCertificate": map[string]any{"certificateChain": map[string]any{"filename": "/etc/certs/cert-chain.pem"},
			"privateKey": map[string]any{"inlineString": secret("camelCase key", genKey(t, "PRIVATE KEY"))}}}}}
	sd.public["certificate filename"] = []byte("/etc/certs/cert-chain.pem")
	istioJSON, _ := json.Marshal(sds)

	spire := fixture(t, "istio-spire-secrets_config_dump.json")
	var spireDoc map[string]any
	json.Unmarshal(spire, &spireDoc)
	spireJSON, _ := json.Marshal(spireDoc["configs"].([]any)[0])

	upKey := secret("upstream TLS key", genKey(t, "EC PRIVATE KEY"))
	grpcKey := secret("gRPC channel key", genKey(t, "PRIVATE KEY"))
	strayKey := secret("key in an unknown type", genKey(t, "RSA PRIVATE KEY"))
	sd.public["header name"] = []byte(`"x-request-source"`)
	raw := fmt.Sprintf(`{"configs": [
 {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {
   "node": {"id": "sidecar~10.0.0.1~app.ns~ns.svc.cluster.local"},
   "dynamic_resources": {"ads_config": {"api_type": "GRPC", "grpc_services": [{"google_grpc": {"target_uri": "istiod:15012", "stat_prefix": "ads",
     "channel_credentials": {"ssl_credentials": {"private_key": {"inline_string": %s}, "root_certs": {"filename": "/etc/ca.pem"}}},
     "call_credentials": [{"access_token": %s}, {"service_account_jwt_access": {"json_key": %s, "token_lifetime_seconds": 3600}}]}}]}}}},
 {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "static_clusters": [{"cluster": {
   "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
   "metadata": {"filter_metadata": {"app": {"db_password": %s, "owner": "team-a"}}},
   "transport_socket": {"name": "tls", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
     "common_tls_context": {"tls_certificates": [{"certificate_chain": {"filename": "/etc/certs/cert-chain.pem"}, "private_key": {"inline_string": %s}}]}}}}}]},
 {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [{"name": "l", "active_state": {"version_info": "1", "listener": {
   "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l",
   "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
   "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
     "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", "stat_prefix": "in",
     "route_config": {"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"],
        "request_headers_to_add": [{"header": {"key": "Authorization", "value": %s}}, {"header": {"key": "x-request-source", "value": "mesh"}}],
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
     "http_filters": [
       {"name": "basic", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth", "users": {"inline_string": %s}}},
       {"name": "istio.custom", "typed_config": {"@type": "type.googleapis.com/istio.example.v1.Custom", "api_token": %s, "blob": %s, "mode": "strict"}},
       {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}}}]},
 %s,
 %s
]}`,
		jsonString(grpcKey), jsonString(secret("gRPC access token", "ya29.access-token-value")), jsonString(secret("JWT json key", `{"private_key_id": "abc", "type": "service_account"}`)),
		jsonString(secret("struct password", "db-pass-in-metadata")), jsonString(upKey),
		jsonString(secret("authorization header", "Bearer tok-abc123-header")), jsonString(secret("basic auth users", "user1:{SHA}aGVsbG8gd29ybGQ=")),
		jsonString(secret("unknown type token", "unk-token-value-42")), jsonString(strayKey),
		istioJSON, spireJSON)
	sd.raw = []byte(raw)
	return sd
}

func (sd *secretDump) check(t *testing.T, what string, out []byte) {
	t.Helper()
	for desc, n := range sd.needles {
		if bytes.Contains(out, n) {
			t.Errorf("%s: %s survived", what, desc)
		}
	}
	if bytes.Contains(out, []byte("PRIVATE KEY")) || bytes.Contains(out, []byte("LS0tLS1CRUdJTiBFQyBQUklWQVRF")) {
		t.Errorf("%s: a PEM private key survived", what)
	}
}

func (sd *secretDump) checkPublic(t *testing.T, what string, out []byte) {
	t.Helper()
	for desc, p := range sd.public {
		if !bytes.Contains(out, p) {
			t.Errorf("%s: %s was redacted too", what, desc)
		}
	}
}

func TestDecodeScrubs(t *testing.T) {
	sd := newSecretDump(t)
	// The test is only meaningful if the secrets are there to begin with.
	for desc, n := range sd.needles {
		if !bytes.Contains(sd.raw, n) && !strings.Contains(desc, "base64") && !strings.Contains(desc, "body") {
			if !bytes.Contains(sd.raw, []byte(b64(string(n)))) && !bytes.Contains(sd.raw, []byte(jsonString(string(n)))[1:20]) {
				t.Fatalf("test dump lacks %s", desc)
			}
		}
	}
	d, err := Decode(sd.raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.Redacted < 12 {
		t.Errorf("redacted %d values, want at least 12", d.Redacted)
	}
	sd.check(t, "raw", d.Raw)
	sd.checkPublic(t, "raw", d.Raw)
	if len(d.Unknown) != 1 {
		t.Fatalf("unknown: %v", d.Unknown)
	}
	sd.check(t, "unknown JSON", d.Unknown[0].JSON)
	if !bytes.Contains(d.Unknown[0].JSON, []byte(`"strict"`)) {
		t.Errorf("unknown JSON lost a plain value: %s", d.Unknown[0].JSON)
	}
	js, err := Marshal(d.Dump)
	if err != nil {
		t.Fatal(err)
	}
	sd.check(t, "typed dump JSON", js)
	sd.checkPublic(t, "typed dump JSON", js)
	bin, err := proto.Marshal(d.Dump)
	if err != nil {
		t.Fatal(err)
	}
	sd.check(t, "typed dump binary", bin)

	// Scrubbing again changes nothing.
	again, n, err := ScrubConfigDumpJSON(d.Raw)
	if err != nil || n != 0 || !bytes.Equal(again, d.Raw) {
		t.Errorf("second scrub: %d redactions, %v", n, err)
	}
}

// TestScrubTyped scrubs a typed dump decoded without the JSON scrubber.
func TestScrubTyped(t *testing.T) {
	sd := newSecretDump(t)
	d := &adminv3.ConfigDump{}
	if err := unmarshalOpts().Unmarshal(sd.raw, d); err != nil {
		t.Fatal(err)
	}
	bin, _ := proto.Marshal(d)
	if !bytes.Contains(bin, sd.needles["istio key (body)"]) {
		t.Fatal("unscrubbed typed dump lacks the key: the test proves nothing")
	}
	n := Scrub(d)
	if n < 10 {
		t.Errorf("Scrub redacted %d values, want at least 10", n)
	}
	js, err := Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	// The unknown type was never decoded, so its values are not in the
	// typed dump at all.
	sd.check(t, "typed JSON", js)
	sd.checkPublic(t, "typed JSON", js)
	bin, _ = proto.Marshal(d)
	sd.check(t, "typed binary", bin)
	if Scrub(d) != 0 {
		t.Error("second Scrub redacted again")
	}
}

func TestScrubRealFixtures(t *testing.T) {
	// Envoy already redacted these keys; scrubbing keeps the certificates.
	for _, f := range []string{"istio-secrets_config_dump.json", "istio-spire-secrets_config_dump.json"} {
		raw := fixture(t, f)
		d, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(d.Raw, []byte("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t")) {
			t.Errorf("%s: certificates were redacted", f)
		}
		if bytes.Contains(d.Raw, []byte("PRIVATE KEY")) {
			t.Errorf("%s: private key in output", f)
		}
	}
}

// TestSensitiveFieldsCovered: every field Envoy's API marks sensitive is
// one the scrubbers treat as secret.
func TestSensitiveFieldsCovered(t *testing.T) {
	n := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		fs := mt.Descriptor().Fields()
		for i := 0; i < fs.Len(); i++ {
			fi := infoFor(mt.Descriptor()).fields[string(fs.Get(i).Name())]
			if fi.secret {
				n++
			}
		}
		return true
	})
	// The sidecar links a chosen set of Envoy types (types.go), not all.
	if n < 30 {
		t.Errorf("%d secret fields known; the sensitive annotations did not load", n)
	}
	for _, name := range []string{"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "envoy.config.core.v3.GrpcService.GoogleGrpc.CallCredentials"} {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
		if err != nil {
			t.Fatal(err)
		}
		mi := infoFor(mt.Descriptor())
		for _, f := range []string{"private_key", "password", "access_token", "google_refresh_token"} {
			if fi := mi.fields[f]; fi != nil && !fi.secret {
				t.Errorf("%s.%s is not secret", name, f)
			}
		}
		if fi := mi.fields["certificate_chain"]; fi != nil && fi.secret {
			t.Errorf("certificate_chain is treated as secret")
		}
	}
}

func TestSchemalessKeys(t *testing.T) {
	for k, want := range map[string]bool{
		"password": true, "db_password": true, "apiToken": true, "client_secret": true, "privateKey": true,
		"token_path": false, "secret_name": false, "owner": false, "max_tokens": true, "token_bucket": false,
		"tokens_per_fill": true, "authorization": true, "x-api-key": true, "cookie_name": false,
	} {
		if got := schemalessSecretKey(k); got != want {
			t.Errorf("schemalessSecretKey(%q) = %v, want %v", k, got, want)
		}
	}
}
