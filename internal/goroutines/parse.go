package goroutines

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrNoDump is returned (wrapped) by Parse when the input holds nothing it
// recognises.
var ErrNoDump = errors.New("no goroutine dump found in input: expected output of pprof debug=1/2, runtime.Stack, gops stack or a Go panic")

// maxLineLen bounds the memory used per input line. Longer lines are
// skipped whole (no goroutine dump line comes close), and do not end the
// goroutine being read.
const maxLineLen = 128 << 10

// maxInterned bounds the string intern table: function names, files and
// states repeat across goroutines, so sharing them keeps a 100,000
// goroutine dump small; past this many distinct strings new ones are simply
// not shared.
const maxInterned = 1 << 18

// maxCount caps one debug=1 record's count so that sums cannot overflow.
const maxCount = 1<<31 - 1

// Parse reads a goroutine dump and returns its goroutines in input order.
//
// It recognises pprof goroutine profiles at debug=2 (also runtime.Stack and
// gops "stack" output, including Go 1.26 headers with gp=/m=/mp= fields and
// crash tracebacks with fp=/sp=/pc=), pprof debug=1, and panics, fatal
// errors and signal dumps from any Go version. Lines it does not recognise
// (test and log output, hex dumps, "runtime:" diagnostics) are skipped. A
// race detector report is recognised (Format "race", Header "WARNING: DATA
// RACE") but its access stacks are skipped: they are not goroutine states.
//
// Input cut short is not an error: what was read is returned and
// Dump.Partial is set. Parse returns an error only when reading fails or
// nothing recognisable was found (errors.Is(err, ErrNoDump)).
func Parse(r io.Reader) (*Dump, error) {
	p := &parser{d: &Dump{}, intern: make(map[string]string)}
	br := bufio.NewReaderSize(r, 16<<10)
	var long []byte // a line longer than br's buffer, assembled
	overlong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !overlong && len(long)+len(chunk) <= maxLineLen {
				long = append(long, chunk...)
			} else {
				overlong, long = true, long[:0] // skip the rest of this line
			}
			continue
		}
		line := chunk
		if len(long) > 0 || overlong {
			if !overlong && len(long)+len(chunk) <= maxLineLen {
				long = append(long, chunk...)
				line = long
			} else {
				line = nil
			}
		}
		if len(line) > 0 {
			p.line(trimEOL(line))
		}
		long, overlong = long[:0], false
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading goroutine dump: %w", err)
		}
	}
	return p.finish()
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

type parser struct {
	d *Dump

	g      *Goroutine // goroutine or debug=1 record being read, or nil
	debug1 bool       // g is a debug=1 record
	anc    int        // index+1 into g.Ancestors of the block being read, 0 for g's own stack
	closed bool       // "created by" seen: further frames do not belong to g

	inRuntimeStack bool // reading a "runtime stack:" block
	inRace         bool // inside a race report, until its "=====" line

	pendFunc, pendArgs string // function line waiting for its file line
	hasPend            bool
	pendCreated        *Frame // "created by" waiting for its file line

	crash                string // FormatPanic, FormatFatal or FormatSignal once seen
	sawDebug1, sawDebug2 bool
	sawRace              bool
	sawProfileHeader     bool

	intern map[string]string
}

// str returns b as a string, shared with earlier equal strings.
func (p *parser) str(b []byte) string {
	if s, ok := p.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.intern) < maxInterned {
		p.intern[s] = s
	}
	return s
}

var (
	pfxGoroutine   = []byte("goroutine ")
	pfxProfile     = []byte("goroutine profile: total ")
	pfxCreatedBy   = []byte("created by ")
	pfxOriginating = []byte("[originating from goroutine ")
	pfxPanic       = []byte("panic: ")
	pfxFatalError  = []byte("fatal error: ")
	pfxFatal       = []byte("fatal: ")
	pfxSignal      = []byte("[signal ")
	pfxLabels      = []byte("# labels: ")
	pfxElided      = []byte("...")
	sfxElided      = []byte("frames elided...")
	lineRuntimeStk = []byte("runtime stack:")
	lineRace       = []byte("WARNING: DATA RACE")
	lineRaceEnd    = []byte("==================")
)

