package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Operation is one RFC 6902 JSONPatch operation.
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// MarshalJSON keeps "value" for add and replace even when it is null.
func (o Operation) MarshalJSON() ([]byte, error) {
	if o.Op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{o.Op, o.Path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{o.Op, o.Path, o.Value})
}

// CreatePatch returns the JSONPatch (RFC 6902) that turns the JSON encoding
// of from into that of to, or nil when they are equal. Objects are diffed
// member by member; arrays element by element, with one add per element
// appended; an array that shrank is replaced whole.
func CreatePatch(from, to any) ([]byte, error) {
	a, err := toGeneric(from)
	if err != nil {
		return nil, err
	}
	b, err := toGeneric(to)
	if err != nil {
		return nil, err
	}
	ops := diff(nil, "", a, b)
	if len(ops) == 0 {
		return nil, nil
	}
	return json.Marshal(ops)
}

func toGeneric(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return unmarshalJSON(b)
}

// unmarshalJSON decodes one JSON value, keeping numbers exact (json.Number).
func unmarshalJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("inject: trailing data after a JSON value")
	}
	return v, nil
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func diff(ops []Operation, path string, a, b any) []Operation {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "/" + escapePointer(k)
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case inA && !inB:
				ops = append(ops, Operation{Op: "remove", Path: p})
			case !inA && inB:
				ops = append(ops, Operation{Op: "add", Path: p, Value: y})
			default:
				ops = diff(ops, p, x, y)
			}
		}
		return ops
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		if len(bv) >= len(av) {
			for i := range av {
				ops = diff(ops, path+"/"+strconv.Itoa(i), av[i], bv[i])
			}
			for i := len(av); i < len(bv); i++ {
				ops = append(ops, Operation{Op: "add", Path: path + "/" + strconv.Itoa(i), Value: bv[i]})
			}
			return ops
		}
	}
	if reflect.DeepEqual(a, b) {
		return ops
	}
	return append(ops, Operation{Op: "replace", Path: path, Value: b})
}

// ApplyPatch applies an RFC 6902 patch of add, remove and replace operations
// (the ones CreatePatch makes; test, move and copy are also accepted) to a
// JSON document. With lenient set, add and replace create missing parent
// objects and replace of a missing member adds it: manifests may omit what
// the API server's encoding always has (an empty metadata, say).
func ApplyPatch(doc, patch []byte, lenient bool) ([]byte, error) {
	root, err := unmarshalJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("inject: document: %w", err)
	}
	root, err = applyPatchTree(root, patch, lenient)
	if err != nil {
		return nil, err
	}
	return json.Marshal(root)
}

// applyPatchTree applies patch to a decoded JSON tree, which it may modify.
func applyPatchTree(root any, patch []byte, lenient bool) (any, error) {
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		From  string          `json:"from"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, fmt.Errorf("inject: patch: %w", err)
	}
	for i, op := range ops {
		var val any
		if len(op.Value) > 0 {
			v, err := unmarshalJSON(op.Value)
			if err != nil {
				return nil, err
			}
			val = v
		} else if op.Op == "add" || op.Op == "replace" || op.Op == "test" {
			return nil, fmt.Errorf("inject: patch op %d (%s %s) has no value", i, op.Op, op.Path)
		}
		var err error
		switch op.Op {
		case "add":
			root, err = apply(root, op.Path, "add", val, lenient)
		case "replace":
			root, err = apply(root, op.Path, "replace", val, lenient)
		case "remove":
			root, err = apply(root, op.Path, "remove", nil, false)
		case "test":
			var cur any
			cur, err = get(root, op.Path)
			if err == nil && !reflect.DeepEqual(cur, val) {
				err = fmt.Errorf("test failed")
			}
		case "copy", "move":
			var cur any
			cur, err = get(root, op.From)
			if err == nil && op.Op == "move" {
				root, err = apply(root, op.From, "remove", nil, false)
			}
			if err == nil {
				root, err = apply(root, op.Path, "add", deepCopyJSON(cur), false)
			}
		default:
			err = fmt.Errorf("unknown op")
		}
		if err != nil {
			return nil, fmt.Errorf("inject: patch op %d (%s %s): %w", i, op.Op, op.Path, err)
		}
	}
	return root, nil
}

func deepCopyJSON(v any) any {
	b, _ := json.Marshal(v)
	out, _ := unmarshalJSON(b)
	return out
}

func splitPointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("path %q does not start with /", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

func get(root any, path string) (any, error) {
	parts, err := splitPointer(path)
	if err != nil {
		return nil, err
	}
	cur := root
	for _, p := range parts {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[p]
			if !ok {
				return nil, fmt.Errorf("no member %q", p)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("bad index %q", p)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("cannot descend into a scalar at %q", p)
		}
	}
	return cur, nil
}

// apply performs add, replace or remove at path and returns the new root.
func apply(root any, path, op string, val any, lenient bool) (any, error) {
	parts, err := splitPointer(path)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		if op == "remove" {
			return nil, nil
		}
		return val, nil
	}
	return applyAt(root, parts, op, val, lenient)
}

func applyAt(node any, parts []string, op string, val any, lenient bool) (any, error) {
	key, last := parts[0], len(parts) == 1
	if node == nil && lenient && op != "remove" {
		node = map[string]any{}
	}
	switch c := node.(type) {
	case map[string]any:
		if last {
			_, exists := c[key]
			switch {
			case op == "add", op == "replace" && (exists || lenient):
				c[key] = val
			case !exists:
				return nil, fmt.Errorf("no member %q", key)
			default: // remove
				delete(c, key)
			}
			return c, nil
		}
		child, ok := c[key]
		if !ok && !(lenient && op != "remove") {
			return nil, fmt.Errorf("no member %q", key)
		}
		nc, err := applyAt(child, parts[1:], op, val, lenient)
		if err != nil {
			return nil, err
		}
		c[key] = nc
		return c, nil
	case []any:
		var i int
		if key == "-" && last && op == "add" {
			i = len(c)
		} else {
			n, err := strconv.Atoi(key)
			if err != nil || n < 0 || n > len(c) || (n == len(c) && !(last && op == "add")) || strconv.Itoa(n) != key {
				return nil, fmt.Errorf("bad index %q", key)
			}
			i = n
		}
		if !last {
			nc, err := applyAt(c[i], parts[1:], op, val, lenient)
			if err != nil {
				return nil, err
			}
			c[i] = nc
			return c, nil
		}
		switch op {
		case "add":
			c = append(c, nil)
			copy(c[i+1:], c[i:])
			c[i] = val
		case "replace":
			c[i] = val
		default:
			c = append(c[:i], c[i+1:]...)
		}
		return c, nil
	}
	return nil, fmt.Errorf("cannot descend into %T at %q", node, key)
}
