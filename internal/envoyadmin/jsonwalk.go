package envoyadmin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The JSON walker reads a config dump once, guided by the proto schema (the
// root message, then each Any's @type), and
//   - redacts secrets by editing the JSON in place (see policy.go), so the
//     raw answer and the typed dump decoded from it agree;
//   - records each Any whose type is unknown: its path and its JSON;
//   - detects pre-v3 admin types and counts v2 resource types.
// It checks only as much syntax as it needs; protojson validates the rest.

const maxDepth = 10000 // protojson's default recursion limit

type edit struct {
	start, end int // span in the input
	repl       []byte
}

type pathElem struct {
	key []byte
	idx int // -1 for a key
}

type unknownSpan struct {
	start, end int
	path       string
	typeURL    string
}

type walkResult struct {
	out          []byte
	unknown      []UnknownType
	v2alpha      []string
	legacy       map[string]int
	buildVersion string
	redacted     int
}

func (r *walkResult) legacyCounts() []TypeCount {
	if len(r.legacy) == 0 {
		return nil
	}
	return sortedCounts(r.legacy)
}

type walker struct {
	in       []byte
	pos      int
	depth    int
	capture  bool
	edits    []edit
	path     []pathElem
	spans    []unknownSpan
	res      walkResult
	v2alphaS map[string]bool
}

var errDepth = errors.New("JSON nested too deep")

// walkJSON walks in as a JSON message of type md.
func walkJSON(in []byte, md protoreflect.MessageDescriptor, capture bool) (*walkResult, error) {
	w := &walker{in: in, capture: capture}
	w.ws()
	if err := w.messageValue(infoFor(md), false); err != nil {
		return nil, err
	}
	w.ws()
	if w.pos != len(w.in) {
		return nil, w.errorf("unexpected %q after the end of the JSON value", w.peekText())
	}
	w.finish()
	return &w.res, nil
}

func (w *walker) finish() {
	w.res.out = w.in
	if len(w.edits) > 0 {
		sort.Slice(w.edits, func(i, j int) bool { return w.edits[i].start < w.edits[j].start })
		n := len(w.in)
		for _, e := range w.edits {
			n += len(e.repl) - (e.end - e.start)
		}
		out := make([]byte, 0, n)
		last := 0
		for _, e := range w.edits {
			if e.start < last { // overlapping edit: the outer one already applied
				continue
			}
			out = append(out, w.in[last:e.start]...)
			out = append(out, e.repl...)
			last = e.end
		}
		out = append(out, w.in[last:]...)
		w.res.out = out
	}
	// Map unknown spans to the output.
	shift := func(pos int) int {
		d := 0
		for _, e := range w.edits {
			if e.end > pos {
				break
			}
			d += len(e.repl) - (e.end - e.start)
		}
		return pos + d
	}
	if len(w.edits) > 64 && len(w.spans) > 0 {
		// Prefix sums for large dumps.
		ends := make([]int, len(w.edits))
		sums := make([]int, len(w.edits))
		d := 0
		for i, e := range w.edits {
			d += len(e.repl) - (e.end - e.start)
			ends[i], sums[i] = e.end, d
		}
		shift = func(pos int) int {
			i := sort.Search(len(ends), func(i int) bool { return ends[i] > pos })
			if i == 0 {
				return pos
			}
			return pos + sums[i-1]
		}
	}
	for _, s := range w.spans {
		a, b := shift(s.start), shift(s.end)
		w.res.unknown = append(w.res.unknown, UnknownType{Path: s.path, TypeURL: s.typeURL, JSON: w.res.out[a:b:b]})
	}
}

func (w *walker) errorf(format string, args ...any) error {
	line := 1 + bytes.Count(w.in[:min(w.pos, len(w.in))], []byte("\n"))
	return fmt.Errorf("offset %d (line %d): %s", w.pos, line, fmt.Sprintf(format, args...))
}

func (w *walker) peekText() string {
	end := min(w.pos+20, len(w.in))
	return string(w.in[w.pos:end])
}

func (w *walker) ws() {
	for w.pos < len(w.in) {
		switch w.in[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *walker) peek() byte {
	if w.pos < len(w.in) {
		return w.in[w.pos]
	}
	return 0
}

func (w *walker) expect(c byte) error {
	w.ws()
	if w.peek() != c {
		if w.pos >= len(w.in) {
			return w.errorf("unexpected end of JSON, want %q", c)
		}
		return w.errorf("want %q, found %q", c, w.peekText())
	}
	w.pos++
	return nil
}

// str reads a string at pos and returns its span (quotes included) and
// whether it has escapes.
func (w *walker) str() (start, end int, esc bool, err error) {
	if w.peek() != '"' {
		return 0, 0, false, w.errorf("want a string, found %q", w.peekText())
	}
	start = w.pos
	i := w.pos + 1
	for i < len(w.in) {
		switch w.in[i] {
		case '"':
			w.pos = i + 1
			return start, w.pos, esc, nil
		case '\\':
			esc = true
			i += 2
			continue
		}
		i++
	}
	w.pos = len(w.in)
	return 0, 0, false, w.errorf("unterminated string")
}

func decodeString(raw []byte, esc bool) string {
	if !esc {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return string(raw[1 : len(raw)-1])
	}
	return s
}

// skip skips any JSON value.
func (w *walker) skip() error {
	w.ws()
	switch c := w.peek(); c {
	case '"':
		_, _, _, err := w.str()
		return err
	case '{', '[':
		if w.depth++; w.depth > maxDepth {
			return errDepth
		}
		defer func() { w.depth-- }()
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		w.pos++
		w.ws()
		if w.peek() == close {
			w.pos++
			return nil
		}
		for {
			if c == '{' {
				w.ws()
				if _, _, _, err := w.str(); err != nil {
					return err
				}
				if err := w.expect(':'); err != nil {
					return err
				}
			}
			if err := w.skip(); err != nil {
				return err
			}
			w.ws()
			switch w.peek() {
			case ',':
				w.pos++
			case close:
				w.pos++
				return nil
			default:
				return w.errorf("want ',' or %q, found %q", close, w.peekText())
			}
		}
	default:
		return w.scalar()
	}
}

// scalar skips a number, true, false or null.
func (w *walker) scalar() error {
	start := w.pos
	for w.pos < len(w.in) {
		switch w.in[w.pos] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			goto done
		}
		w.pos++
	}
done:
	if w.pos == start {
		if w.pos >= len(w.in) {
			return w.errorf("unexpected end of JSON")
		}
		return w.errorf("unexpected %q", w.peekText())
	}
	switch c := w.in[start]; {
	case c == '-' || ('0' <= c && c <= '9'), c == 't', c == 'f', c == 'n':
		return nil
	}
	w.pos = start
	return w.errorf("unexpected %q", w.peekText())
}

func (w *walker) isNull() bool {
	return bytes.HasPrefix(w.in[w.pos:], []byte("null"))
}

// members calls f for each member of the object at pos, with the key's raw
// bytes (without quotes) and pos at the value; f must consume the value.
func (w *walker) members(f func(key []byte, esc bool) error) error {
	if err := w.expect('{'); err != nil {
		return err
	}
	if w.depth++; w.depth > maxDepth {
		return errDepth
	}
	defer func() { w.depth-- }()
	w.ws()
	if w.peek() == '}' {
		w.pos++
		return nil
	}
	for {
		w.ws()
		ks, ke, esc, err := w.str()
		if err != nil {
			return err
		}
		if err := w.expect(':'); err != nil {
			return err
		}
		w.ws()
		key := w.in[ks+1 : ke-1]
		w.path = append(w.path, pathElem{key: key, idx: -1})
		err = f(key, esc)
		w.path = w.path[:len(w.path)-1]
		if err != nil {
			return err
		}
		w.ws()
		switch w.peek() {
		case ',':
			w.pos++
		case '}':
			w.pos++
			return nil
		default:
			return w.errorf("want ',' or '}', found %q", w.peekText())
		}
	}
}

// elements calls f for each element of the array at pos.
func (w *walker) elements(f func() error) error {
	if err := w.expect('['); err != nil {
		return err
	}
	if w.depth++; w.depth > maxDepth {
		return errDepth
	}
	defer func() { w.depth-- }()
	w.ws()
	if w.peek() == ']' {
		w.pos++
		return nil
	}
	for i := 0; ; i++ {
		w.ws()
		w.path = append(w.path, pathElem{idx: i})
		err := f()
		w.path = w.path[:len(w.path)-1]
		if err != nil {
			return err
		}
		w.ws()
		switch w.peek() {
		case ',':
			w.pos++
		case ']':
			w.pos++
			return nil
		default:
			return w.errorf("want ',' or ']', found %q", w.peekText())
		}
	}
}

func (w *walker) pathString() string {
	var b strings.Builder
	for i, p := range w.path {
		if p.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.idx))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.Write(p.key)
	}
	return b.String()
}

