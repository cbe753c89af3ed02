package inject

import (
	"reflect"
	"testing"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
		err  bool
	}{
		{in: "", want: map[string]string{}},
		{in: "triage.dev/injection=enabled", want: map[string]string{LabelNamespaceInjection: "enabled"}},
		{in: " triage.dev/injection=enabled , pod-security.kubernetes.io/enforce=baseline,", want: map[string]string{
			LabelNamespaceInjection: "enabled", "pod-security.kubernetes.io/enforce": "baseline"}},
		{in: "empty=", want: map[string]string{"empty": ""}},
		{in: "a=1,a=1", want: map[string]string{"a": "1"}},
		{in: "a=1,a=2", err: true},
		{in: "novalue", err: true},
		{in: "bad key=1", err: true},
		{in: "k=bad value", err: true},
		{in: "=v", err: true},
	}
	for _, tc := range tests {
		got, err := ParseLabels(tc.in)
		if (err != nil) != tc.err || (!tc.err && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("ParseLabels(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}
