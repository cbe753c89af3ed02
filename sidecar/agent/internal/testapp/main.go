// Command testapp is the agent's test subject: a program that links the
// agent (or not, for cost baselines) and parks goroutines in known
// functions, so tests can check what the agent reports against what is true.
//
// It prints "ready" on stdout once the agent serves and every goroutine has
// entered its function, then runs until killed or stdin closes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-sh/triage/sidecar/agent"
)

func main() {
	var (
		nA         = flag.Int("a", 0, "goroutines blocked in a channel receive in main.waitA")
		nB         = flag.Int("b", 0, "goroutines blocked in sync.Mutex.Lock in main.waitB")
		nC         = flag.Int("c", 0, "goroutines in time.Sleep in main.waitC")
		runSleeper = flag.Bool("sleeper", false, "run main.sleeper, which only sleeps")
		runBurner  = flag.Bool("burner", false, "run main.burner, which only burns CPU")
		noAgent    = flag.Bool("no-agent", false, "do not start the agent (cost baseline)")
		flight     = flag.Bool("flight", false, "keep the execution-trace flight recorder running")
		config     = flag.Bool("config", false, "register a config and a state with secrets")
	)
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if !*noAgent {
		a, err := agent.Start(ctx, agent.Options{FlightRecorder: *flight, Version: "testapp"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testapp:", err)
			os.Exit(1)
		}
		defer a.Close()
		if *config {
			register(a)
		}
	}

	var started sync.WaitGroup
	block := make(chan struct{})
	var mu sync.Mutex
	mu.Lock()
	spawn := func(n int, f func(*sync.WaitGroup)) {
		started.Add(n)
		for range n {
			go f(&started)
		}
	}
	spawn(*nA, func(wg *sync.WaitGroup) { waitA(wg, block) })
	spawn(*nB, func(wg *sync.WaitGroup) { waitB(wg, &mu) })
	spawn(*nC, waitC)
	if *runSleeper {
		spawn(1, sleeper)
	}
	if *runBurner {
		spawn(1, burner)
	}
	started.Wait()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes stdin
}

//go:noinline
func waitA(wg *sync.WaitGroup, c chan struct{}) {
	wg.Done()
	<-c
}

//go:noinline
func waitB(wg *sync.WaitGroup, mu *sync.Mutex) {
	wg.Done()
	mu.Lock()
}

//go:noinline
func waitC(wg *sync.WaitGroup) {
	wg.Done()
	time.Sleep(24 * time.Hour)
}

//go:noinline
func sleeper(wg *sync.WaitGroup) {
	wg.Done()
	for {
		time.Sleep(5 * time.Millisecond)
	}
}

// sink keeps burner's work from being optimised away.
var sink atomic.Uint64

//go:noinline
func burner(wg *sync.WaitGroup) {
	wg.Done()
	x := uint64(1)
	for i := 0; ; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		if i%(1<<20) == 0 {
			sink.Store(x)
		}
	}
}

type dbConfig struct {
	Host     string `json:"host"`
	Password string `json:"password"`
	Pool     int    `json:"pool"`
}

type appConfig struct {
	Name    string            `json:"name"`
	DB      dbConfig          `json:"db"`
	Webhook string            `json:"webhook" triage:"secret"`
	Headers map[string]string `json:"headers"`
}

func register(a *agent.Agent) {
	a.RegisterConfig("app", func() any {
		return appConfig{Name: "testapp", DB: dbConfig{Host: "db:5432", Password: "hunter2", Pool: 4},
			Webhook: "https://hooks.example/abc", Headers: map[string]string{"Authorization": "Bearer x", "Accept": "*/*"}}
	})
	a.RegisterState("broken", func() any { panic("state is broken") })
}