// redactString reads the string at pos and replaces it when secret, or when
// it holds a private key.
func (w *walker) redactString(secret, isBytes bool) error {
	w.ws()
	if w.peek() != '"' {
		return w.skip()
	}
	s, e, _, err := w.str()
	if err != nil {
		return err
	}
	w.maybeRedact(s, e, secret, isBytes)
	return nil
}

func (w *walker) maybeRedact(s, e int, secret, isBytes bool) {
	raw := w.in[s:e]
	if !secret && (e-s < 64 || !holdsPrivateKey(raw)) {
		return
	}
	repl := redactedStringJSON
	if isBytes {
		repl = redactedBytesJSON
	}
	if e-s == 2 || bytes.Equal(raw, repl) || bytes.Equal(raw, redactedStringJSON) {
		return // empty, or already redacted (Envoy redacts too)
	}
	w.edits = append(w.edits, edit{start: s, end: e, repl: repl})
	w.res.redacted++
}

// field walks the value of field fi.
func (w *walker) field(fi *fieldInfo, secret bool) error {
	fd := fi.fd
	if w.isNull() {
		return w.scalar()
	}
	switch {
	case fd.IsList():
		return w.elements(func() error { return w.single(fd, secret) })
	case fd.IsMap():
		vd := fd.MapValue()
		return w.members(func([]byte, bool) error { return w.single(vd, secret) })
	}
	return w.single(fd, secret)
}

