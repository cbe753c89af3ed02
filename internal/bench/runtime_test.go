package bench

import "testing"

func TestUpsertRuntimeSection(t *testing.T) {
	const s, e = RuntimeMarkerStart, RuntimeMarkerEnd
	const ms, me = MarkerStart, MarkerEnd
	tests := []struct {
		name, doc, body, want string
		wantErr               bool
	}{
		{name: "replaces", doc: "a\n" + s + "\nold\n" + e + "\nb\n", body: "new", want: "a\n" + s + "\nnew\n" + e + "\nb\n"},
		{name: "after the main table", doc: ms + "\nt\n" + me + "\nrest\n", body: "r",
			want: ms + "\nt\n" + me + "\n\n" + s + "\nr\n" + e + "\nrest\n"},
		{name: "main table at the very end", doc: ms + "\nt\n" + me, body: "r", want: ms + "\nt\n" + me + "\n\n" + s + "\nr\n" + e + "\n"},
		{name: "appended", doc: "# T\n", body: "r", want: "# T\n" + s + "\nr\n" + e + "\n"},
		{name: "appended after a missing newline", doc: "# T", body: "r", want: "# T\n" + s + "\nr\n" + e + "\n"},
		{name: "empty doc", doc: "", body: "r", want: s + "\nr\n" + e + "\n"},
		{name: "idempotent", doc: s + "\nr\n" + e + "\n", body: "\nr\n\n", want: s + "\nr\n" + e + "\n"},
		{name: "start only", doc: s + "\nold\n", body: "r", wantErr: true},
		{name: "reversed", doc: e + "\n" + s, body: "r", wantErr: true},
		{name: "repeated", doc: s + e + s + e, body: "r", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UpsertRuntimeSection(tt.doc, tt.body)
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

func TestParseStatTicks(t *testing.T) {
	// Fields 3.. of a real line; utime 17 and stime 5 are fields 14 and 15.
	const rest = " S 1 1234 1234 0 -1 4194560 1207 0 0 0 17 5 0 0 20 0 9 0 12345 1259839488 4521 18446744073709551615"
	tests := []struct {
		name, stat string
		want       int64
		wantErr    bool
	}{
		{name: "plain", stat: "1234 (testapp)" + rest, want: 22},
		{name: "spaces and parens in comm", stat: "1234 (a b) (c))" + rest, want: 22},
		{name: "no comm", stat: "1234 testapp S 1", wantErr: true},
		{name: "short", stat: "1234 (x) S 1 2 3", wantErr: true},
		{name: "not a number", stat: "1234 (x) S 1 1 1 0 -1 0 0 0 0 0 x 5 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatTicks(tt.stat)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseStatTicks = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []int64
		want int64
	}{
		{nil, 0},
		{[]int64{7}, 7},
		{[]int64{3, 1, 2}, 2},
		{[]int64{4, 1, 3, 2}, 3},
	}
	for _, tt := range tests {
		in := append([]int64(nil), tt.in...)
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %d, want %d", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("Median modified its input: %v", tt.in)
			}
		}
	}
}
