package fleet

import (
	"slices"
	"strings"
)

// Thresholds of the outlier rule; see the package documentation.
const (
	outlierFactor = 3
	outlierMargin = 10
)

// others describes the values of the other pods than one: the lower and
// upper of their middle values (equal for an odd number of others) and
// how many there are.
type others struct {
	lo, hi int64
	n      int
}

// typical is the others' median (the mean of the two middle values for an
// even number, rounded down); 0 for none.
func (o others) typical() int64 { return o.lo + (o.hi-o.lo)/2 }

// middle returns the middle values of n sorted values, the k-th being
// at(k).
func middle(n int, at func(k int) int64) others {
	if n <= 0 {
		return others{}
	}
	return others{lo: at((n - 1) / 2), hi: at(n / 2), n: n}
}

// median returns the median of sorted values, as others.typical; 0 for
// none.
func median(sorted []int64) int64 {
	return middle(len(sorted), func(k int) int64 { return sorted[k] }).typical()
}

// without returns the others of one occurrence of v in sorted (v must be
// in sorted), in O(log n).
func without(sorted []int64, v int64) others {
	j, _ := slices.BinarySearch(sorted, v)
	return middle(len(sorted)-1, func(k int) int64 {
		if k >= j {
			k++ // skip the removed value
		}
		return sorted[k]
	})
}

// deviation says whether v is an outlier against the others: "high",
// "low" or "". High is judged against the upper middle value and low
// against the lower one, so that with an even number of others the odd
// pod is flagged only when it is beyond both middle values: among
// {8, 8, 300}, 8 is neither low against {8, 300} nor 300 anything but
// high against {8, 8}.
func deviation(v int64, o others) string {
	switch {
	case o.n < 1:
		return ""
	case v > max(outlierFactor*o.hi, o.hi+outlierMargin):
		return "high"
	case o.n >= 2 && v*outlierFactor < o.lo && o.lo-v > outlierMargin:
		return "low"
	}
	return ""
}

// sortedCopy returns vs sorted, leaving vs as it was.
func sortedCopy(vs []int64) []int64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s
}

// ShortNames returns a function that names pods for display: the name
// without its namespace when every pod is in the same namespace, else the
// full "namespace/name".
func ShortNames(pods []string) func(string) string {
	ns := ""
	for i, p := range pods {
		n, _, ok := strings.Cut(p, "/")
		if !ok || (i > 0 && n != ns) {
			return func(p string) string { return p }
		}
		ns = n
	}
	return func(p string) string {
		if _, name, ok := strings.Cut(p, "/"); ok {
			return name
		}
		return p
	}
}
