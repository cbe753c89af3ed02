package main

import (
	"slices"
	"testing"
)

func TestParseCLI(t *testing.T) {
	tests := []struct {
		name, out string
		want      dumpRun
		wantErr   bool
	}{
		{name: "profile path", out: `{"total":3,"path":"profile","collected_seconds":0.25,"notes":["profile path: no wait states"],"groups":[{},{}]}`,
			want: dumpRun{goroutines: 3, groups: 2, path: "profile", collectNs: 250_000_000, notes: []string{"profile path: no wait states"}}},
		{name: "text path with the pause note", out: `{"total":5,"path":"text","notes":["the text dump stopped the world for about 1.118809s"],"groups":[{}]}`,
			want: dumpRun{goroutines: 5, groups: 1, path: "text", agentSTWNs: 1_118_809_000, notes: []string{"the text dump stopped the world for about 1.118809s"}}},
		{name: "not json", out: "Error: unavailable", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCLI([]byte(tt.out))
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.bytes = int64(len(tt.out))
			if got.goroutines != tt.want.goroutines || got.groups != tt.want.groups || got.path != tt.want.path ||
				got.agentSTWNs != tt.want.agentSTWNs || got.collectNs != tt.want.collectNs || got.bytes != tt.want.bytes ||
				!slices.Equal(got.notes, tt.want.notes) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDur(t *testing.T) {
	tests := []struct {
		ns   int64
		want string
	}{
		{-1, "?"},
		{8_192, "8 µs"},
		{1_990_000, "1.99 ms"},
		{131_000_000, "131 ms"},
		{5_823_000_000, "5.82 s"},
	}
	for _, tt := range tests {
		if got := dur(tt.ns); got != tt.want {
			t.Errorf("dur(%d) = %q, want %q", tt.ns, got, tt.want)
		}
	}
}
