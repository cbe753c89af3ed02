package bench

import "testing"

func TestUpsertCaptureSection(t *testing.T) {
	const s, e = CaptureMarkerStart, CaptureMarkerEnd
	const rs, re = RuntimeMarkerStart, RuntimeMarkerEnd
	const ms, me = MarkerStart, MarkerEnd
	tests := []struct {
		name, doc, body, want string
		wantErr               bool
	}{
		{name: "replaces", doc: "a\n" + s + "\nold\n" + e + "\nb\n", body: "new", want: "a\n" + s + "\nnew\n" + e + "\nb\n"},
		{name: "after the runtime section", doc: ms + "\nt\n" + me + "\n\n" + rs + "\nr\n" + re + "\nrest\n", body: "c",
			want: ms + "\nt\n" + me + "\n\n" + rs + "\nr\n" + re + "\n\n" + s + "\nc\n" + e + "\nrest\n"},
		{name: "runtime section at the very end", doc: rs + "\nr\n" + re, body: "c", want: rs + "\nr\n" + re + "\n\n" + s + "\nc\n" + e + "\n"},
		{name: "after the main table without a runtime section", doc: ms + "\nt\n" + me + "\nrest\n", body: "c",
			want: ms + "\nt\n" + me + "\n\n" + s + "\nc\n" + e + "\nrest\n"},
		{name: "runtime end repeated: main table instead", doc: ms + "\nt\n" + me + "\n" + re + re + "\n", body: "c",
			want: ms + "\nt\n" + me + "\n\n" + s + "\nc\n" + e + "\n" + re + re + "\n"},
		{name: "appended", doc: "# T\n", body: "c", want: "# T\n" + s + "\nc\n" + e + "\n"},
		{name: "appended after a missing newline", doc: "# T", body: "c", want: "# T\n" + s + "\nc\n" + e + "\n"},
		{name: "empty doc", doc: "", body: "c", want: s + "\nc\n" + e + "\n"},
		{name: "idempotent", doc: s + "\nc\n" + e + "\n", body: "\nc\n\n", want: s + "\nc\n" + e + "\n"},
		{name: "end only", doc: "x\n" + e + "\n", body: "c", wantErr: true},
		{name: "reversed", doc: e + "\n" + s, body: "c", wantErr: true},
		{name: "repeated", doc: s + e + s + e, body: "c", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UpsertCaptureSection(tt.doc, tt.body)
			switch {
			case tt.wantErr:
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
			case err != nil:
				t.Fatal(err)
			case got != tt.want:
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