// line handles one input line without its line ending.
func (p *parser) line(b []byte) {
	if p.inRace {
		switch {
		case bytes.HasPrefix(b, lineRaceEnd):
			p.inRace = false
			return
		case bytes.HasPrefix(b, pfxGoroutine), bytes.HasPrefix(b, pfxPanic), bytes.HasPrefix(b, pfxFatalError):
			p.inRace = false // a report cut short: resume with what follows
		default:
			return
		}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		p.endBlock()
		return
	}
	if b[0] == ' ' || b[0] == '\t' {
		p.indented(bytes.TrimLeft(b, " \t"))
		return
	}
	switch {
	case bytes.HasPrefix(b, pfxProfile):
		if n, ok := atoi(b[len(pfxProfile):]); ok {
			p.endBlock()
			p.sawProfileHeader = true
			p.d.DeclaredTotal += n
			return
		}
	case bytes.HasPrefix(b, pfxGoroutine):
		if g, ok := p.parseHeader(b[len(pfxGoroutine):]); ok {
			p.endBlock()
			p.sawDebug2 = true
			p.g = g
			p.d.Goroutines = append(p.d.Goroutines, g)
			return
		}
	case b[0] >= '0' && b[0] <= '9':
		if n, ok := parseRecordLine(b); ok {
			p.endBlock()
			p.sawDebug1 = true
			p.g = &Goroutine{Count: n}
			p.debug1 = true
			p.d.Goroutines = append(p.d.Goroutines, p.g)
			return
		}
	case b[0] == '#':
		if p.g != nil && p.debug1 {
			p.debug1Line(b)
		}
		return
	case bytes.HasPrefix(b, pfxCreatedBy):
		p.createdBy(b[len(pfxCreatedBy):])
		return
	case bytes.HasPrefix(b, pfxOriginating):
		p.originating(b[len(pfxOriginating):])
		return
	case bytes.HasPrefix(b, pfxElided) && bytes.HasSuffix(b, sfxElided):
		p.elided()
		return
	case bytes.HasPrefix(b, pfxPanic):
		p.crashHeader(FormatPanic, b[len(pfxPanic):])
		return
	case bytes.HasPrefix(b, pfxFatalError):
		p.crashHeader(FormatFatal, b[len(pfxFatalError):])
		return
	case bytes.HasPrefix(b, pfxFatal):
		p.crashHeader(FormatFatal, b[len(pfxFatal):])
		return
	case bytes.HasPrefix(b, pfxSignal):
		if p.crash != "" && !strings.Contains(p.d.Header, "\n") {
			p.d.Header += "\n" + string(b)
		}
		return
	case bytes.Equal(b, lineRuntimeStk):
		p.endBlock()
		p.inRuntimeStack = true
		return
	case bytes.Equal(b, lineRace):
		p.endBlock()
		p.sawRace = true
		p.inRace = true
		return
	case isSignalLine(b):
		p.crashHeader(FormatSignal, b)
		return
	}
	// A function line: "pkg.F(args)". It becomes a frame only when its file
	// line follows; anything else (log output) replaces or drops it.
	p.hasPend = false
	p.pendCreated = nil
	if name, args, ok := parseFuncLine(b); ok {
		p.pendFunc, p.hasPend = p.str(name), true
		// Arguments are mostly unique pointers: share only short ones
		// ("", "...", "{}") to keep the intern table for names and files.
		if len(args) <= 3 {
			p.pendArgs = p.str(args)
		} else {
			p.pendArgs = string(args)
		}
	}
}

