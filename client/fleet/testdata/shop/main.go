// Command shop is a toy server whose goroutines make realistic dumps for
// client/fleet's tests: workers on a channel, connections in select, a
// ticker, and optionally a leak of handlers stuck on a mutex.
package main

import (
	"flag"
	"os"
	"runtime/pprof"
	"sync"
	"time"
)

var mu sync.Mutex

func worker(jobs <-chan int) {
	for range jobs {
	}
}

func conn(done <-chan struct{}, in <-chan []byte) {
	for {
		select {
		case <-done:
			return
		case <-in:
		}
	}
}

func handler(wg *sync.WaitGroup) {
	wg.Done()
	mu.Lock()
	defer mu.Unlock()
}

func ticker() {
	t := time.NewTicker(time.Hour)
	for range t.C {
	}
}

func main() {
	workers := flag.Int("workers", 8, "")
	conns := flag.Int("conns", 20, "")
	leak := flag.Int("leak", 0, "")
	flag.Parse()
	jobs := make(chan int)
	for i := 0; i < *workers; i++ {
		go worker(jobs)
	}
	done := make(chan struct{})
	in := make(chan []byte)
	for i := 0; i < *conns; i++ {
		go conn(done, in)
	}
	go ticker()
	if *leak > 0 {
		mu.Lock()
		var wg sync.WaitGroup
		wg.Add(*leak)
		for i := 0; i < *leak; i++ {
			go handler(&wg)
		}
		wg.Wait()
	}
	time.Sleep(100 * time.Millisecond)
	pprof.Lookup("goroutine").WriteTo(os.Stdout, 2)
}
