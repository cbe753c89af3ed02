package envoyadmin

import (
	"bytes"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Scrub redacts the secrets in a typed message in place (see policy.go for
// what counts), descending into every Any whose type is known, and returns
// how many values it replaced. Decode already scrubs; Scrub is for typed
// dumps obtained otherwise.
func Scrub(m proto.Message) int {
	if m == nil {
		return 0
	}
	s := &scrubber{}
	s.message(m.ProtoReflect(), false)
	return s.n
}

// ScrubJSON redacts the secrets in the JSON form of a message of type md
// (for a config dump: ScrubConfigDumpJSON) and returns the scrubbed JSON and
// how many values it replaced. Unchanged input is returned as is.
func ScrubJSON(raw []byte, md protoreflect.MessageDescriptor) ([]byte, int, error) {
	res, err := walkJSON(raw, md, false)
	if err != nil {
		return nil, 0, err
	}
	return res.out, res.redacted, nil
}

// ScrubConfigDumpJSON redacts the secrets in a /config_dump answer.
func ScrubConfigDumpJSON(raw []byte) ([]byte, int, error) {
	return ScrubJSON(raw, configDumpDesc())
}

type scrubber struct{ n int }

var (
	redactedStringValue = protoreflect.ValueOfString(redactedString)
	redactedBytesValue  = protoreflect.ValueOfBytes([]byte(redactedString))
)

// redactValue returns the redacted form of a string or bytes value, and
// whether it changed.
func (s *scrubber) redactValue(kind protoreflect.Kind, v protoreflect.Value, secret bool) (protoreflect.Value, bool) {
	switch kind {
	case protoreflect.StringKind:
		str := v.String()
		if str == "" || str == redactedString || (!secret && (len(str) < 32 || !holdsPrivateKey([]byte(str)))) {
			return v, false
		}
		s.n++
		return redactedStringValue, true
	case protoreflect.BytesKind:
		b := v.Bytes()
		if len(b) == 0 || string(b) == redactedString || (!secret && (len(b) < 32 || !holdsPrivateKey(b))) {
			return v, false
		}
		s.n++
		return redactedBytesValue, true
	}
	return v, false
}

func (s *scrubber) message(m protoreflect.Message, secret bool) {
	mi := infoFor(m.Descriptor())
	switch mi.kind {
	case mkAny:
		s.any(m, secret)
		return
	case mkSchemaless:
		s.schemaless(m, secret)
		return
	case mkHeaderValue:
		if k := m.Descriptor().Fields().ByName("key"); k != nil && sensitiveHeader(m.Get(k).String()) {
			secret = true
		}
	}
	type set struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var sets []set
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		sec := secret
		if fi := mi.fields[string(fd.Name())]; fi != nil && !fd.IsExtension() {
			if mi.kind == mkDataSource {
				sec = secret && fi.inline
			} else if mi.kind == mkHeaderValue && fd.Name() == "key" {
				sec = false
			} else {
				sec = secret || fi.secret
			}
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
					s.message(l.Get(i).Message(), sec)
				} else if nv, ok := s.redactValue(fd.Kind(), l.Get(i), sec); ok {
					l.Set(i, nv)
				}
			}
		case fd.IsMap():
			mp := v.Map()
			vd := fd.MapValue()
			var keys []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if vd.Kind() == protoreflect.MessageKind {
					s.message(mv.Message(), sec)
				} else {
					keys = append(keys, k)
				}
				return true
			})
			for _, k := range keys {
				if nv, ok := s.redactValue(vd.Kind(), mp.Get(k), sec); ok {
					mp.Set(k, nv)
				}
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			s.message(v.Message(), sec)
		default:
			if nv, ok := s.redactValue(fd.Kind(), v, sec); ok {
				sets = append(sets, set{fd, nv})
			}
		}
		return true
	})
	for _, x := range sets {
		m.Set(x.fd, x.v)
	}
}

// any scrubs inside an Any of a known type and re-packs it when changed.
func (s *scrubber) any(m protoreflect.Message, secret bool) {
	fds := m.Descriptor().Fields()
	urlFD, valFD := fds.ByName("type_url"), fds.ByName("value")
	if urlFD == nil || valFD == nil {
		return
	}
	url := m.Get(urlFD).String()
	val := m.Get(valFD).Bytes()
	if url == "" || len(val) == 0 {
		return
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if err != nil {
		// Unknown type: its content was never decoded (see Decode). Redact
		// any private key the bytes may carry anyway.
		if bytes.Contains(val, pemKey) {
			m.Set(valFD, protoreflect.ValueOfBytes(nil))
			s.n++
		}
		return
	}
	inner := mt.New()
	if err := (proto.UnmarshalOptions{Resolver: resolver{}}).Unmarshal(val, inner.Interface()); err != nil {
		// Undecodable bytes cannot be shown either; drop them if they
		// could hold a key.
		if secret || bytes.Contains(val, pemKey) {
			m.Set(valFD, protoreflect.ValueOfBytes(nil))
			s.n++
		}
		return
	}
	before := s.n
	s.message(inner, secret)
	if s.n == before {
		return
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner.Interface())
	if err != nil {
		m.Set(valFD, protoreflect.ValueOfBytes(nil))
		return
	}
	m.Set(valFD, protoreflect.ValueOfBytes(b))
}

// schemaless scrubs a Struct, Value or ListValue.
func (s *scrubber) schemaless(m protoreflect.Message, secret bool) {
	fds := m.Descriptor().Fields()
	switch m.Descriptor().FullName() {
	case "google.protobuf.Struct":
		mp := m.Get(fds.ByName("fields")).Map()
		mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			s.schemaless(v.Message(), secret || schemalessSecretKey(k.String()))
			return true
		})
	case "google.protobuf.ListValue":
		l := m.Get(fds.ByName("values")).List()
		for i := 0; i < l.Len(); i++ {
			s.schemaless(l.Get(i).Message(), secret)
		}
	case "google.protobuf.Value":
		od := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind"))
		if od == nil {
			return
		}
		switch od.Name() {
		case "string_value":
			if nv, ok := s.redactValue(protoreflect.StringKind, m.Get(od), secret); ok {
				m.Set(od, nv)
			}
		case "struct_value", "list_value":
			s.schemaless(m.Get(od).Message(), secret)
		}
	}
}
