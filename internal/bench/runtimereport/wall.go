package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/felixge/fgprof"
	"github.com/google/pprof/profile"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/internal/bench"
	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	"github.com/triage-sh/triage/sidecar/agent"
)

// The wall-overhead cells, as in sidecar/agent's TestWallOverheadTable.
var (
	wallCounts    = []int{1_000, 10_000, 100_000}
	wallProfilers = []string{"none", "fgprof", "agent"}
)

// warm is how long a profiler runs before the throughput window: past the
// agent sampler's first look (about 90 ms at 100,000 goroutines).
const warm = 250 * time.Millisecond

// wallRow is one goroutine count.
type wallRow struct {
	n                 int
	none, fgprof, agt float64 // median work units per second
	path              string  // the agent's header attribute "path"
	notes             []string
	workerNs          int64 // the workers' wall time in the agent's last profile
	totalNs           int64 // all wall time in it
	workers           int
}

func (r wallRow) loss(rate float64) float64 { return 1 - rate/r.none }

// measureWall runs the cells in this process, interleaved p.wallRounds
// times, with the agent served on a Unix socket and asked over gRPC.
func measureWall(p params, tmp string) ([]wallRow, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(tmp, "wall-agent.sock")
	a, err := agent.Start(ctx, agent.Options{Socket: sock, Version: "bench"})
	if err != nil {
		return nil, err
	}
	defer a.Close()
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	client := agentv1.NewAgentServiceClient(cc)

	var rows []wallRow
	for _, n := range wallCounts {
		release := idleGoroutines(n)
		row := wallRow{n: n, workers: runtime.GOMAXPROCS(0)}
		rates := map[string][]float64{}
		for round := range p.wallRounds {
			for _, prof := range wallProfilers {
				runtime.GC()
				var rate float64
				switch prof {
				case "none":
					time.Sleep(warm)
					rate = throughput(p.wallD)
				case "fgprof":
					stop := fgprof.Start(io.Discard, fgprof.FormatPprof)
					time.Sleep(warm)
					rate = throughput(p.wallD)
					_ = stop()
				case "agent":
					var prof agentProfile
					done := make(chan error, 1)
					go func() { done <- prof.fetch(ctx, client, warm+p.wallD) }()
					time.Sleep(warm)
					rate = throughput(p.wallD)
					if err := <-done; err != nil {
						release()
						return nil, err
					}
					row.path, row.notes = prof.attrs["path"], prof.notes
					if row.workerNs, row.totalNs, err = workerTime(prof.data); err != nil {
						release()
						return nil, err
					}
				}
				rates[prof] = append(rates[prof], rate)
				progress("wall overhead: %s goroutines, round %d/%d, %s: %.0f units/s", bench.Thousands(n), round+1, p.wallRounds, prof, rate)
			}
		}
		release()
		row.none, row.fgprof, row.agt = bench.Median(rates["none"]), bench.Median(rates["fgprof"]), bench.Median(rates["agent"])
		rows = append(rows, row)
	}
	return rows, nil
}

// agentProfile is one wall profile from the agent.
type agentProfile struct {
	attrs map[string]string
	notes []string
	data  []byte
}

func (ap *agentProfile) fetch(ctx context.Context, c agentv1.AgentServiceClient, d time.Duration) error {
	stream, err := c.Profile(ctx, &agentv1.ProfileRequest{Type: agentv1.ProfileType_PROFILE_TYPE_WALL, Duration: durationpb.New(d), Holder: "bench"})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("wall profile: %w", err)
		}
		switch {
		case m.GetHeader() != nil:
			ap.attrs = m.GetHeader().GetAttributes()
		case m.GetChunk() != nil:
			buf.Write(m.GetChunk().GetData())
		case m.GetTrailer() != nil:
			ap.notes = m.GetTrailer().GetNotes()
		}
	}
	ap.data = buf.Bytes()
	return nil
}

// workerTime sums the wall time of the profile's samples in the
// throughput workers, and of all samples.
func workerTime(data []byte) (workers, total int64, err error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return 0, 0, fmt.Errorf("the agent's wall profile: %w", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "time" {
			idx = i
		}
	}
	if idx < 0 {
		return 0, 0, errors.New("the agent's wall profile has no time sample type")
	}
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
	sample:
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && strings.HasPrefix(l.Function.Name, "main.throughput") {
					workers += v
					break sample
				}
			}
		}
	}
	return workers, total, nil
}

// workUnit burns a fixed amount of CPU.
//
//go:noinline
func workUnit() uint64 {
	x := uint64(1)
	for range 200_000 {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

var workSink atomic.Uint64

// throughput runs one worker per GOMAXPROCS for d and returns work units
// per second.
func throughput(d time.Duration) float64 {
	var units atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var x uint64
			for {
				select {
				case <-stop:
					workSink.Add(x)
					return
				default:
					x += workUnit()
					units.Add(1)
				}
			}
		})
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	return float64(units.Load()) / time.Since(start).Seconds()
}

// idleGoroutines parks n goroutines at stack depths 5 to 20 until release.
func idleGoroutines(n int) (release func()) {
	stop := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			park(5+i%16, &started, stop)
		}()
	}
	started.Wait()
	return func() { close(stop); done.Wait() }
}

//go:noinline
func park(depth int, started *sync.WaitGroup, stop chan struct{}) {
	if depth > 0 {
		park(depth-1, started, stop)
		return
	}
	started.Done()
	<-stop
}
