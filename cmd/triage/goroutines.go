package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/internal/goroutines"
	"github.com/triage-sh/triage/internal/goroutines/goroutinespb"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// goroutinesFlags are the flags of `triage goroutines`.
type goroutinesFlags struct {
	target, path string
	raw          bool
	filter       string
	minWait      time.Duration
	save, diff   string
	file         string
	full         bool
}

// goroutinesRequest is a validated command line.
type goroutinesRequest struct {
	goroutinesFlags
	tgt  triagev1.Target
	pth  triagev1.GoroutinePath
	re   *regexp.Regexp
	opts render.GoroutineOptions
}

func (a *app) goroutinesCommand() *cobra.Command {
	var f goroutinesFlags
	cmd := &cobra.Command{
		Use:   "goroutines [TARGET] [--filter REGEX] [--min-wait DUR] [--save FILE] [--diff FILE] [--file DUMP] [--raw]",
		Short: "What is every goroutine doing? Grouped by identical stack, largest first",
		Long: `goroutines shows the target's goroutines grouped by identical stack and state, largest
group first, with each group's wait state, wait time and creator.

The default path (profile) collects concurrently with sub-millisecond pauses but has no
wait states; --path text has them, but stops the world for the whole dump.

  --file DUMP   group a dump from anywhere (debug=2 or debug=1 pprof output, gops stack,
                a panic or fatal error; - reads stdin), with no sidecar
  --save FILE   also write the grouped JSON (the -o json shape) to FILE
  --diff FILE   compare with an earlier --save (or a text dump): which groups grew, appeared
                or vanished; the leak view
  --raw         the full text dump (debug=2) to stdout or to --save FILE

TARGET is pod/NAME (one pod), or deploy/NAME, sts/NAME, ds/NAME or -l SELECTOR: every pod is
asked at once and the groups are merged: how many pods have each group and how many each,
with the odd pod out marked.

-o json prints {"total": N, "matched": M, ..., "groups": [{"count", "state",
"frames": [{"function", "file", "line"}, ...]}, ...]}, innermost frame first.`,
		Args: a.targetArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			req, err := a.goroutinesValidate(cmd, f)
			if err != nil {
				return err
			}
			if a.fleetMode() {
				return a.fleetGoroutines(cmd.Context(), req)
			}
			if req.raw {
				return a.goroutinesRaw(cmd.Context(), req)
			}
			return a.goroutinesGrouped(cmd.Context(), req)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", targetHelp)
	fl.StringVar(&f.path, "path", "", "how to collect: profile (default; fast, no wait states) or text (wait states; stops the world for the dump)")
	fl.BoolVar(&f.raw, "raw", false, "print the full text dump (debug=2) instead of groups, to stdout or --save FILE")
	fl.StringVar(&f.filter, "filter", "", "keep groups with a frame whose function or file matches this RE2 regexp")
	fl.DurationVar(&f.minWait, "min-wait", 0, "keep goroutines blocked at least this long (text path; waits are reported in whole minutes)")
	fl.StringVar(&f.save, "save", "", "also write the grouped JSON to FILE (with --raw: the text dump)")
	fl.StringVar(&f.diff, "diff", "", "compare with an earlier --save FILE or text dump and show what grew")
	fl.StringVar(&f.file, "file", "", "group a dump read from FILE (- for stdin) instead of asking the sidecar")
	fl.BoolVarP(&f.full, "full", "v", false, fmt.Sprintf("show every frame (default: at most %d per group)", render.DefaultMaxFrames))
	return cmd
}

// goroutinesValidate checks the command line before anything is dialled
// or read.
func (a *app) goroutinesValidate(cmd *cobra.Command, f goroutinesFlags) (*goroutinesRequest, error) {
	req := &goroutinesRequest{goroutinesFlags: f}
	var err error
	if req.tgt, err = parseTarget(f.target); err != nil {
		return nil, err
	}
	if req.pth, err = parsePath(f.path); err != nil {
		return nil, err
	}
	if f.minWait < 0 {
		return nil, usageError{fmt.Sprintf("--min-wait %v is negative: use a duration such as 5m", f.minWait)}
	}
	if f.filter != "" {
		if req.re, err = regexp.Compile(f.filter); err != nil {
			return nil, usageError{fmt.Sprintf("invalid --filter: %v", err)}
		}
	}
	changed := cmd.Flags().Changed
	switch {
	case f.raw && f.file != "":
		return nil, usageError{"--raw and --file cannot be combined: --raw asks the sidecar for a text dump, --file reads one"}
	case f.raw && (f.diff != "" || f.filter != "" || changed("min-wait")):
		return nil, usageError{"--raw prints the dump as it is: --diff, --filter and --min-wait apply to the grouped view"}
	case f.raw && a.json():
		return nil, usageError{"--raw prints text: drop -o json"}
	case f.raw && req.pth == triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE:
		return nil, usageError{"--raw is always the text path: drop --path profile"}
	case f.file != "" && (f.path != "" || f.target != ""):
		return nil, usageError{"--path and --target ask the sidecar; --file reads a dump instead"}
	case f.save != "" && f.save == f.diff:
		return nil, usageError{"--save and --diff name the same file: save the new dump elsewhere"}
	}
	req.opts.MaxFrames = 0
	if f.full {
		req.opts.MaxFrames = -1
	}
	return req, nil
}

// goroutinesRaw streams the text dump to stdout or --save.
func (a *app) goroutinesRaw(ctx context.Context, req *goroutinesRequest) error {
	c, err := a.dial(ctx, auth.Viewer)
	if err != nil {
		return err
	}
	defer c.Close()
	if req.save == "" {
		_, err := c.GoroutineDump(ctx, req.tgt, a.stdout)
		return err
	}
	var art int64
	err = writeFileAtomic(req.save, func(w io.Writer) error {
		got, err := c.GoroutineDump(ctx, req.tgt, w)
		if got != nil {
			art = got.Written
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wrote the goroutine dump to %s (%s)\n", req.save, render.Bytes(uint64(art)))
	return nil
}

// goroutinesGrouped shows the grouped view, or the diff with --diff.
func (a *app) goroutinesGrouped(ctx context.Context, req *goroutinesRequest) error {
	gopts := goroutines.GroupOptions{Filter: req.re, MinWait: req.minWait}
	var before *dumpSide
	if req.diff != "" {
		// Read the earlier dump first: a bad file fails before the sidecar is asked.
		var err error
		if before, err = loadDiffBase(req.diff, gopts); err != nil {
			return err
		}
	}
	var (
		view *render.GoroutineView
		err  error
	)
	if req.file != "" {
		view, err = a.goroutinesFromFile(req.file, gopts)
	} else {
		view, err = a.goroutinesLive(ctx, req)
	}
	if err != nil {
		return err
	}
	if req.save != "" {
		doc := render.GoroutineDocument(view)
		if err := writeFileAtomic(req.save, func(w io.Writer) error { return render.WriteGoroutineDoc(w, doc) }); err != nil {
			return err
		}
	}
	if before != nil {
		after := &dumpSide{name: viewName(view), total: view.Summary.GetTotal(), groups: view.Groups}
		dv := diffDumps(before, after, req.re)
		if a.json() {
			return render.WriteGoroutineDiffDoc(a.stdout, dv)
		}
		return render.GoroutineDiff(a.stdout, dv, req.opts, a.style())
	}
	if a.json() {
		return render.WriteGoroutineDoc(a.stdout, render.GoroutineDocument(view))
	}
	return render.Goroutines(a.stdout, view, req.opts, a.style())
}

// goroutinesLive asks the sidecar for the grouped dump.
func (a *app) goroutinesLive(ctx context.Context, req *goroutinesRequest) (*render.GoroutineView, error) {
	c, err := a.dial(ctx, auth.Viewer)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &triagev1.GetGoroutinesRequest{Target: req.tgt, Path: req.pth, Filter: req.filter}
	if req.minWait > 0 {
		r.MinWait = durationpb.New(req.minWait)
	}
	sum, groups, err := c.Goroutines(ctx, r)
	if err != nil {
		return nil, err
	}
	return &render.GoroutineView{Summary: sum, Groups: groups}, nil
}

// maxDumpFile bounds what --file and --diff read: pprof itself truncates
// text dumps at 64 MiB.
const maxDumpFile = 256 << 20

// readInput reads a file named on the command line, "-" being stdin.
func (a *app) readInput(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = a.stdin
		if r == nil {
			r = strings.NewReader("")
		}
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read dump: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDumpFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxDumpFile {
		return nil, fmt.Errorf("read %s: larger than %s; cut it to the goroutines of interest", name, render.Bytes(maxDumpFile))
	}
	return b, nil
}

// goroutinesFromFile parses and groups a dump locally, the same way the
// server groups a text dump.
func (a *app) goroutinesFromFile(name string, opts goroutines.GroupOptions) (*render.GoroutineView, error) {
	b, err := a.readInput(name)
	if err != nil {
		return nil, err
	}
	d, err := goroutines.Parse(bytes.NewReader(b))
	if err != nil {
		label := name
		if name == "-" {
			label = "stdin"
		}
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	groups := goroutinespb.Groups(d.Group(opts))
	sum := &triagev1.GoroutineSummary{Total: int64(d.Total), Groups: int64(len(groups)), Source: "file", Notes: fileNotes(d, opts)}
	v := &render.GoroutineView{Summary: sum, Groups: groups, File: name, Format: d.Format, Partial: d.Partial}
	sum.Matched = v.Matched()
	return v, nil
}

// fileNotes say what a parsed dump lacks or carries besides goroutines.
func fileNotes(d *goroutines.Dump, opts goroutines.GroupOptions) []string {
	var notes []string
	if d.Header != "" {
		first, _, _ := strings.Cut(d.Header, "\n")
		switch d.Format {
		case goroutines.FormatPanic:
			notes = append(notes, "panic: "+first)
		case goroutines.FormatFatal:
			notes = append(notes, "fatal error: "+first)
		default:
			notes = append(notes, first)
		}
	}
	if d.Format == goroutines.FormatDebug1 || d.Format == goroutines.FormatMixed {
		n := "debug=1 records carry no wait states, creators or goroutine ids"
		if opts.MinWait > 0 {
			n += "; --min-wait dropped them"
		}
		notes = append(notes, n)
	}
	if d.Partial {
		notes = append(notes, "the dump looks truncated: counts are of what was read")
	}
	if d.DeclaredTotal > 0 && d.DeclaredTotal != d.Total {
		notes = append(notes, fmt.Sprintf("the profile's header declares %d goroutines; %d were read", d.DeclaredTotal, d.Total))
	}
	return notes
}

// viewName names a dump for the diff's header.
func viewName(v *render.GoroutineView) string {
	if v.File != "" {
		return v.File
	}
	s := v.Summary
	name := "live dump"
	var parts []string
	if s.GetSource() != "" {
		parts = append(parts, s.GetSource())
	}
	if s.GetPid() != 0 {
		parts = append(parts, fmt.Sprintf("pid %d", s.GetPid()))
	}
	if p := render.PathName(s.GetPath()); p != "" {
		parts = append(parts, "path "+p)
	}
	if s.GetTime() != nil {
		parts = append(parts, render.Timestamp(s.GetTime().AsTime()))
	}
	if len(parts) > 0 {
		name += " (" + strings.Join(parts, ", ") + ")"
	}
	return name
}