func (w *walker) single(fd protoreflect.FieldDescriptor, secret bool) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return w.redactString(secret, false)
	case protoreflect.BytesKind:
		return w.redactString(secret, true)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.messageValue(infoFor(fd.Message()), secret)
	}
	return w.skip()
}

// messageValue walks a message of type mi at pos, in its JSON form.
func (w *walker) messageValue(mi *msgInfo, secret bool) error {
	w.ws()
	if w.isNull() {
		return w.scalar()
	}
	switch mi.kind {
	case mkAny:
		return w.any(secret)
	case mkSchemaless:
		return w.schemaless(secret)
	case mkScalarWKT:
		if mi.stringWrapper || mi.bytesWrapper {
			return w.redactString(secret, mi.bytesWrapper)
		}
		return w.skip()
	case mkHeaderValue:
		return w.headerValue(mi, secret)
	}
	return w.object(mi, secret, false)
}

// object walks a message's members; inAny skips "@type".
func (w *walker) object(mi *msgInfo, secret, inAny bool) error {
	return w.members(func(key []byte, esc bool) error {
		var fi *fieldInfo
		if esc {
			fi = mi.fields[decodeString(append(append([]byte{'"'}, key...), '"'), true)]
		} else {
			fi = mi.fields[string(key)]
		}
		if fi == nil {
			if inAny && string(key) == "@type" {
				return w.skip()
			}
			// A field go-control-plane does not know (protojson discards it):
			// still scrub it for the raw JSON.
			return w.schemaless(secret)
		}
		if fi.buildVersion && w.res.buildVersion == "" && w.peek() == '"' {
			s, e, esc, err := w.str()
			if err != nil {
				return err
			}
			w.res.buildVersion = decodeString(w.in[s:e], esc)
			return nil
		}
		if mi.kind == mkDataSource {
			// A sensitive DataSource loses its inline value and keeps where
			// it comes from (filename, environment variable).
			return w.field(fi, secret && fi.inline)
		}
		return w.field(fi, secret || fi.secret)
	})
}

// headerValue walks a HeaderValue and redacts its value when its key names a
// credential.
func (w *walker) headerValue(mi *msgInfo, secret bool) error {
	var name string
	type span struct {
		s, e    int
		isBytes bool
	}
	var vals []span
	err := w.members(func(key []byte, esc bool) error {
		k := string(key)
		switch k {
		case "key":
			if w.peek() == '"' {
				s, e, esc, err := w.str()
				if err != nil {
					return err
				}
				name = decodeString(w.in[s:e], esc)
				return nil
			}
		case "value", "raw_value", "rawValue":
			if w.peek() == '"' {
				s, e, _, err := w.str()
				if err != nil {
					return err
				}
				vals = append(vals, span{s, e, k != "value"})
				return nil
			}
		}
		if fi := mi.fields[k]; fi != nil {
			return w.field(fi, secret || fi.secret)
		}
		return w.schemaless(secret)
	})
	if err != nil {
		return err
	}
	sec := secret || sensitiveHeader(name)
	for _, v := range vals {
		w.maybeRedact(v.s, v.e, sec, v.isBytes)
	}
	return nil
}

