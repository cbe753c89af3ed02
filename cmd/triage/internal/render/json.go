package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonOptions are the stable JSON form for scripts: the .proto field names
// (snake_case), unset fields omitted.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true}

// JSON writes m as indented JSON with the .proto field names. protojson
// varies its white space on purpose; re-indenting makes it byte-stable.
func JSON(w io.Writer, m proto.Message) error {
	b, err := MarshalJSON(m)
	if err != nil {
		return err
	}
	return writeIndented(w, b)
}

// MarshalJSON is m in compact JSON with the .proto field names, for
// embedding in a larger document.
func MarshalJSON(m proto.Message) (json.RawMessage, error) {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return b, nil
}

// Object writes an object of named parts as indented JSON; the keys keep
// their order, a nil part is omitted.
func Object(w io.Writer, keys []string, parts map[string]json.RawMessage) error {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, k := range keys {
		v, ok := parts[k]
		if !ok || v == nil {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return writeIndented(w, b.Bytes())
}

func writeIndented(w io.Writer, compact []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		return fmt.Errorf("indent JSON: %w", err)
	}
	out.WriteByte('\n')
	if _, err := w.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