// indented handles a line that started with a space or a tab, with that
// leading whitespace removed: normally the file line of a frame.
func (p *parser) indented(b []byte) {
	if p.pendCreated != nil {
		f := p.pendCreated
		p.pendCreated = nil
		if file, line, off, pc, ok := p.parseFileLine(b); ok {
			f.File, f.Line, f.Offset, f.PC = file, line, off, pc
		}
		return
	}
	if !p.hasPend {
		return // "goroutine running on other thread; stack unavailable", nested "panic: ...", junk
	}
	p.hasPend = false
	file, line, off, pc, ok := p.parseFileLine(b)
	if !ok {
		return
	}
	p.addFrame(Frame{Function: p.pendFunc, Args: p.pendArgs, File: file, Line: line, PC: pc, Offset: off})
}

// frames returns where the frames of the current block go, or nil.
func (p *parser) frames() *[]Frame {
	switch {
	case p.inRuntimeStack:
		return &p.d.RuntimeStack
	case p.g == nil || p.debug1 || p.closed:
		return nil
	case p.anc > 0:
		return &p.g.Ancestors[p.anc-1].Frames
	default:
		return &p.g.Frames
	}
}

func (p *parser) addFrame(f Frame) {
	if fs := p.frames(); fs != nil {
		*fs = append(*fs, f)
	}
}

func (p *parser) elided() {
	switch {
	case p.g == nil || p.debug1 || p.inRuntimeStack:
	case p.anc > 0:
		p.g.Ancestors[p.anc-1].FramesElided = true
	default:
		p.g.FramesElided = true
	}
}

// createdBy handles "created by X" and "created by X in goroutine N".
func (p *parser) createdBy(b []byte) {
	p.hasPend = false
	if p.g == nil || p.debug1 || p.inRuntimeStack || p.closed {
		return
	}
	var parent int64
	if i := bytes.Index(b, []byte(" in goroutine ")); i >= 0 {
		if n, ok := atoi64(b[i+len(" in goroutine "):]); ok {
			parent = n
			b = b[:i]
		}
	}
	name := bytes.TrimSpace(b)
	if len(name) == 0 {
		return
	}
	f := &Frame{Function: p.str(name)}
	if p.anc > 0 {
		p.g.Ancestors[p.anc-1].CreatedBy = f
	} else {
		p.g.CreatedBy = f
		p.g.CreatedByGoroutine = parent
	}
	p.closed = true
	p.pendCreated = f
}

// originating handles "[originating from goroutine N]:" (tracebackancestors).
func (p *parser) originating(b []byte) {
	p.hasPend = false
	p.pendCreated = nil
	if p.g == nil || p.debug1 || p.inRuntimeStack {
		return
	}
	id, ok := atoi64(bytes.TrimSuffix(b, []byte("]:")))
	if !ok {
		return
	}
	p.g.Ancestors = append(p.g.Ancestors, Ancestor{ID: id})
	p.anc = len(p.g.Ancestors)
	p.closed = false
}

func (p *parser) crashHeader(format string, msg []byte) {
	p.endBlock()
	if p.crash != "" {
		return // keep the first: later ones are nested or repeated
	}
	p.crash = format
	p.d.Header = string(msg)
}

// endBlock ends the goroutine, record or runtime stack being read.
func (p *parser) endBlock() {
	if p.pendCreated != nil && p.pendCreated.File == "" {
		p.d.Partial = true // "created by X" without its file line
	}
	p.g, p.debug1, p.anc, p.closed = nil, false, 0, false
	p.inRuntimeStack = false
	p.hasPend = false
	p.pendCreated = nil
}

func (p *parser) finish() (*Dump, error) {
	if p.hasPend {
		// Cut after a function line: keep the frame without its file.
		p.addFrame(Frame{Function: p.pendFunc, Args: p.pendArgs})
		if p.frames() != nil {
			p.d.Partial = true
		}
		p.hasPend = false
	}
	p.endBlock()
	d := p.d
	for _, g := range d.Goroutines {
		d.Total += g.Count
	}
	if d.DeclaredTotal > 0 && p.sawDebug1 && !p.sawDebug2 && d.Total < d.DeclaredTotal {
		d.Partial = true
	}
	switch {
	case p.crash != "":
		d.Format = p.crash
	case p.sawDebug1 && p.sawDebug2:
		d.Format = FormatMixed
	case p.sawDebug1 || p.sawProfileHeader:
		d.Format = FormatDebug1
	case p.sawDebug2:
		d.Format = FormatDebug2
	case p.sawRace:
		d.Format = FormatRace
	default:
		return nil, fmt.Errorf("parsing goroutine dump: %w", ErrNoDump)
	}
	if p.sawRace && d.Header == "" {
		d.Header = string(lineRace)
	}
	if p.sawProfileHeader && len(d.Goroutines) == 0 {
		d.Partial = true
	}
	return d, nil
}

