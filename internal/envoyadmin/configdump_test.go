package envoyadmin

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func TestDecodeFixtures(t *testing.T) {
	tests := []struct {
		file            string
		configs         int
		unknown, legacy int
		unsupported     string // Envoy version in the error
	}{
		{"istio-1.10-sidecar-details-v1_config_dump_camelCase.json", 6, 12, 0, ""},
		{"istio-1.21-waypoint_config_dump_with_eds.json", 7, 0, 0, ""},
		{"istio-1.5-sidecar-details-v1_config_dump.json", 6, 1, 6, ""},
		{"istio-ecds-wasm_config_dump.json", 3, 0, 0, ""},
		{"istio-gateway-routes_config_dump.json", 1, 0, 0, ""},
		{"istio-k8s-gateway-api-routes_config_dump.json", 1, 0, 0, ""},
		{"istio-secrets_config_dump.json", 1, 0, 0, ""},
		{"istio-sidecar_eds_only_config_dump.json", 1, 0, 0, ""},
		{"istio-spire-secrets_config_dump.json", 1, 0, 0, ""},
		{"istio-1.2-sidecar-ratings-v1_config_dump_v2alpha.json", 0, 0, 0, "1.11.0-dev"},
		{"istio-1.3-ingressgateway_config_dump_v2alpha.json", 0, 0, 0, "1.12.0-dev"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			d, err := Decode(fixture(t, tt.file))
			if tt.unsupported != "" {
				var ue *UnsupportedVersionError
				if KindOf(err) != KindUnsupported || !errors.As(err, &ue) {
					t.Fatalf("got %v, want an unsupported-version error", err)
				}
				if ue.EnvoyVersion != tt.unsupported || !strings.Contains(err.Error(), "envoy.admin.v2alpha.") || !strings.Contains(err.Error(), "v3") {
					t.Errorf("error %q (version %q) should name the v2alpha types and Envoy %s", err, ue.EnvoyVersion, tt.unsupported)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(d.Dump.GetConfigs()); got != tt.configs {
				t.Errorf("configs = %d, want %d", got, tt.configs)
			}
			if got := len(d.Unknown); got != tt.unknown {
				t.Errorf("unknown = %d, want %d: %v", got, tt.unknown, d.Unknown)
			}
			n := 0
			for _, l := range d.Legacy {
				n += l.Count
			}
			if n != tt.legacy {
				t.Errorf("legacy = %d, want %d: %v", n, tt.legacy, d.Legacy)
			}
			// The typed dump re-encodes (unknown types as {"@type": url}).
			if _, err := Marshal(d.Dump); err != nil {
				t.Errorf("Marshal: %v", err)
			}
		})
	}
	for _, f := range configDumpFixtures(t) {
		if !seen[f] {
			t.Errorf("config dump fixture %s has no row in this table", f)
		}
	}
}

// TestUnknownKept checks each unknown type's path and JSON against the raw
// dump, navigated independently with encoding/json.
func TestUnknownKept(t *testing.T) {
	for _, file := range []string{"istio-1.10-sidecar-details-v1_config_dump_camelCase.json", "istio-1.5-sidecar-details-v1_config_dump.json"} {
		raw := fixture(t, file)
		d, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if len(d.Unknown) == 0 {
			t.Fatalf("%s: no unknown types", file)
		}
		for _, u := range d.Unknown {
			if !strings.HasPrefix(u.TypeURL, "type.googleapis.com/istio.") {
				t.Errorf("%s: unexpected unknown type %s", file, u.TypeURL)
			}
			node := navigate(t, doc, u.Path)
			var kept any
			if err := json.Unmarshal(u.JSON, &kept); err != nil {
				t.Fatalf("%s: kept JSON of %s is not JSON: %v", file, u.Path, err)
			}
			if !reflect.DeepEqual(node, kept) {
				t.Errorf("%s: kept JSON of %s differs from the dump's", file, u.Path)
			}
			if m, _ := node.(map[string]any); m["@type"] != u.TypeURL {
				t.Errorf("%s: %s has @type %v, want %s", file, u.Path, m["@type"], u.TypeURL)
			}
		}
	}
}

var pathElemRE = regexp.MustCompile(`([^.\[\]]+)|\[(\d+)\]`)

func navigate(t *testing.T, doc any, path string) any {
	t.Helper()
	for _, m := range pathElemRE.FindAllStringSubmatch(path, -1) {
		if m[2] != "" {
			i, _ := strconv.Atoi(m[2])
			arr, ok := doc.([]any)
			if !ok || i >= len(arr) {
				t.Fatalf("path %s: [%d] not found", path, i)
			}
			doc = arr[i]
			continue
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("path %s: %s not found", path, m[1])
		}
		doc = obj[m[1]]
	}
	return doc
}

// TestCamelAndSnake: a dump re-encoded with the other naming decodes to the
// same typed dump.
func TestCamelAndSnake(t *testing.T) {
	for _, file := range []string{"istio-1.21-waypoint_config_dump_with_eds.json", "istio-1.10-sidecar-details-v1_config_dump_camelCase.json", "istio-secrets_config_dump.json"} {
		d1, err := Decode(fixture(t, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, protoNames := range []bool{false, true} {
			b, err := protojson.MarshalOptions{UseProtoNames: protoNames, Resolver: Resolver()}.Marshal(d1.Dump)
			if err != nil {
				t.Fatal(err)
			}
			if protoNames == bytes.Contains(b, []byte(`"dynamicActive`)) {
				t.Fatalf("naming not as asked")
			}
			d2, err := Decode(b)
			if err != nil {
				t.Fatalf("%s (proto names %v): %v", file, protoNames, err)
			}
			if !proto.Equal(d1.Dump, d2.Dump) {
				t.Errorf("%s: decoding the %v-named form differs", file, protoNames)
			}
		}
	}
}

func TestDecodeTolerance(t *testing.T) {
	// A field newer than go-control-plane, an unknown type at the top, an
	// Any whose @type is not first, and escapes in keys and values.
	raw := []byte(`{"configs": [
	  {"type_url_is_not_first": true, "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
	   "static_clusters": [{"cluster": {"name": "c\u0031", "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
	      "a_field_from_envoy_2030": {"x": 1}, "type": "STATIC"}}]},
	  {"@type": "type.googleapis.com/example.FutureConfigDump", "things": [1, 2, {"password": "p"}]}
	]}`)
	raw = bytes.ReplaceAll(raw, []byte(`"type_url_is_not_first": true, `), nil)
	d, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Unknown) != 1 || d.Unknown[0].Path != "configs[1]" || d.Unknown[0].TypeURL != "type.googleapis.com/example.FutureConfigDump" {
		t.Fatalf("unknown: %+v", d.Unknown)
	}
	if bytes.Contains(d.Unknown[0].JSON, []byte(`"p"`)) {
		t.Errorf("secret-looking value in an unknown type kept: %s", d.Unknown[0].JSON)
	}
	cd := &adminv3.ClustersConfigDump{}
	if err := d.Dump.GetConfigs()[0].UnmarshalTo(cd); err != nil {
		t.Fatal(err)
	}
	if len(cd.GetStaticClusters()) != 1 {
		t.Fatalf("clusters: %v", cd)
	}
	if d.Dump.GetConfigs()[1].GetTypeUrl() != "type.googleapis.com/example.FutureConfigDump" || len(d.Dump.GetConfigs()[1].GetValue()) != 0 {
		t.Errorf("unknown Any: %v", d.Dump.GetConfigs()[1])
	}
}

func TestDecodeGarbage(t *testing.T) {
	for _, in := range []string{"", "{", "[]", "null x", `{"configs": 5}`, `{"configs": [{"@type": 5}]}`, `<html>`, strings.Repeat("[", 20000)} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%.20q) succeeded", in)
		} else if KindOf(err) != KindDecode {
			t.Errorf("Decode(%.20q): kind %v", in, KindOf(err))
		}
	}
	d, err := Decode([]byte(`{}`))
	if err != nil || len(d.Dump.GetConfigs()) != 0 {
		t.Errorf("empty dump: %v %v", d, err)
	}
}
