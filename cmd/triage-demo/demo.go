package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Demo is the running workload: the HTTP server and the background
// activity that gives triage something to see.
type Demo struct {
	log      *slog.Logger
	listener net.Listener
	server   *http.Server
	serveErr chan error

	stop  chan struct{} // closed by Shutdown: workers and the sleeper return
	block chan struct{} // never sent on: one goroutine waits on it until Shutdown
	wg    sync.WaitGroup

	files []*os.File // temporary files kept open
	idle  *idleConn  // an outbound TCP connection to our own peer listener

	shutdown sync.Once
}

// Start listens on addr, starts serving and the background activity.
func Start(addr string, cfg Config, log *slog.Logger) (_ *Demo, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --addr %s: %w", addr, err)
	}
	d := &Demo{
		log:      log,
		listener: l,
		serveErr: make(chan error, 1),
		stop:     make(chan struct{}),
		block:    make(chan struct{}),
		server: &http.Server{
			Handler:           newHandler(cfg.Greeting),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	defer func() {
		if err != nil {
			d.Shutdown(context.Background())
		}
	}()
	if d.files, err = openTempFiles(cfg.OpenFiles); err != nil {
		return d, err
	}
	if d.idle, err = dialIdle(); err != nil {
		return d, err
	}
	d.startWorkers(cfg.Workers, cfg.Tick)
	d.startSleeper()
	d.startBlocked()
	go func() {
		err := d.server.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		d.serveErr <- err
	}()
	return d, nil
}

// Addr is the address the HTTP server listens on.
func (d *Demo) Addr() net.Addr { return d.listener.Addr() }

// Wait returns when ctx is done (nil) or the server fails (its error).
func (d *Demo) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.serveErr:
		d.serveErr <- err // Shutdown reads it again
		return fmt.Errorf("serve HTTP: %w", err)
	}
}

// Shutdown stops serving (letting requests in flight finish until ctx is
// done), stops the background goroutines, closes the idle connection and
// closes and removes the temporary files.
func (d *Demo) Shutdown(ctx context.Context) error {
	var errs []error
	d.shutdown.Do(func() {
		if err := d.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop HTTP server: %w", err))
		}
		// Serve closes the listener; this covers a Start that failed before Serve.
		if err := d.listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close listener: %w", err))
		}
		close(d.stop)
		close(d.block)
		d.wg.Wait()
		if d.idle != nil {
			if err := d.idle.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, f := range d.files {
			f.Close()
			if err := os.Remove(f.Name()); err != nil {
				errs = append(errs, fmt.Errorf("remove temporary file: %w", err))
			}
		}
	})
	return errors.Join(errs...)
}

// DemoState is what the demo registers as its state snapshot.
type DemoState struct {
	Listening   string `json:"listening"`
	OpenFiles   int    `json:"open_files"`
	IdlePeer    string `json:"idle_peer"`
	SessionKey  string `json:"session_key"`
	StartedUnix int64  `json:"started_unix"`
}

// State is a snapshot for the agent's RegisterState. SessionKey exists to
// show that names looking secret are redacted.
func (d *Demo) State() DemoState {
	st := DemoState{Listening: d.Addr().String(), OpenFiles: len(d.files), SessionKey: "not-a-real-session-key", StartedUnix: started.Unix()}
	if d.idle != nil && d.idle.out != nil {
		st.IdlePeer = d.idle.out.RemoteAddr().String()
	}
	return st
}

var started = time.Now()
