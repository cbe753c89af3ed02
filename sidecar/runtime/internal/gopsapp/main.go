// Command gopsapp is a test subject for the sidecar's gops fallback: it runs
// the real gops agent (its port file in $GOPS_CONFIG_DIR), parks -n
// goroutines in main.parked, prints "ready", and runs until stdin closes.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/google/gops/agent"
)

func main() {
	n := flag.Int("n", 40, "goroutines parked in main.parked")
	flag.Parse()
	if err := agent.Listen(agent.Options{Addr: "127.0.0.1:0", ShutdownCleanup: false}); err != nil {
		fmt.Fprintln(os.Stderr, "gopsapp:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	block := make(chan struct{})
	for range *n {
		wg.Add(1)
		go parked(&wg, block)
	}
	wg.Wait()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

//go:noinline
func parked(wg *sync.WaitGroup, c chan struct{}) {
	wg.Done()
	<-c
}
