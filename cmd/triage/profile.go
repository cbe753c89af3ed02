package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// defaultProfileDuration is how long timed profiles sample unless
// --duration says otherwise.
const defaultProfileDuration = 10 * time.Second

// profileFlags are the flags of `triage profile`.
type profileFlags struct {
	typ, target, out string
	perPodDir        string
	duration         time.Duration
	last             bool
	rate             int64
}

func (a *app) profileCommand() *cobra.Command {
	var f profileFlags
	cmd := &cobra.Command{
		Use:   "profile [TARGET] --type " + profileTypeNames() + " [--duration D] -w FILE",
		Short: "Where does the time go? A pprof profile or execution trace, streamed to a file",
		Long: `profile streams a profile of the target into FILE (written as FILE.tmp, renamed when
complete; -w - writes to stdout) and prints the command that opens it.

  wall          wall-clock time, on and off CPU: where the time goes, waiting included
  cpu           CPU time
  heap, allocs  in-use memory, allocations since start (snapshots)
  block, mutex  blocking and contention during --duration
  goroutine, threadcreate   snapshots
  trace         an execution trace; --last returns the flight recorder's recent past
                (triage profile --type trace --last 10s) instead of waiting --duration

Timed types sample for --duration (default ` + defaultProfileDuration.String() + `, capped by the server).
While it runs, a progress line is drawn on stderr when stderr is a terminal.

For a workload (deploy/NAME, sts/NAME, ds/NAME) or -l, every pod samples the same window
and FILE is one merged profile, each sample labelled pod=NAMESPACE/NAME:
  triage profile deploy/checkout -n shop --type wall -w checkout.pb.gz
  go tool pprof -tagfocus pod=shop/checkout-7d9f-x2 checkout.pb.gz   one pod's share`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && isTargetArg(args[0]) {
				args = args[1:]
			}
			// `--last 10s` reads like the example: take the window as
			// the duration.
			if len(args) == 1 && f.last && !cmd.Flags().Changed("duration") {
				if d, err := time.ParseDuration(args[0]); err == nil {
					f.duration = d
					return nil
				}
			}
			return cobra.NoArgs(cmd, args)
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			a.takeTarget(args, false)
			return a.profile(cmd, f)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.typ, "type", "", "profile type: "+profileTypeNames())
	fl.DurationVar(&f.duration, "duration", 0, fmt.Sprintf("how long to sample (timed types; default %v); with --last, how far back", defaultProfileDuration))
	fl.BoolVar(&f.last, "last", false, "trace only: return the flight recorder's trace of the moments before the call")
	fl.Int64Var(&f.rate, "rate", 0, "sampling rate (Hz for wall and cpu); 0 means the server's default")
	fl.StringVar(&f.target, "target", "", targetHelp)
	fl.StringVarP(&f.out, "write", "w", "", "write the profile to FILE (- for stdout); required; for a workload or -l, the merged profile (samples labelled pod=NAMESPACE/NAME)")
	fl.StringVar(&f.perPodDir, "per-pod-dir", "", "for a workload or -l: also keep each pod's profile in DIR")
	return cmd
}

// profile validates the command line, then streams the profile.
func (a *app) profile(cmd *cobra.Command, f profileFlags) error {
	typ, timed, err := parseProfileType(f.typ)
	if err != nil {
		return err
	}
	tgt, err := parseTarget(f.target)
	if err != nil {
		return err
	}
	switch {
	case f.out == "":
		return usageError{"-w FILE is required (-w - writes to stdout)"}
	case f.duration < 0:
		return usageError{fmt.Sprintf("--duration %v is negative", f.duration)}
	case f.rate < 0:
		return usageError{fmt.Sprintf("--rate %d is negative: use 0 for the default", f.rate)}
	case f.last && typ != triagev1.ProfileType_PROFILE_TYPE_TRACE:
		return usageError{"--last applies to --type trace only"}
	case f.out == "-" && a.json():
		return usageError{"-w - writes the profile to stdout: drop -o json"}
	}
	req := &triagev1.ProfileRequest{Target: tgt, Type: typ, Last: f.last, Rate: f.rate}
	d := f.duration
	if d == 0 && timed && !f.last {
		d = defaultProfileDuration
	}
	if d > 0 {
		req.Duration = durationpb.New(d)
	}
	name := strings.ToLower(f.typ)
	if typ == triagev1.ProfileType_PROFILE_TYPE_TRACE {
		name = "trace"
	} else {
		name += " profile"
	}
	ctx := cmd.Context()
	if f.perPodDir != "" && !a.fleetMode() {
		return usageError{"--per-pod-dir keeps each pod's profile of a workload or -l; for one pod, -w FILE is its profile"}
	}
	if a.fleetMode() {
		return a.fleetProfile(ctx, f, req, name)
	}
	c, err := a.dial(ctx, auth.Profiler)
	if err != nil {
		return err
	}
	defer c.Close()

	wait := d
	if f.last || !timed {
		wait = 0 // no sampling to wait for
	}
	p := startProgress(a.stderr, a.stderrTerminal, name, wait)
	defer p.Done(false)
	art, err := a.streamProfile(ctx, c, req, f.out, p)
	if err != nil {
		return err
	}
	p.Done(true)
	return a.reportProfile(name, f.out, typ, art)
}

// streamProfile writes the profile to out ("-" is stdout) through an
// atomicFile, so out holds either a whole profile or nothing.
func (a *app) streamProfile(ctx context.Context, c *client.Client, req *triagev1.ProfileRequest, out string, p *progress) (*client.Artifact, error) {
	if out == "-" {
		return c.Profile(ctx, req, a.stdout, client.OnProgress(p.Set))
	}
	var art *client.Artifact
	err := writeFileAtomic(out, func(w io.Writer) error {
		var err error
		art, err = c.Profile(ctx, req, w, client.OnProgress(p.Set))
		return err
	})
	return art, err
}

// reportProfile says what was written and how to open it (stdout), and
// what the server did or cut (stderr).
func (a *app) reportProfile(name, out string, typ triagev1.ProfileType, art *client.Artifact) error {
	t := art.Trailer
	if t.GetTruncated() {
		fmt.Fprintf(a.stderr, "warning: the %s was cut short by the server: %s\n", name, t.GetTruncatedReason())
	}
	for _, n := range t.GetNotes() {
		fmt.Fprintf(a.stderr, "note: %s\n", n)
	}
	if out == "-" {
		return nil
	}
	open := "go tool pprof -http=: " + shellQuote(out)
	if typ == triagev1.ProfileType_PROFILE_TYPE_TRACE {
		open = "go tool trace " + shellQuote(out)
	}
	if a.json() {
		parts := map[string]json.RawMessage{}
		parts["file"], _ = json.Marshal(out)
		parts["bytes"], _ = json.Marshal(art.Written)
		parts["open"], _ = json.Marshal(open)
		var err error
		if parts["header"], err = render.MarshalJSON(art.Header); err != nil {
			return err
		}
		if parts["trailer"], err = render.MarshalJSON(t); err != nil {
			return err
		}
		return render.Object(a.stdout, []string{"file", "bytes", "open", "header", "trailer"}, parts)
	}
	took := ""
	if t.GetDuration() != nil {
		took = ", " + render.Duration(t.GetDuration().AsDuration())
	}
	_, err := fmt.Fprintf(a.stdout, "wrote the %s to %s (%s%s)\nopen it with: %s\n", name, out, render.Bytes(uint64(art.Written)), took, open)
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
