package inject

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestSortedJSON checks sortedJSON against the generic round trip diff uses.
func TestSortedJSON(t *testing.T) {
	pod := testPod(annotate("a/b~c", "<&>", "z", "\u2028", "é\"\\", "x"))
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "N", Value: "bad \xff utf8"}}
	for i, v := range []any{
		pod, &pod.Spec.Containers[0], pod.Annotations, map[string]any{}, []any{}, nil, 1.5, "s",
		map[string]any{"b": []any{map[string]any{"y": 1, "x": json.Number("1e3")}}, "a": true, "\\": nil, "\"": "q"},
		json.RawMessage(`{"b":1,"a":{"d":[],"c":{}}}`),
	} {
		got, err := sortedJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := genericJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%d: sortedJSON\n%s\nwant\n%s", i, got, want)
		}
	}
}

// FuzzSortedJSON checks sortedJSON on arbitrary JSON.
func FuzzSortedJSON(f *testing.F) {
	f.Add([]byte(`{"b":1,"a":{"d":[1,"x"],"c":{"\u00e9":null,"e":false}}}`))
	f.Add([]byte(`{"\u00e9":"\u00e9","<":"\u003c","a":{"a":1,"a":2}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		v := json.RawMessage(raw)
		got, err := sortedJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := genericJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("sortedJSON\n%s\nwant\n%s", got, want)
		}
	})
}