// parseHeader parses what follows "goroutine " in
// "goroutine 18 [chan receive, 5 minutes, locked to thread]:" or the Go
// 1.26 crash form "goroutine 84 gp=0x... m=3 mp=0x... [flushing proc caches]:".
func (p *parser) parseHeader(b []byte) (*Goroutine, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	id, ok := atoi64(b[:i])
	if !ok || i == len(b) || b[i] != ' ' || !bytes.HasSuffix(b, []byte("]:")) {
		return nil, false
	}
	rest := b[i:]
	lb := bytes.IndexByte(rest, '[')
	if lb < 0 || lb > len(rest)-2 {
		return nil, false
	}
	content := rest[lb+1 : len(rest)-2]
	g := &Goroutine{ID: id, Count: 1}
	if j := bytes.Index(content, []byte(" labels:{")); j >= 0 {
		g.Labels = parseLabels(content[j+len(" labels:"):])
		content = content[:j]
	}
	for k, part := range bytes.Split(content, []byte(", ")) {
		if k == 0 {
			state := part
			for _, sfx := range [][]byte{[]byte(" (scan)"), []byte(" (leaked)")} {
				if bytes.HasSuffix(state, sfx) {
					g.Extra = append(g.Extra, string(sfx[1:]))
					state = state[:len(state)-len(sfx)]
				}
			}
			g.State = p.str(state)
			continue
		}
		switch {
		case bytes.Equal(part, []byte("locked to thread")):
			g.LockedToThread = true
		case bytes.HasSuffix(part, []byte(" minutes")):
			if n, ok := atoi64(part[:len(part)-len(" minutes")]); ok && n < int64(1<<63-1)/int64(time.Minute) {
				g.Wait = time.Duration(n) * time.Minute
				continue
			}
			g.Extra = append(g.Extra, string(part))
		default:
			g.Extra = append(g.Extra, string(part))
		}
	}
	return g, true
}

// parseRecordLine parses a debug=1 record line "N @ 0x1 0x2 ...".
func parseRecordLine(b []byte) (int, bool) {
	i := bytes.Index(b, []byte(" @"))
	if i < 0 {
		return 0, false
	}
	n, ok := atoi(b[:i])
	if !ok || n == 0 || n > maxCount {
		return 0, false
	}
	for _, f := range bytes.Fields(b[i+2:]) {
		if !bytes.HasPrefix(f, []byte("0x")) {
			return 0, false
		}
	}
	return n, true
}

// debug1Line handles "# labels: {...}" and
// "#\t0x4a1b2c\tmain.f+0x2c\t/path/file.go:12" inside a debug=1 record.
func (p *parser) debug1Line(b []byte) {
	if bytes.HasPrefix(b, pfxLabels) {
		p.g.Labels = parseLabels(b[len(pfxLabels):])
		return
	}
	var fields [][]byte
	for _, f := range bytes.Split(b, []byte("\t")) {
		if len(f) > 0 {
			fields = append(fields, f)
		}
	}
	if len(fields) < 4 || !bytes.Equal(fields[0], []byte("#")) {
		return
	}
	var f Frame
	if pc, err := strconv.ParseUint(string(bytes.TrimPrefix(fields[1], []byte("0x"))), 16, 64); err == nil {
		f.PC = pc
	}
	fn := fields[2]
	if j := bytes.LastIndex(fn, []byte("+0x")); j >= 0 {
		if off, err := strconv.ParseUint(string(fn[j+3:]), 16, 64); err == nil {
			f.Offset = off
			fn = fn[:j]
		}
	}
	f.Function = p.str(fn)
	loc := bytes.Join(fields[3:], []byte("\t"))
	j := bytes.LastIndexByte(loc, ':')
	if j < 0 {
		return
	}
	line, ok := atoi(loc[j+1:])
	if !ok {
		return
	}
	f.File, f.Line = p.str(loc[:j]), line
	p.g.Frames = append(p.g.Frames, f)
}

