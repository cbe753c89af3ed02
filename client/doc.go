// Package client is the Go client of the triage sidecar's admin API.
//
// Dial connects (lazily: the first call makes the connection) with mutual
// TLS, a bearer token, or plaintext on loopback and Unix sockets; the typed
// methods (Explain, Version, ListProcesses, GetProcess, Health, and for Go
// runtimes Goroutines, GoroutineDump, Profile, RuntimeStats) return the
// API's messages. Every error keeps its gRPC status (status.Code works on
// it) and names the call that failed; Describe renders one line for a human
// with what to do next.
//
// Large artifacts (profiles, traces, pcapng) arrive as server streams of a
// header, chunks and a trailer; ReadArtifact copies such a stream into an
// io.Writer without holding it in memory (OnHeader and OnProgress watch it
// arrive).
//
//	c, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1:7070", Dev: dir})
//	if err != nil { ... }
//	defer c.Close()
//	resp, err := c.Explain(ctx)
//	if err != nil { fmt.Fprintln(os.Stderr, client.Describe(err)) }
package client
