package inject

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// sortedJSON returns the JSON of v with every object's members sorted by
// name: the bytes json.Marshal gives for v's JSON decoded generically (as
// diff sees it), without building the generic tree. Strings and numbers are
// copied as encoding/json wrote them, which is how they encode again after
// decoding, except for invalid UTF-8 (written as \ufffd and decoded to
// U+FFFD, which then encodes unescaped); such input takes the generic path.
func sortedJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte(`\ufffd`)) || !utf8.Valid(b) {
		return genericJSON(b)
	}
	out, rest, ok := appendSorted(make([]byte, 0, len(b)), b)
	if !ok || len(rest) != 0 {
		return genericJSON(b)
	}
	return out, nil
}

func genericJSON(b []byte) (json.RawMessage, error) {
	g, err := unmarshalJSON(b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(g)
}

// appendSorted appends the first JSON value of src, compact as
// encoding/json writes it, with object members sorted, and returns the rest
// of src. ok is false on anything it does not expect.
func appendSorted(dst, src []byte) (_, rest []byte, ok bool) {
	if len(src) == 0 {
		return dst, src, false
	}
	switch src[0] {
	case '{':
		src = src[1:]
		if len(src) > 0 && src[0] == '}' {
			return append(dst, '{', '}'), src[1:], true
		}
		// The members are appended as they come, then reordered if needed.
		type member struct {
			key        []byte // the decoded name
			start, end int    // of `"name":value` in dst
		}
		var buf [16]member
		members := buf[:0]
		open := len(dst)
		dst = append(dst, '{')
		for {
			n, ok := stringLen(src)
			if !ok || len(src) <= n || src[n] != ':' {
				return dst, src, false
			}
			key := src[1 : n-1]
			if !reencodes(src[:n]) {
				return dst, src, false
			}
			if bytes.IndexByte(key, '\\') >= 0 {
				var k string
				if json.Unmarshal(src[:n], &k) != nil {
					return dst, src, false
				}
				key = []byte(k)
			}
			if len(members) > 0 {
				dst = append(dst, ',')
			}
			m := member{key: key, start: len(dst)}
			dst = append(dst, src[:n+1]...)
			if dst, src, ok = appendSorted(dst, src[n+1:]); !ok {
				return dst, src, false
			}
			m.end = len(dst)
			members = append(members, m)
			if len(src) == 0 {
				return dst, src, false
			}
			if src[0] == '}' {
				src = src[1:]
				break
			}
			if src[0] != ',' {
				return dst, src, false
			}
			src = src[1:]
		}
		cmp := func(a, b member) int { return bytes.Compare(a.key, b.key) }
		if !slices.IsSortedFunc(members, cmp) {
			slices.SortStableFunc(members, cmp)
			body := slices.Clone(dst[open+1:])
			dst = dst[:open+1]
			for i, m := range members {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, body[m.start-open-1:m.end-open-1]...)
			}
		}
		for i := 1; i < len(members); i++ {
			if bytes.Equal(members[i].key, members[i-1].key) {
				return dst, src, false // duplicate names: leave it to the generic path
			}
		}
		return append(dst, '}'), src, true
	case '[':
		dst = append(dst, '[')
		src = src[1:]
		if len(src) > 0 && src[0] == ']' {
			return append(dst, ']'), src[1:], true
		}
		for {
			if dst, src, ok = appendSorted(dst, src); !ok || len(src) == 0 {
				return dst, src, false
			}
			c := src[0]
			dst, src = append(dst, c), src[1:]
			switch c {
			case ']':
				return dst, src, true
			case ',':
			default:
				return dst, src, false
			}
		}
	case '"':
		n, ok := stringLen(src)
		if !ok || !reencodes(src[:n]) {
			return dst, src, false
		}
		return append(dst, src[:n]...), src[n:], true
	}
	// A number, true, false or null.
	n := 0
	for n < len(src) && src[n] != ',' && src[n] != '}' && src[n] != ']' {
		n++
	}
	if n == 0 {
		return dst, src, false
	}
	return append(dst, src[:n]...), src[n:], true
}

// reencodes reports whether the JSON string s (valid UTF-8) is what
// encoding/json writes for its value, so that decoding and encoding it again
// gives s: always so without escapes.
func reencodes(s []byte) bool {
	if bytes.IndexByte(s, '\\') < 0 {
		return true
	}
	var v string
	if json.Unmarshal(s, &v) != nil {
		return false
	}
	b, err := json.Marshal(v)
	return err == nil && bytes.Equal(b, s)
}

// stringLen is the length of the JSON string at the start of src, quotes
// included.
func stringLen(src []byte) (int, bool) {
	if len(src) == 0 || src[0] != '"' {
		return 0, false
	}
	for i := 1; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// marshalOps encodes ops as json.Marshal(ops) does; a json.RawMessage value
// must already be compact, as encoding/json would write it.
func marshalOps(ops []Operation) ([]byte, error) {
	buf := make([]byte, 0, 1024)
	buf = append(buf, '[')
	for i, o := range ops {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"op":`...)
		s, err := json.Marshal(o.Op)
		if err != nil {
			return nil, err
		}
		buf = append(buf, s...)
		buf = append(buf, `,"path":`...)
		if s, err = json.Marshal(o.Path); err != nil {
			return nil, err
		}
		buf = append(buf, s...)
		if o.Op != "remove" {
			buf = append(buf, `,"value":`...)
			if raw, ok := o.Value.(json.RawMessage); ok {
				buf = append(buf, raw...)
			} else {
				if s, err = json.Marshal(o.Value); err != nil {
					return nil, err
				}
				buf = append(buf, s...)
			}
		}
		buf = append(buf, '}')
	}
	return append(buf, ']'), nil
}
