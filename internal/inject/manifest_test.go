package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psaapi "k8s.io/pod-security-admission/api"
)

func splitDocs(t testing.TB, b []byte) []map[string]any {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if err == io.EOF {
				return out
			}
			t.Fatal(err)
		}
		if doc != nil {
			out = append(out, doc)
		}
	}
}

func reportText(reps []ObjectReport) []byte {
	var b bytes.Buffer
	for _, r := range reps {
		fmt.Fprintf(&b, "%s %s/%s injected=%v capture=%v mode=%s: %s\n", r.Kind, r.Namespace, r.Name, r.Injected, r.Status.Capture, r.Status.Mode, r.Decision.Reason)
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", w)
		}
	}
	return b.Bytes()
}

func TestInjectManifestsGolden(t *testing.T) {
	nsLabels := map[string]string{LabelNamespaceInjection: "enabled", psaapi.EnforceLevelLabel: "baseline"}
	for _, name := range []string{"workloads.yaml", "pod.json"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "manifests", name))
			if err != nil {
				t.Fatal(err)
			}
			opts := ManifestOptions{Config: testConfig(), NamespaceLabels: nsLabels}
			out, reps, err := InjectManifests(bytes.NewReader(in), opts)
			if err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(name, filepath.Ext(name))
			checkGolden(t, filepath.Join("testdata", "manifests", base+".golden.yaml"), out)
			checkGolden(t, filepath.Join("testdata", "manifests", base+".report.golden"), reportText(reps))

			// Objects that did not opt in come out unchanged; injected ones
			// keep every field, unknown ones included, and pass the checks.
			inDocs, outDocs := splitDocs(t, in), splitDocs(t, out)
			if len(inDocs) != len(outDocs) {
				t.Fatalf("%d documents in, %d out", len(inDocs), len(outDocs))
			}
			for i := range inDocs {
				a, b := mustJSON(t, inDocs[i]), mustJSON(t, outDocs[i])
				if strings.Contains(b, AnnotationStatus) {
					checkInjectedObject(t, inDocs[i], outDocs[i], nsLabels)
					continue
				}
				if !jsonEqual(t, a, b) {
					t.Errorf("document %d changed though not injected:\n%s\n%s", i, a, b)
				}
			}

			// Idempotent: injecting the output again changes nothing.
			again, reps2, err := InjectManifests(bytes.NewReader(out), opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, out) {
				t.Errorf("second pass changed the output:\n%s", again)
			}
			for _, r := range reps2 {
				if r.Injected {
					t.Errorf("second pass injected %s %s", r.Kind, r.Name)
				}
			}
		})
	}
}

