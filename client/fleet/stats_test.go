package fleet

import (
	"slices"
	"testing"
)

func TestWithout(t *testing.T) {
	tests := []struct {
		vs     []int64
		drop   int64
		lo, hi int64
	}{
		{[]int64{5}, 5, 0, 0},
		{[]int64{1, 9}, 9, 1, 1},
		{[]int64{1, 9}, 1, 9, 9},
		{[]int64{1, 2, 300}, 300, 1, 2},
		{[]int64{1, 2, 300}, 1, 2, 300},
		{[]int64{8, 8, 8, 400}, 400, 8, 8},
		{[]int64{0, 0, 0, 20, 20}, 20, 0, 0},
		{[]int64{0, 20, 23}, 20, 0, 23},
		{[]int64{3, 3, 3, 3}, 3, 3, 3},
	}
	for _, tt := range tests {
		s := sortedCopy(tt.vs)
		got := without(s, tt.drop)
		// Cross-check with the plain definition.
		i := slices.Index(s, tt.drop)
		rest := slices.Delete(slices.Clone(s), i, i+1)
		var lo, hi int64
		if n := len(rest); n > 0 {
			lo, hi = rest[(n-1)/2], rest[n/2]
		}
		if got.lo != tt.lo || got.hi != tt.hi || got.lo != lo || got.hi != hi || got.n != len(rest) {
			t.Errorf("without(%v, %d) = %+v, want %d..%d (reference %d..%d over %d)", tt.vs, tt.drop, got, tt.lo, tt.hi, lo, hi, len(rest))
		}
	}
}

func TestDeviation(t *testing.T) {
	tests := []struct {
		vs   []int64 // all pods; the first is judged
		want string
	}{
		{[]int64{300, 0, 0, 0}, "high"},
		{[]int64{10, 0, 0, 0}, ""}, // within the absolute margin
		{[]int64{11, 0, 0, 0}, "high"},
		{[]int64{40, 20, 20, 20}, ""}, // 2x is normal variation
		{[]int64{61, 20, 20, 20}, "high"},
		{[]int64{60, 20, 20, 20}, ""},
		{[]int64{1300, 400, 400, 400, 400}, "high"},
		{[]int64{1000, 400, 400, 400}, ""},
		{[]int64{0, 20, 20, 20}, "low"},
		{[]int64{0, 9, 9, 9}, ""},    // too few to matter
		{[]int64{0, 20}, ""},         // two pods: only high counts
		{[]int64{400, 10}, "high"},   // two pods: the higher is flagged
		{[]int64{100}, ""},           // nobody to compare with
		{[]int64{8, 8, 300}, ""},     // not low against {8, 300}
		{[]int64{300, 8, 8}, "high"}, // three pods: the odd one
		{[]int64{20, 23, 0}, ""},     // a pod without the group does not make the others high
		{[]int64{1, 1300, 1400, 1500}, "low"},
	}
	for _, tt := range tests {
		s := sortedCopy(tt.vs)
		if got := deviation(tt.vs[0], without(s, tt.vs[0])); got != tt.want {
			t.Errorf("deviation of %d among %v = %q, want %q", tt.vs[0], tt.vs, got, tt.want)
		}
	}
}

func TestShortNames(t *testing.T) {
	tests := []struct {
		pods []string
		in   string
		want string
	}{
		{[]string{"shop/a", "shop/b"}, "shop/a", "a"},
		{[]string{"shop/a", "web/b"}, "shop/a", "shop/a"},
		{[]string{"shop/a", "b"}, "shop/a", "shop/a"},
		{nil, "shop/a", "a"},
	}
	for _, tt := range tests {
		if got := ShortNames(tt.pods)(tt.in); got != tt.want {
			t.Errorf("ShortNames(%v)(%q) = %q, want %q", tt.pods, tt.in, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		vs   []int64
		want int64
	}{
		{nil, 0},
		{[]int64{5}, 5},
		{[]int64{1, 2, 3}, 2},
		{[]int64{1, 4}, 2}, // the mean of the middle two, rounded down
		{[]int64{0, 0, 3, 300}, 1},
		{[]int64{8, 8, 300}, 8},
	}
	for _, tt := range tests {
		if got := median(sortedCopy(tt.vs)); got != tt.want {
			t.Errorf("median(%v) = %d, want %d", tt.vs, got, tt.want)
		}
	}
}
