package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"go.yaml.in/yaml/v2"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
)

// ManifestOptions steer InjectManifests.
type ManifestOptions struct {
	Config Config
	// Namespace is used for objects that name none; default "default".
	Namespace string
	// NamespaceLabels are the labels of every object's namespace, so that
	// the decision is the webhook's (pod-security levels included).
	NamespaceLabels map[string]string
}

// ObjectReport says what InjectManifests did with one pod or pod template.
type ObjectReport struct {
	APIVersion, Kind, Namespace, Name string
	Decision                          Decision
	Injected                          bool
	Warnings                          []string
	Status                            Status
}

// templatePaths are where each workload kind keeps its pod template.
var templatePaths = map[string][]string{
	"Pod":                   nil,
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// maxManifestBytes bounds what InjectManifests reads.
const maxManifestBytes = 64 << 20

// InjectManifests reads YAML or JSON documents (one or many, "---"
// separated, or JSON values one after another; a List's items are handled
// one by one), injects Pods and the pod templates of Deployments,
// StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs and
// CronJobs that opt in, and writes every object as YAML documents separated
// by "---". Objects that do not opt in come out unchanged (re-encoded:
// comments and key order are not kept). Fields it does not know are kept:
// the injection is applied to each object as a JSONPatch.
func InjectManifests(r io.Reader, opts ManifestOptions) ([]byte, []ObjectReport, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, nil, err
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(io.LimitReader(r, maxManifestBytes), 4096)
	var (
		out     bytes.Buffer
		reports []ObjectReport
	)
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, reports, fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue // an empty document
		}
		doc, err := unmarshalJSON(raw)
		if err != nil {
			return nil, reports, fmt.Errorf("document %d: %w", n, err)
		}
		if doc == nil {
			continue // a null document
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, reports, fmt.Errorf("document %d is not an object", n)
		}
		reps, err := injectObject(obj, opts, 0)
		reports = append(reports, reps...)
		if err != nil {
			return nil, reports, fmt.Errorf("document %d: %w", n, err)
		}
		y, err := yaml.Marshal(orderedYAML(obj))
		if err != nil {
			return nil, reports, fmt.Errorf("document %d: %w", n, err)
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(y)
	}
	return out.Bytes(), reports, nil
}

// injectObject injects obj in place when it is a pod or a workload whose
// template opts in; a List's items are handled one by one.
func injectObject(obj map[string]any, opts ManifestOptions, depth int) ([]ObjectReport, error) {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		if depth > 4 {
			return nil, fmt.Errorf("lists nested too deep")
		}
		var reports []ObjectReport
		for i, it := range items {
			o, ok := it.(map[string]any)
			if !ok {
				return reports, fmt.Errorf("%s item %d is not an object", kind, i)
			}
			reps, err := injectObject(o, opts, depth+1)
			reports = append(reports, reps...)
			if err != nil {
				return reports, fmt.Errorf("%s item %d: %w", kind, i, err)
			}
		}
		return reports, nil
	}
	path, ok := templatePaths[kind]
	if !ok {
		return nil, nil
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if ns == "" {
		ns = opts.Namespace
	}
	rep := ObjectReport{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name}

	// The pod (or template) as a JSON tree, and where it sits in obj.
	var (
		parent map[string]any
		key    string
		tmpl   any = obj
	)
	for _, k := range path {
		m, ok := tmpl.(map[string]any)
		if !ok {
			rep.Decision.Reason = "no pod template at ." + strings.Join(path, ".")
			return []ObjectReport{rep}, nil
		}
		parent, key, tmpl = m, k, m[k]
	}
	tm, ok := tmpl.(map[string]any)
	if !ok {
		rep.Decision.Reason = "no pod template at ." + strings.Join(path, ".")
		return []ObjectReport{rep}, nil
	}
	b, err := json.Marshal(tm)
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, &pod); err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	pod.APIVersion, pod.Kind = "", ""
	pod.Namespace = ns
	res, err := Mutate(&pod, Namespace{Name: ns, Labels: opts.NamespaceLabels}, opts.Config)
	if err != nil {
		return nil, err
	}
	rep.Decision, rep.Injected, rep.Warnings, rep.Status = res.Decision, res.Injected, res.Warnings, res.Status
	if res.Patch == nil {
		return []ObjectReport{rep}, nil
	}
	patched, err := applyPatchTree(tm, res.Patch, true)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	// The patched object must decode to exactly Mutate's pod.
	pb, err := json.Marshal(patched)
	if err != nil {
		return nil, err
	}
	var check corev1.Pod
	if err := kjson.UnmarshalCaseSensitivePreserveInts(pb, &check); err != nil {
		return nil, fmt.Errorf("%s %q: the injected pod template does not decode: %w", kind, name, err)
	}
	check.APIVersion, check.Kind, check.Namespace = "", "", ns
	want, err := json.Marshal(res.Pod)
	if err != nil {
		return nil, err
	}
	if got, err := json.Marshal(&check); err != nil || !bytes.Equal(got, want) {
		return nil, fmt.Errorf("%s %q: cannot inject this pod template faithfully", kind, name)
	}
	if parent != nil {
		parent[key] = patched
	}
	return []ObjectReport{rep}, nil
}

// orderedYAML turns a decoded JSON tree into one whose maps are
// yaml.MapSlices sorted by key, so the output does not depend on the YAML
// encoder's own key order (which is not a total order on odd keys).
func orderedYAML(v any) any {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ms := make(yaml.MapSlice, 0, len(t))
		for _, k := range keys {
			ms = append(ms, yaml.MapItem{Key: k, Value: orderedYAML(t[k])})
		}
		return ms
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = orderedYAML(t[i])
		}
		return out
	}
	return v
}
