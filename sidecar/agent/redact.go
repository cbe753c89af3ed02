package agent

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// redactedValue replaces a withheld value.
const redactedValue = "[redacted]"

// secretWords mirrors internal/redact's list. It is duplicated here, not
// imported, because the agent is linked into apps and may import only the
// standard library, grpc, protobuf and fgprof (a test enforces it); keep the
// two lists in step.
var secretWords = map[string]bool{
	"token": true, "tokens": true, "password": true, "passwd": true, "pwd": true,
	"pass": true, "passphrase": true, "secret": true, "secrets": true, "key": true,
	"keys": true, "apikey": true, "credential": true, "credentials": true,
	"creds": true, "auth": true, "authorization": true, "cookie": true,
	"cookies": true, "session": true, "private": true, "privatekey": true,
	"signature": true, "dsn": true, "sas": true,
}

// secretName reports whether a key looks like it names a secret: split into
// words at separators and case changes, one word is a secret word.
func secretName(name string) bool {
	for _, w := range nameWords(name) {
		if secretWords[w] {
			return true
		}
	}
	return false
}

// nameWords splits "X-Auth-Token" into x auth token, "apiKey" into api key,
// "HTTPToken" into http token, "DB_PASSWORD" into db password.
func nameWords(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])):
			flush()
		case unicode.IsUpper(r) && i > 0 && i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1]):
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return out
}

// encoded is a registered value as redacted JSON.
type encoded struct {
	json     string
	redacted []string // JSON paths withheld, e.g. "db.password", "peers[2].token"
}

// maxDepth stops cycles and absurd nesting.
const maxDepth = 64

// encodeRedacted encodes v like encoding/json (field names from json tags,
// omitempty, "-", Marshaler types), withholding the values of struct fields
// tagged `triage:"secret"` and of object keys that look secret, before
// anything is encoded: a secret never reaches a buffer.
func encodeRedacted(v any) (encoded, error) {
	e := &redactor{}
	tree, err := e.value(reflect.ValueOf(v), "", 0)
	if err != nil {
		return encoded{}, err
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return encoded{}, fmt.Errorf("encode: %w", err)
	}
	return encoded{json: string(b), redacted: e.redacted}, nil
}

// redactor walks a value into a tree json.Marshal encodes: object (ordered
// members), []any, and json.RawMessage leaves.
type redactor struct {
	redacted []string
}

type member struct {
	key   string
	value any
}

// object is a JSON object whose members keep their order (struct field order,
// or sorted map keys, as encoding/json does).
type object []member

// MarshalJSON implements json.Marshaler.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (e *redactor) withhold(path string) any {
	e.redacted = append(e.redacted, path)
	return redactedValue
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func (e *redactor) value(v reflect.Value, path string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%s: nested deeper than %d (a cycle?)", orRoot(path), maxDepth)
	}
	if !v.IsValid() {
		return nil, nil
	}
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return nil, nil
	}
	t := v.Type()
	if t.Implements(marshalerType) || t.Implements(textMarshalerType) {
		// A type that encodes itself: encode it, then redact the keys of
		// whatever it produced.
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", orRoot(path), err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			return nil, fmt.Errorf("%s: %w", orRoot(path), err)
		}
		return e.generic(x, path), nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return e.value(v.Elem(), path, depth+1)
	case reflect.Struct:
		o := object{}
		if err := e.structFields(v, path, depth, &o); err != nil {
			return nil, err
		}
		return o, nil
	case reflect.Map:
		return e.mapValue(v, path, depth)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil, nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return leaf(v, path) // base64, as encoding/json does
		}
		out := make([]any, v.Len())
		for i := range out {
			x, err := e.value(v.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	default:
		return leaf(v, path)
	}
}

func leaf(v reflect.Value, path string) (any, error) {
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", orRoot(path), err)
	}
	return json.RawMessage(b), nil
}

// structFields appends v's fields to o, inlining embedded structs the way
// encoding/json does (the first field of a name wins).
func (e *redactor) structFields(v reflect.Value, path string, depth int, o *object) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := e.structFields(fv, path, depth+1, o); err != nil {
					return err
				}
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if slices.ContainsFunc(*o, func(m member) bool { return m.key == name }) {
			continue
		}
		if omit(fv, opts) {
			continue
		}
		p := join(path, name)
		if sf.Tag.Get("triage") == "secret" || secretName(name) {
			*o = append(*o, member{name, e.withhold(p)})
			continue
		}
		x, err := e.value(fv, p, depth+1)
		if err != nil {
			return err
		}
		*o = append(*o, member{name, x})
	}
	return nil
}

// omit applies omitempty and omitzero.
func omit(v reflect.Value, opts string) bool {
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "omitzero":
			if v.IsZero() {
				return true
			}
		case "omitempty":
			switch v.Kind() {
			case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
				if v.Len() == 0 {
					return true
				}
			case reflect.Pointer, reflect.Interface:
				if v.IsNil() {
					return true
				}
			case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
				reflect.Float32, reflect.Float64:
				if v.IsZero() {
					return true
				}
			}
		}
	}
	return false
}

func (e *redactor) mapValue(v reflect.Value, path string, depth int) (any, error) {
	if v.IsNil() {
		return nil, nil
	}
	type kv struct {
		key string
		val reflect.Value
	}
	entries := make([]kv, 0, v.Len())
	it := v.MapRange()
	for it.Next() {
		k, err := mapKey(it.Key())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", orRoot(path), err)
		}
		entries = append(entries, kv{k, it.Value()})
	}
	slices.SortFunc(entries, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	o := make(object, 0, len(entries))
	for _, en := range entries {
		p := join(path, en.key)
		if secretName(en.key) {
			o = append(o, member{en.key, e.withhold(p)})
			continue
		}
		x, err := e.value(en.val, p, depth+1)
		if err != nil {
			return nil, err
		}
		o = append(o, member{en.key, x})
	}
	return o, nil
}

// mapKey stringifies a key as encoding/json does.
func mapKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		b, err := tm.MarshalText()
		return string(b), err
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", errors.New("unsupported map key type " + k.Type().String())
}

// generic redacts a decoded JSON value (from a Marshaler).
func (e *redactor) generic(x any, path string) any {
	switch x := x.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		o := make(object, 0, len(keys))
		for _, k := range keys {
			p := join(path, k)
			if secretName(k) {
				o = append(o, member{k, e.withhold(p)})
				continue
			}
			o = append(o, member{k, e.generic(x[k], p)})
		}
		return o
	case []any:
		for i := range x {
			x[i] = e.generic(x[i], path+"["+strconv.Itoa(i)+"]")
		}
		return x
	default:
		return x
	}
}

// join extends a JSON path with a key: "a.b", or a["odd key"] when the key
// is not a plain identifier.
func join(path, key string) string {
	plain := key != "" && strings.IndexFunc(key, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-')
	}) < 0
	if !plain {
		q, _ := json.Marshal(key)
		return path + "[" + string(q) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "value"
	}
	return path
}
