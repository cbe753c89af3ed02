package inject

import (
	"slices"
	"strconv"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
)

// mutationPatch returns the same bytes as CreatePatch(pod, out) for an out
// that build (plus the status annotation) made from pod, without encoding
// and diffing the whole pods. build only appends to slices (containers,
// initContainers, volumes, each container's env and volumeMounts), sets
// shareProcessNamespace and adds or changes annotations; every other member
// of out is a deep copy of pod's and so encodes identically, which lets the
// patch be built from those members alone. The operations come out in the
// order diff visits them (object members sorted, array elements by index).
// When out is not of that shape it falls back to CreatePatch.
func mutationPatch(pod, out *corev1.Pod) ([]byte, error) {
	ops, ok, err := mutationOps(pod, out)
	if err != nil {
		return nil, err
	}
	if !ok {
		return CreatePatch(pod, out)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	return marshalOps(ops)
}

func mutationOps(pod, out *corev1.Pod) (ops []Operation, ok bool, err error) {
	a, b := &pod.Spec, &out.Spec
	// Members are visited in sorted order: metadata before spec, and in spec
	// containers, initContainers, shareProcessNamespace, volumes.

	// metadata.annotations (omitempty).
	switch {
	case len(pod.Annotations) == 0 && len(out.Annotations) == 0:
	case len(out.Annotations) == 0:
		return nil, false, nil
	case len(pod.Annotations) == 0:
		if ops, err = addGeneric(ops, "/metadata/annotations", out.Annotations); err != nil {
			return nil, false, err
		}
	case validUTF8(pod.Annotations) && validUTF8(out.Annotations):
		ops = mapOps(ops, "/metadata/annotations", pod.Annotations, out.Annotations)
	default:
		x, err := toGeneric(pod.Annotations)
		if err != nil {
			return nil, false, err
		}
		y, err := toGeneric(out.Annotations)
		if err != nil {
			return nil, false, err
		}
		ops = diff(ops, "/metadata/annotations", x, y)
	}

	// spec.containers (not omitempty: always an array, or null when nil).
	if a.Containers == nil || len(b.Containers) < len(a.Containers) {
		return nil, false, nil
	}
	for i := range a.Containers {
		ca, cb := &a.Containers[i], &b.Containers[i]
		p := "/spec/containers/" + strconv.Itoa(i)
		if ops, ok, err = appendedOps(ops, p+"/env", len(ca.Env), cb.Env); !ok || err != nil {
			return nil, ok, err
		}
		if ops, ok, err = appendedOps(ops, p+"/volumeMounts", len(ca.VolumeMounts), cb.VolumeMounts); !ok || err != nil {
			return nil, ok, err
		}
	}
	for i := len(a.Containers); i < len(b.Containers); i++ {
		if ops, err = addGeneric(ops, "/spec/containers/"+strconv.Itoa(i), &b.Containers[i]); err != nil {
			return nil, false, err
		}
	}

	// spec.initContainers (omitempty).
	if ops, ok, err = appendedOps(ops, "/spec/initContainers", len(a.InitContainers), b.InitContainers); !ok || err != nil {
		return nil, ok, err
	}

	// spec.shareProcessNamespace (omitempty pointer).
	switch x, y := a.ShareProcessNamespace, b.ShareProcessNamespace; {
	case y == nil:
		if x != nil {
			return nil, false, nil
		}
	case x == nil:
		ops = append(ops, Operation{Op: "add", Path: "/spec/shareProcessNamespace", Value: *y})
	case *x != *y:
		ops = append(ops, Operation{Op: "replace", Path: "/spec/shareProcessNamespace", Value: *y})
	}

	// spec.volumes (omitempty).
	if ops, ok, err = appendedOps(ops, "/spec/volumes", len(a.Volumes), b.Volumes); !ok || err != nil {
		return nil, ok, err
	}
	return ops, true, nil
}

// appendedOps gives diff's operations for an omitempty slice member at path
// whose first n elements are unchanged and to which the rest of to was
// appended: the whole array is added when it was empty (absent), else one
// add per appended element. ok is false when to is shorter than n.
func appendedOps[T any](ops []Operation, path string, n int, to []T) ([]Operation, bool, error) {
	switch {
	case len(to) < n:
		return nil, false, nil
	case len(to) == n:
		return ops, true, nil
	case n == 0:
		ops, err := addGeneric(ops, path, to)
		return ops, err == nil, err
	}
	for i := n; i < len(to); i++ {
		var err error
		if ops, err = addGeneric(ops, path+"/"+strconv.Itoa(i), &to[i]); err != nil {
			return nil, false, err
		}
	}
	return ops, true, nil
}

// addGeneric appends an add of v as diff would make it: with v's JSON
// decoded generically, so that it encodes with sorted object members.
func addGeneric(ops []Operation, path string, v any) ([]Operation, error) {
	raw, err := sortedJSON(v)
	if err != nil {
		return nil, err
	}
	return append(ops, Operation{Op: "add", Path: path, Value: raw}), nil
}

func validUTF8(m map[string]string) bool {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// mapOps gives diff's operations between two non-empty maps of valid UTF-8
// strings (which encode and decode back unchanged) at path.
func mapOps(ops []Operation, path string, a, b map[string]string) []Operation {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := path + "/" + escapePointer(k)
		x, inA := a[k]
		y, inB := b[k]
		switch {
		case inA && !inB:
			ops = append(ops, Operation{Op: "remove", Path: p})
		case !inA && inB:
			ops = append(ops, Operation{Op: "add", Path: p, Value: y})
		case x != y:
			ops = append(ops, Operation{Op: "replace", Path: p, Value: y})
		}
	}
	return ops
}
