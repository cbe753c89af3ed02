package goroutinespb

import (
	"testing"
	"time"

	"github.com/triage-sh/triage/internal/goroutines"
)

func TestGroup(t *testing.T) {
	g := &goroutines.Group{Count: 3, State: "chan receive", MinWait: time.Minute, MaxWait: 2 * time.Minute,
		Frames:    []goroutines.Frame{{Function: "main.f", File: "/a.go", Line: 7}},
		CreatedBy: &goroutines.Frame{Function: "main.main", File: "/a.go", Line: 3}, IDs: []int64{1, 2, 3}}
	p := Group(g)
	if p.Count != 3 || p.State != "chan receive" || p.MaxWait.AsDuration() != 2*time.Minute || p.Frames[0].Function != "main.f" ||
		p.Frames[0].Line != 7 || p.CreatedBy.Function != "main.main" || len(p.Ids) != 3 {
		t.Fatalf("%v", p)
	}
	if p := Group(&goroutines.Group{Count: 1}); p.MaxWait != nil {
		t.Fatalf("no wait must stay unset: %v", p)
	}
}