// parseFuncLine splits "pkg.(*T).F[...](0x1, {0x2, 0x3})" into the function
// name and the raw arguments. The argument list is the parenthesised group
// that ends the line; function names may hold parentheses themselves.
func parseFuncLine(b []byte) (name, args []byte, ok bool) {
	if len(b) < 3 || b[len(b)-1] != ')' {
		return nil, nil, false
	}
	depth := 0
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case ')':
			depth++
		case '(':
			depth--
			if depth == 0 {
				name, args = b[:i], b[i+1:len(b)-1]
				if len(name) == 0 || bytes.ContainsAny(name, " \t") {
					return nil, nil, false
				}
				return name, args, true
			}
		}
	}
	return nil, nil, false
}

// parseFileLine parses "/path/file.go:12 +0x1d fp=0x.. sp=0x.. pc=0x..";
// paths may hold spaces and colons ("C:/Program Files/Go/src/x.go:12").
func (p *parser) parseFileLine(b []byte) (file string, line int, off, pc uint64, ok bool) {
suffixes:
	for {
		sp := bytes.LastIndexByte(b, ' ')
		if sp < 0 {
			break
		}
		tok := b[sp+1:]
		switch {
		case bytes.HasPrefix(tok, []byte("+0x")):
			off, _ = strconv.ParseUint(string(tok[3:]), 16, 64)
		case bytes.HasPrefix(tok, []byte("pc=0x")):
			pc, _ = strconv.ParseUint(string(tok[5:]), 16, 64)
		case bytes.HasPrefix(tok, []byte("fp=")), bytes.HasPrefix(tok, []byte("sp=")):
		default:
			break suffixes
		}
		b = bytes.TrimRight(b[:sp], " ")
	}
	i := bytes.LastIndexByte(b, ':')
	if i <= 0 {
		return "", 0, 0, 0, false
	}
	line, ok = atoi(b[i+1:])
	if !ok {
		return "", 0, 0, 0, false
	}
	return p.str(b[:i]), line, off, pc, true
}

// parseLabels parses `{"k":"v", "k2":"v2"}` (debug=1) and
// `{"k": "v", "k2": "v2"}` (tracebacklabels). Unparsable input yields the
// pairs read so far.
func parseLabels(b []byte) map[string]string {
	s := strings.TrimSpace(string(b))
	s = strings.TrimPrefix(s, "{")
	s = strings.TrimSuffix(s, "}")
	m := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if s == "" {
			break
		}
		k, rest, ok := unquotePrefix(s)
		if !ok {
			break
		}
		rest = strings.TrimLeft(rest, " ")
		if !strings.HasPrefix(rest, ":") {
			break
		}
		v, rest2, ok := unquotePrefix(strings.TrimLeft(rest[1:], " "))
		if !ok {
			break
		}
		m[k] = v
		s = rest2
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func unquotePrefix(s string) (val, rest string, ok bool) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	v, err := strconv.Unquote(q)
	if err != nil {
		return "", "", false
	}
	return v, s[len(q):], true
}

// isSignalLine reports whether b looks like "SIGQUIT: quit" (a signal dump).
func isSignalLine(b []byte) bool {
	i := bytes.Index(b, []byte(": "))
	if i < 4 || !bytes.HasPrefix(b, []byte("SIG")) {
		return false
	}
	for _, c := range b[3:i] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// atoi parses a non-negative decimal int; it rejects empty input, signs,
// other characters and values of more than 18 digits.
func atoi(b []byte) (int, bool) {
	n, ok := atoi64(b)
	if !ok || n > int64(^uint(0)>>1) {
		return 0, false
	}
	return int(n), true
}

func atoi64(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
