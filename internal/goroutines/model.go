// Package goroutines parses Go goroutine dumps from text, groups goroutines
// with identical stacks and states (the way panicparse buckets them) and
// diffs two groupings to show which groups grew (the leak view).
//
// Parse understands the output of pprof's goroutine profile at debug=2
// (also runtime.Stack(buf, true) and gops "stack"), pprof's debug=1
// aggregated format, and Go panics and fatal errors from any Go version,
// with unrelated lines (test output, logs, hex dumps) interleaved.
//
// The package uses only the standard library. Its types are plain structs
// with JSON tags so that an API layer can convert or encode them directly.
package goroutines

import "time"

// Dump formats reported in Dump.Format.
const (
	// FormatDebug2 is one record per goroutine with its wait state: pprof
	// debug=2, runtime.Stack(buf, true), gops "stack".
	FormatDebug2 = "debug2"
	// FormatDebug1 is pprof debug=1: records aggregated by identical stack
	// ("N @ 0x..."), with labels but without wait state, wait time,
	// goroutine IDs or created-by.
	FormatDebug1 = "debug1"
	// FormatMixed is input holding both debug=1 records and debug=2 goroutines.
	FormatMixed = "mixed"
	// FormatPanic is a crash output that starts with "panic: ...".
	FormatPanic = "panic"
	// FormatFatal is a crash output that starts with "fatal error: ..."
	// (also "fatal: ...").
	FormatFatal = "fatal"
	// FormatSignal is a crash or SIGQUIT dump that starts with
	// "SIGQUIT: quit", "SIGABRT: abort" and the like.
	FormatSignal = "signal"
	// FormatRace is a race detector report ("WARNING: DATA RACE") with no
	// goroutine dump beside it. Its access stacks are not goroutines and are
	// not returned as such.
	FormatRace = "race"
)

// Dump is a parsed goroutine dump.
type Dump struct {
	// Goroutines in input order. A debug=1 record is one Goroutine whose
	// Count is the number of goroutines it stands for.
	Goroutines []*Goroutine `json:"goroutines"`
	// Total is the number of goroutines: the sum of every Goroutine's Count.
	Total int `json:"total"`
	// DeclaredTotal is N from a debug=1 "goroutine profile: total N" line,
	// 0 when absent.
	DeclaredTotal int `json:"declared_total,omitempty"`
	// Format is one of the Format* constants. A crash format (panic, fatal,
	// signal) wins over the dump format it contains.
	Format string `json:"format"`
	// Header is the panic or fatal error message (without the "panic: " or
	// "fatal error: " prefix; the first one when there are several),
	// followed by a newline and the "[signal ...]" line if any; the whole
	// line for a signal dump ("SIGQUIT: quit"); "WARNING: DATA RACE" when a
	// race report came without a crash; empty for a plain dump.
	Header string `json:"header,omitempty"`
	// RuntimeStack holds the frames of a "runtime stack:" block (the system
	// stack of a fatal error), innermost first.
	RuntimeStack []Frame `json:"runtime_stack,omitempty"`
	// Partial is true when the input looks truncated: it ended inside a
	// goroutine (a frame or "created by" without its file line), or a
	// debug=1 profile holds fewer goroutines than its header declares.
	Partial bool `json:"partial,omitempty"`
}

// Goroutine is one goroutine (debug=2 style, Count 1) or one aggregated
// debug=1 record (Count N, no ID, no state).
type Goroutine struct {
	// ID is the goroutine id; 0 for debug=1 records.
	ID int64 `json:"id"`
	// State is the wait reason or status as printed, e.g. "chan receive",
	// "running", "sync.Mutex.Lock", "IO wait", "select (no cases)".
	// Empty for debug=1 records: that format carries no state.
	State string `json:"state"`
	// Wait is how long the goroutine has been blocked. The runtime prints it
	// only in whole minutes and only from one minute on, so 0 means "less
	// than a minute or not known".
	Wait time.Duration `json:"wait_ns,omitempty"`
	// LockedToThread is true for "[..., locked to thread]".
	LockedToThread bool `json:"locked_to_thread,omitempty"`
	// Frames innermost first.
	Frames []Frame `json:"frames"`
	// FramesElided is true when the runtime left frames out
	// ("...additional frames elided..." or "...N frames elided...").
	FramesElided bool `json:"frames_elided,omitempty"`
	// CreatedBy is the go statement that started the goroutine; nil for the
	// main goroutine, runtime goroutines and debug=1 records. Its File is
	// empty when the input was cut right after "created by X".
	CreatedBy *Frame `json:"created_by,omitempty"`
	// CreatedByGoroutine is N from "created by X in goroutine N" (Go 1.21+).
	CreatedByGoroutine int64 `json:"created_by_goroutine,omitempty"`
	// Ancestors are the GODEBUG=tracebackancestors=N stacks
	// ("[originating from goroutine N]:"), the parent first.
	Ancestors []Ancestor `json:"ancestors,omitempty"`
	// Labels are pprof labels: "# labels: {...}" of debug=1, or
	// "labels:{...}" in a debug=2 header (GODEBUG=tracebacklabels=1).
	Labels map[string]string `json:"labels,omitempty"`
	// Count is 1 for a single goroutine and N for a debug=1 record "N @ ...".
	Count int `json:"count"`
	// Extra holds header annotations not modelled above, as printed, e.g.
	// "synctest bubble 3", "(scan)", "(durable)", "(leaked)".
	Extra []string `json:"extra,omitempty"`
}

// Ancestor is the stack of a goroutine's creator at the time it created the
// goroutine, as printed with GODEBUG=tracebackancestors=N.
type Ancestor struct {
	ID           int64   `json:"id"`
	Frames       []Frame `json:"frames"`
	FramesElided bool    `json:"frames_elided,omitempty"`
	CreatedBy    *Frame  `json:"created_by,omitempty"`
}

// Frame is one stack frame.
type Frame struct {
	// Function is the function name as printed, without the argument list:
	// "main.(*T).Method", "main.main.func1", "main.F[...]",
	// "runtime.gcBgMarkStartWorkers.gowrap1", "panic".
	Function string `json:"function"`
	// Args is the raw argument list as printed, without the parentheses
	// ("0xc000010018, 0x2", "{0x46c4efc, 0x4b0d3e0}", "..."). Empty for
	// debug=1 frames and "created by" frames.
	Args string `json:"args,omitempty"`
	// File is the source file path as printed: absolute, relative
	// ("_cgo_gotypes.go", "app.go"), Windows ("C:/Program Files/Go/...") or
	// "<autogenerated>".
	File string `json:"file"`
	Line int    `json:"line"`
	// PC is the program counter: the address of a debug=1 frame, or pc= of a
	// crash traceback frame. 0 when not printed.
	PC uint64 `json:"pc,omitempty"`
	// Offset is the "+0x1d" offset of the PC from the function entry (or
	// from the symbol in debug=1). 0 when not printed.
	Offset uint64 `json:"offset,omitempty"`
}
