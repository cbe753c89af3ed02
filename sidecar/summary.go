package sidecar

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/internal/redact"
)

// maxArgs bounds the request summary in an audit record.
const maxArgs = 512

// summarize renders a request's set fields, in declaration order, as "name=value" pairs for
// the audit log (pid, filter, duration, profile type). Fields whose names
// look secret are redacted; bytes and nested messages are summarised by size.
func summarize(m any) string {
	pm, ok := m.(proto.Message)
	if !ok || pm == nil {
		return ""
	}
	var b strings.Builder
	msg := pm.ProtoReflect()
	fields := msg.Descriptor().Fields()
	for i := 0; i < fields.Len() && b.Len() < maxArgs; i++ {
		fd := fields.Get(i)
		if !msg.Has(fd) {
			continue
		}
		v := msg.Get(fd)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		name := string(fd.Name())
		b.WriteString(name)
		b.WriteByte('=')
		switch {
		case redact.IsSecretName(name):
			b.WriteString(redact.Redacted)
		case fd.IsList():
			fmt.Fprintf(&b, "[%d items]", v.List().Len())
		case fd.IsMap():
			fmt.Fprintf(&b, "{%d entries}", v.Map().Len())
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			b.WriteString(messageSummary(v.Message()))
		case fd.Kind() == protoreflect.BytesKind:
			fmt.Fprintf(&b, "<%d bytes>", len(v.Bytes()))
		case fd.Kind() == protoreflect.EnumKind:
			if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
				b.WriteString(string(ev.Name()))
			} else {
				fmt.Fprint(&b, v.Enum())
			}
		case fd.Kind() == protoreflect.StringKind:
			fmt.Fprintf(&b, "%q", v.String())
		default:
			fmt.Fprint(&b, v.Interface())
		}
	}
	s := b.String()
	if len(s) > maxArgs {
		s = s[:maxArgs] + "..."
	}
	return s
}

// messageSummary renders well-known nested messages (Duration, Timestamp) by value.
func messageSummary(m protoreflect.Message) string {
	if d, ok := m.Interface().(*durationpb.Duration); ok {
		return d.AsDuration().String()
	}
	return "{" + summarize(m.Interface()) + "}"
}
