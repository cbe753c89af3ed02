package gops

import "time"

// Signal bytes of the gops wire protocol. The source of truth is
// github.com/google/gops/signal (v0.3.28); they are repeated here so that the
// client does not depend on the gops module. A test checks them against it.
const (
	sigStackTrace   byte = 0x1  // text: pprof goroutine profile, debug=2
	sigGC           byte = 0x2  // runs runtime.GC, replies "ok"
	sigMemStats     byte = 0x3  // text: runtime.MemStats, "key: value" lines
	sigVersion      byte = 0x4  // text: runtime.Version() and a newline
	sigHeapProfile  byte = 0x5  // binary: pprof.WriteHeapProfile (gzipped profile.proto)
	sigCPUProfile   byte = 0x6  // binary: 30 s CPU profile (gzipped profile.proto)
	sigStats        byte = 0x7  // text: goroutines, OS threads, GOMAXPROCS, num CPU
	sigTrace        byte = 0x8  // binary: 5 s runtime/trace execution trace
	sigBinaryDump   byte = 0x9  // binary: the executable (not used by triage)
	sigSetGCPercent byte = 0x10 // followed by a varint; text reply
)

// Fixed collection times of the gops agent; a caller cannot choose them.
const (
	// CPUProfileDuration is how long the gops agent profiles the CPU.
	CPUProfileDuration = 30 * time.Second
	// TraceDuration is how long the gops agent traces execution.
	TraceDuration = 5 * time.Second
)