// typeURLAt finds the "@type" member of the object at pos without moving.
func (w *walker) typeURLAt() (string, error) {
	save, saveDepth := w.pos, w.depth
	defer func() { w.pos, w.depth = save, saveDepth }()
	if err := w.expect('{'); err != nil {
		return "", err
	}
	for {
		w.ws()
		if w.peek() == '}' {
			return "", nil
		}
		ks, ke, esc, err := w.str()
		if err != nil {
			return "", err
		}
		if err := w.expect(':'); err != nil {
			return "", err
		}
		w.ws()
		if (!esc && string(w.in[ks+1:ke-1]) == "@type") || (esc && decodeString(w.in[ks:ke], esc) == "@type") {
			if w.peek() != '"' {
				return "", nil
			}
			s, e, esc, err := w.str()
			if err != nil {
				return "", err
			}
			return decodeString(w.in[s:e], esc), nil
		}
		if err := w.skip(); err != nil {
			return "", err
		}
		w.ws()
		if w.peek() != ',' {
			return "", nil
		}
		w.pos++
	}
}

// any walks a google.protobuf.Any: {"@type": url, ...fields} or, for a
// well-known type, {"@type": url, "value": ...}.
func (w *walker) any(secret bool) error {
	if w.peek() != '{' {
		return w.skip()
	}
	url, err := w.typeURLAt()
	if err != nil {
		return err
	}
	if url == "" {
		return w.schemaless(secret)
	}
	// A pre-v3 admin dump is recognised by its type URLs, whether or not
	// the v2alpha types are linked in (they are not: see types.go).
	if name := url[strings.LastIndexByte(url, '/')+1:]; strings.HasPrefix(name, "envoy.admin.v2alpha.") && len(w.path) == 2 && string(w.path[0].key) == "configs" {
		if w.v2alphaS == nil {
			w.v2alphaS = map[string]bool{}
		}
		if !w.v2alphaS[url] {
			w.v2alphaS[url] = true
			w.res.v2alpha = append(w.res.v2alpha, url)
		}
	}
	mt, ok := lookupType(url)
	if !ok {
		start := w.pos
		if err := w.schemaless(secret); err != nil {
			return err
		}
		if w.capture {
			w.spans = append(w.spans, unknownSpan{start: start, end: w.pos, path: w.pathString(), typeURL: url})
		}
		return nil
	}
	if IsLegacyType(url) {
		if w.res.legacy == nil {
			w.res.legacy = map[string]int{}
		}
		w.res.legacy[url]++
	}
	mi := infoFor(mt.Descriptor())
	switch mi.kind {
	case mkAny, mkSchemaless, mkScalarWKT, mkEmptyWKT:
		return w.members(func(key []byte, esc bool) error {
			if string(key) == "value" {
				return w.messageValue(mi, secret)
			}
			return w.skip()
		})
	}
	return w.object(mi, secret, true)
}

// lookupType resolves a type URL as Decode's resolver does: a linked type,
// or a v2 resource type as its v3 successor (LegacyV3).
func lookupType(url string) (protoreflect.MessageType, bool) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByURL(url); err == nil {
		return mt, true
	}
	if v3, ok := LegacyV3[url[strings.LastIndexByte(url, '/')+1:]]; ok {
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(v3)); err == nil {
			return mt, true
		}
	}
	return nil, false
}

// schemaless walks JSON without a schema (Struct values, unknown types,
// unknown fields): strings under secret-looking keys are redacted.
func (w *walker) schemaless(secret bool) error {
	w.ws()
	switch w.peek() {
	case '"':
		return w.redactString(secret, false)
	case '{':
		return w.members(func(key []byte, esc bool) error {
			k := string(key)
			if esc {
				k = decodeString(append(append([]byte{'"'}, key...), '"'), true)
			}
			if k == "@type" {
				return w.skip()
			}
			return w.schemaless(secret || schemalessSecretKey(k))
		})
	case '[':
		return w.elements(func() error { return w.schemaless(secret) })
	}
	return w.skip()
}
