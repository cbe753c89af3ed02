package client_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/client"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// part is a fake artifact stream message: at most one of its fields is set,
// as in a generated oneof.
type part struct {
	h *triagev1.ArtifactHeader
	c *triagev1.ArtifactChunk
	t *triagev1.ArtifactTrailer
}

func (p *part) GetHeader() *triagev1.ArtifactHeader   { return p.h }
func (p *part) GetChunk() *triagev1.ArtifactChunk     { return p.c }
func (p *part) GetTrailer() *triagev1.ArtifactTrailer { return p.t }

// fakeStream replays parts, then err (io.EOF when nil).
type fakeStream struct {
	parts []*part
	err   error
	recvs int
}

func (s *fakeStream) Recv() (*part, error) {
	s.recvs++
	if len(s.parts) == 0 {
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
	p := s.parts[0]
	s.parts = s.parts[1:]
	return p, nil
}

func header(name string) *part {
	return &part{h: &triagev1.ArtifactHeader{MediaType: "application/octet-stream", FileName: name}}
}
func chunk(s string) *part { return &part{c: &triagev1.ArtifactChunk{Data: []byte(s)}} }
func trailer(n uint64) *part {
	return &part{t: &triagev1.ArtifactTrailer{Bytes: n, Counters: map[string]uint64{"samples": 3}}}
}

func TestReadArtifact(t *testing.T) {
	broken := status.Error(codes.Unavailable, "connection reset")
	tests := []struct {
		name      string
		parts     []*part
		err       error
		want      string // bytes written
		wantErr   error  // errors.Is target; nil for success
		wantCode  codes.Code
		wantTrail bool
	}{
		{"header chunks trailer", []*part{header("cpu.pprof"), chunk("abc"), chunk(""), chunk("def"), trailer(6)}, nil, "abcdef", nil, codes.OK, true},
		{"empty artifact", []*part{header("empty"), trailer(0)}, nil, "", nil, codes.OK, true},
		{"no header", []*part{chunk("abc"), trailer(3)}, nil, "", client.ErrArtifactProtocol, codes.Unknown, false},
		{"trailer before header", []*part{trailer(0)}, nil, "", client.ErrArtifactProtocol, codes.Unknown, false},
		{"two headers", []*part{header("a"), header("b")}, nil, "", client.ErrArtifactProtocol, codes.Unknown, false},
		{"no trailer", []*part{header("a"), chunk("abc")}, nil, "abc", client.ErrArtifactProtocol, codes.Unknown, false},
		{"byte count disagrees", []*part{header("a"), chunk("abc"), trailer(4)}, nil, "abc", client.ErrArtifactProtocol, codes.Unknown, true},
		{"message after trailer", []*part{header("a"), trailer(0), chunk("x")}, nil, "", client.ErrArtifactProtocol, codes.Unknown, true},
		{"empty message", []*part{header("a"), {}}, nil, "", client.ErrArtifactProtocol, codes.Unknown, false},
		{"stream error keeps status", []*part{header("a"), chunk("ab")}, broken, "ab", broken, codes.Unavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := &fakeStream{parts: tt.parts, err: tt.err}
			a, err := client.ReadArtifact(s, &buf)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("ReadArtifact: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && status.Code(err) != tt.wantCode {
				t.Errorf("code = %v, want %v", status.Code(err), tt.wantCode)
			}
			if buf.String() != tt.want || a.Written != int64(len(tt.want)) {
				t.Errorf("wrote %q (Written %d), want %q", buf.String(), a.Written, tt.want)
			}
			if (a.Trailer != nil) != tt.wantTrail {
				t.Errorf("trailer = %v, want present %v", a.Trailer, tt.wantTrail)
			}
		})
	}
}

func TestReadArtifactOnHeader(t *testing.T) {
	refuse := errors.New("not a pprof profile")
	tests := []struct {
		name    string
		hookErr error
		want    string
	}{
		{"accepts", nil, "abc"},
		{"refuses before any byte", refuse, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var seen string
			s := &fakeStream{parts: []*part{header("cpu.pprof"), chunk("abc"), trailer(3)}}
			a, err := client.ReadArtifact(s, &buf, client.OnHeader(func(h *triagev1.ArtifactHeader) error {
				seen = h.GetFileName()
				if buf.Len() != 0 {
					t.Error("bytes were written before the header hook ran")
				}
				return tt.hookErr
			}))
			if !errors.Is(err, tt.hookErr) || (tt.hookErr == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, tt.hookErr)
			}
			if seen != "cpu.pprof" || a.Header.GetFileName() != "cpu.pprof" || buf.String() != tt.want {
				t.Errorf("seen %q, header %v, wrote %q; want cpu.pprof and %q", seen, a.Header, buf.String(), tt.want)
			}
		})
	}
}

// failWriter fails after limit bytes.
type failWriter struct{ limit int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errors.New("disk full")
	}
	w.limit -= len(p)
	return len(p), nil
}

func TestReadArtifactWriteError(t *testing.T) {
	s := &fakeStream{parts: []*part{header("a"), chunk("abc"), chunk("defgh"), trailer(8)}}
	a, err := client.ReadArtifact(s, &failWriter{limit: 5})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "after 5 bytes") {
		t.Fatalf("error = %v, want the write error with the byte count", err)
	}
	if a.Written != 5 {
		t.Errorf("Written = %d, want 5", a.Written)
	}
	if s.recvs != 3 {
		t.Errorf("received %d messages, want to stop at the failing chunk (3)", s.recvs)
	}
}

// A generated server-streaming client satisfies ArtifactStream.
var _ client.ArtifactStream[*part] = grpc.ServerStreamingClient[part](nil)
