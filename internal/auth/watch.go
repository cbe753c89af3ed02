package auth

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultReloadInterval is how often, at most, a watched file is checked
// for changes.
const DefaultReloadInterval = time.Second

// Option configures the reloading of files by NewTokensFile, NewPolicyFile
// and NewServerTLS.
type Option func(*watchOptions)

type watchOptions struct {
	interval time.Duration
	onError  func(error)
	now      func() time.Time
}

func buildOptions(opts []Option) watchOptions {
	o := watchOptions{interval: DefaultReloadInterval, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithReloadInterval sets how often, at most, the files are checked for
// changes (default DefaultReloadInterval). Zero checks on every access,
// which is what tests want; a negative interval never reloads.
func WithReloadInterval(d time.Duration) Option {
	return func(o *watchOptions) { o.interval = d }
}

// WithOnError sets a function told about every failed reload (the previous
// value stays in use). It is called once per change of the files, from the
// goroutine that noticed the change; it must not block.
func WithOnError(f func(error)) Option {
	return func(o *watchOptions) { o.onError = f }
}

// withClock replaces time.Now; tests only.
func withClock(now func() time.Time) Option {
	return func(o *watchOptions) { o.now = now }
}

// fileStamp identifies a version of a file. os.Stat follows symlinks, so a
// Kubernetes Secret volume, which swaps its "..data" symlink to a new
// directory, changes the inode the path leads to.
type fileStamp struct {
	mtime int64
	size  int64
	ino   uint64
	dev   uint64
	err   string
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{err: err.Error()}, err
	}
	s := fileStamp{mtime: fi.ModTime().UnixNano(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(st.Ino)
		s.dev = uint64(st.Dev) //nolint:unconvert // int32 on darwin
	}
	return s, nil
}

// watched holds a value loaded from files and reloads it, on access, when
// any of the files changed since the last check. Checks happen at most once
// per interval; there is no background goroutine. A failed reload keeps the
// last good value. It is safe for concurrent use.
type watched[T any] struct {
	paths []string
	load  func() (T, error)
	opts  watchOptions

	val       atomic.Pointer[T]
	nextCheck atomic.Int64 // UnixNano

	mu      sync.Mutex // serializes checks; guards stamps and lastErr
	stamps  []fileStamp
	lastErr error
}

// newWatched loads the value once; an error here is returned, not kept.
func newWatched[T any](paths []string, load func() (T, error), o watchOptions) (*watched[T], error) {
	w := &watched[T]{paths: paths, load: load, opts: o}
	w.stamps, _ = w.stat()
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.val.Store(&v)
	w.nextCheck.Store(o.now().Add(o.interval).UnixNano())
	return w, nil
}

func (w *watched[T]) stat() ([]fileStamp, error) {
	s := make([]fileStamp, len(w.paths))
	var errs []error
	for i, p := range w.paths {
		var err error
		s[i], err = stampOf(p)
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// get returns the current value, reloading it first if the interval has
// passed and the files changed.
func (w *watched[T]) get() T {
	if w.opts.interval >= 0 && w.opts.now().UnixNano() >= w.nextCheck.Load() {
		w.check()
	}
	return *w.val.Load()
}

// check stats the files and reloads if they changed.
func (w *watched[T]) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.opts.now()
	if now.UnixNano() < w.nextCheck.Load() {
		return // another caller just checked
	}
	w.nextCheck.Store(now.Add(w.opts.interval).UnixNano())
	stamps, err := w.stat()
	if slices.Equal(stamps, w.stamps) {
		return
	}
	w.stamps = stamps
	var v T
	if err == nil {
		v, err = w.load()
	}
	if err != nil {
		w.lastErr = fmt.Errorf("reload failed, still using the previous version: %w", err)
		if w.opts.onError != nil {
			w.opts.onError(w.lastErr)
		}
		return
	}
	w.lastErr = nil
	w.val.Store(&v)
}

// err returns the error of the last reload, nil if it succeeded.
func (w *watched[T]) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}