// checkInjectedObject finds the pod template in out and checks it against
// the one in in: the sidecar invariants, admissibility, and that every
// field of the input is still there.
func checkInjectedObject(t *testing.T, in, out map[string]any, nsLabels map[string]string) {
	t.Helper()
	kind, _ := out["kind"].(string)
	if strings.HasSuffix(kind, "List") {
		inItems, outItems := in["items"].([]any), out["items"].([]any)
		for i := range outItems {
			if strings.Contains(mustJSON(t, outItems[i]), AnnotationStatus) {
				checkInjectedObject(t, inItems[i].(map[string]any), outItems[i].(map[string]any), nsLabels)
			} else if !jsonEqual(t, mustJSON(t, inItems[i]), mustJSON(t, outItems[i])) {
				t.Errorf("list item %d changed though not injected", i)
			}
		}
		return
	}
	tmpl := func(obj map[string]any) *corev1.Pod {
		var cur any = obj
		for _, k := range templatePaths[kind] {
			cur = cur.(map[string]any)[k]
		}
		var p corev1.Pod
		if err := json.Unmarshal([]byte(mustJSON(t, cur)), &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	inPod, outPod := tmpl(in), tmpl(out)
	checkSidecar(t, outPod, testConfig())
	var st Status
	if err := json.Unmarshal([]byte(outPod.Annotations[AnnotationStatus]), &st); err != nil {
		t.Fatal(err)
	}
	checkAdmissible(t, inPod, outPod, nsLabels, st.Capture)
	if !containsJSON(in, out) {
		t.Errorf("%s lost fields of its input:\n%s\n%s", kind, mustJSON(t, in), mustJSON(t, out))
	}
}

// containsJSON reports whether every member and element of a is in b
// (arrays may have grown at the end).
func containsJSON(a, b any) bool {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return false
		}
		for k, x := range av {
			if y, ok := bv[k]; !ok || !containsJSON(x, y) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		if !ok || len(bv) < len(av) {
			return false
		}
		for i := range av {
			if !containsJSON(av[i], bv[i]) {
				return false
			}
		}
		return true
	case nil:
		return true // a null the injection filled in
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestInjectManifestsNamespaceLabels(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: i}]
`
	for _, tc := range []struct {
		name     string
		labels   map[string]string
		ns       string
		injected bool
	}{
		{"no labels", nil, "", false},
		{"enabled", map[string]string{LabelNamespaceInjection: "enabled"}, "", true},
		{"enabled but excluded", map[string]string{LabelNamespaceInjection: "enabled"}, "kube-system", false},
		{"enabled, own namespace", map[string]string{LabelNamespaceInjection: "enabled"}, "triage-system", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, reps, err := InjectManifests(strings.NewReader(in), ManifestOptions{Config: testConfig(), NamespaceLabels: tc.labels, Namespace: tc.ns})
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 1 || reps[0].Injected != tc.injected || strings.Contains(string(out), "triage-sidecar") != tc.injected {
				t.Errorf("reports %+v\n%s", reps, out)
			}
			if want := tc.ns; want != "" && reps[0].Namespace != want {
				t.Errorf("namespace %q", reps[0].Namespace)
			}
		})
	}
}

func TestInjectManifestsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"scalar document": "just a string\n",
		"array document":  "[1, 2]\n",
		"bad yaml":        "a: [\n",
		"bad pod":         "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: 3}\n",
		"bad list item":   "apiVersion: v1\nkind: List\nitems: [3]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := InjectManifests(strings.NewReader(in), ManifestOptions{Config: testConfig()}); err == nil {
				t.Error("no error")
			}
		})
	}
	bad := testConfig()
	bad.Image = ""
	if _, _, err := InjectManifests(strings.NewReader(""), ManifestOptions{Config: bad}); err == nil {
		t.Error("invalid config accepted")
	}
	out, reps, err := InjectManifests(strings.NewReader("---\n---\n"), ManifestOptions{Config: testConfig()})
	if err != nil || len(out) != 0 || len(reps) != 0 {
		t.Errorf("empty documents: %q %v %v", out, reps, err)
	}
	// A workload without a template is reported, not an error, and unchanged.
	out, reps, err = InjectManifests(strings.NewReader("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}\n"),
		ManifestOptions{Config: testConfig(), NamespaceLabels: map[string]string{LabelNamespaceInjection: "enabled"}})
	if err != nil || len(reps) != 1 || reps[0].Injected || !strings.Contains(reps[0].Decision.Reason, "no pod template") || strings.Contains(string(out), "triage") {
		t.Errorf("deployment without template: %q %+v %v", out, reps, err)
	}
}

// FuzzInjectManifests feeds arbitrary bytes to the manifest reader: it must
// not panic, what it writes must read back, and a second pass must not
// change it.
func FuzzInjectManifests(f *testing.F) {
	for _, name := range []string{"workloads.yaml", "pod.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "manifests", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{kind: PodList, items: [{kind: Pod, spec: {containers: [{name: a}]}}]}]\n"))
	f.Add([]byte(`{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":null}}}}`))
	f.Add([]byte("kind: Pod\nmetadata: {labels: {triage.dev/inject: \"true\"}, annotations: null}\nspec: {containers: [{name: x, env: null}], volumes: ~}\n"))
	opts := ManifestOptions{Config: testConfig(), NamespaceLabels: map[string]string{LabelNamespaceInjection: "enabled"}}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := InjectManifests(bytes.NewReader(in), opts)
		if err != nil {
			return
		}
		again, reps, err := InjectManifests(bytes.NewReader(out), opts)
		if err != nil {
			t.Fatalf("output does not read back: %v\n%s", err, out)
		}
		for _, r := range reps {
			if r.Injected {
				t.Fatalf("second pass injected %s %q:\n%s", r.Kind, r.Name, out)
			}
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("second pass changed the output:\n%s\n---- became ----\n%s", out, again)
		}
	})
}
