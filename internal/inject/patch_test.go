package inject

import (
	"encoding/json"
	"reflect"
	"testing"
)

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// TestApplyPatchRFC6902 runs examples from RFC 6902 appendix A and the
// error cases the strict applier must refuse.
func TestApplyPatchRFC6902(t *testing.T) {
	tests := []struct {
		name, doc, patch, want string
		lenient                bool
		wantErr                bool
	}{
		{name: "A.1 add member", doc: `{"foo":"bar"}`, patch: `[{"op":"add","path":"/baz","value":"qux"}]`, want: `{"baz":"qux","foo":"bar"}`},
		{name: "A.2 add array element", doc: `{"foo":["bar","baz"]}`, patch: `[{"op":"add","path":"/foo/1","value":"qux"}]`, want: `{"foo":["bar","qux","baz"]}`},
		{name: "A.3 remove member", doc: `{"baz":"qux","foo":"bar"}`, patch: `[{"op":"remove","path":"/baz"}]`, want: `{"foo":"bar"}`},
		{name: "A.4 remove element", doc: `{"foo":["bar","qux","baz"]}`, patch: `[{"op":"remove","path":"/foo/1"}]`, want: `{"foo":["bar","baz"]}`},
		{name: "A.5 replace", doc: `{"baz":"qux","foo":"bar"}`, patch: `[{"op":"replace","path":"/baz","value":"boo"}]`, want: `{"baz":"boo","foo":"bar"}`},
		{name: "A.6 move", doc: `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`, patch: `[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			want: `{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`},
		{name: "A.8 test", doc: `{"baz":"qux","foo":["a",2,"c"]}`, patch: `[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`, want: `{"baz":"qux","foo":["a",2,"c"]}`},
		{name: "A.9 test fails", doc: `{"baz":"qux"}`, patch: `[{"op":"test","path":"/baz","value":"bar"}]`, wantErr: true},
		{name: "A.10 add nested", doc: `{"foo":"bar"}`, patch: `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`, want: `{"foo":"bar","child":{"grandchild":{}}}`},
		{name: "A.12 add to nonexistent target", doc: `{"foo":"bar"}`, patch: `[{"op":"add","path":"/baz/bat","value":"qux"}]`, wantErr: true},
		{name: "A.14 escaping", doc: `{"/":9,"~1":10}`, patch: `[{"op":"test","path":"/~01","value":10},{"op":"replace","path":"/~1","value":1}]`, want: `{"/":1,"~1":10}`},
		{name: "A.16 append", doc: `{"foo":["bar"]}`, patch: `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, want: `{"foo":["bar",["abc","def"]]}`},
		{name: "add null value", doc: `{}`, patch: `[{"op":"add","path":"/a","value":null}]`, want: `{"a":null}`},
		{name: "add without value", doc: `{}`, patch: `[{"op":"add","path":"/a"}]`, wantErr: true},
		{name: "replace missing", doc: `{}`, patch: `[{"op":"replace","path":"/a","value":1}]`, wantErr: true},
		{name: "replace missing lenient", doc: `{}`, patch: `[{"op":"replace","path":"/a","value":1}]`, lenient: true, want: `{"a":1}`},
		{name: "add missing parents lenient", doc: `{"spec":{}}`, patch: `[{"op":"add","path":"/metadata/annotations/a~1b","value":"x"}]`, lenient: true, want: `{"spec":{},"metadata":{"annotations":{"a/b":"x"}}}`},
		{name: "add into null lenient", doc: `{"metadata":{"annotations":null}}`, patch: `[{"op":"add","path":"/metadata/annotations/a","value":"x"}]`, lenient: true, want: `{"metadata":{"annotations":{"a":"x"}}}`},
		{name: "index out of range", doc: `{"a":[1]}`, patch: `[{"op":"add","path":"/a/3","value":2}]`, wantErr: true},
		{name: "leading zero index", doc: `{"a":[1,2]}`, patch: `[{"op":"replace","path":"/a/01","value":2}]`, wantErr: true},
		{name: "bad path", doc: `{}`, patch: `[{"op":"add","path":"a","value":2}]`, wantErr: true},
		{name: "unknown op", doc: `{}`, patch: `[{"op":"frob","path":"/a"}]`, wantErr: true},
		{name: "remove root member of scalar", doc: `{"a":1}`, patch: `[{"op":"remove","path":"/a/b"}]`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ApplyPatch([]byte(tc.doc), []byte(tc.patch), tc.lenient)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; got %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, string(got), tc.want) {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCreatePatchRoundTrip(t *testing.T) {
	docs := []struct{ from, to string }{
		{`{}`, `{}`},
		{`{"a":1}`, `{"a":2}`},
		{`{"a":1,"b":{"c":[1,2]}}`, `{"b":{"c":[1,2,3],"d":null},"e/f~g":true}`},
		{`{"a":[1,2,3]}`, `{"a":[1]}`},
		{`{"a":[{"x":1},{"y":2}]}`, `{"a":[{"x":1,"z":[]},{"y":3},{"w":0}]}`},
		{`{"a":{"b":1}}`, `{"a":[1]}`},
		{`{"a":"s"}`, `{"a":{"s":1}}`},
	}
	for _, d := range docs {
		var from, to any
		if err := json.Unmarshal([]byte(d.from), &from); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(d.to), &to); err != nil {
			t.Fatal(err)
		}
		p, err := CreatePatch(from, to)
		if err != nil {
			t.Fatal(err)
		}
		if d.from == d.to {
			if p != nil {
				t.Errorf("patch %s for equal documents", p)
			}
			continue
		}
		got, err := ApplyPatch([]byte(d.from), p, false)
		if err != nil {
			t.Fatalf("%s -> %s: %v (patch %s)", d.from, d.to, err, p)
		}
		if !jsonEqual(t, string(got), d.to) {
			t.Errorf("%s + %s = %s, want %s", d.from, p, got, d.to)
		}
	}
}
