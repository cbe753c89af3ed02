package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
)

// cliRun is one `triage capture ... -o json` run.
type cliRun struct {
	args   []string // after the connection flags
	exit   int
	stderr string // its first line
	out    captureJSON
	outErr error // the JSON could not be read
}

// cliResult checks the CLI the issue names for this bench, writing to
// /dev/null and to a regular file.
type cliResult struct {
	devNull, file cliRun
}

// checkCLI runs `triage capture` for 1 s on an idle filter, to /dev/null
// and to a file in tmp.
func checkCLI(p params, sc *sidecar, tmp string) cliResult {
	one := func(out string) cliRun {
		r := cliRun{args: []string{"capture", "-i", "lo", "-f", idleFilter, "--duration", "1s", "-w", out, "-o", "json"}}
		cmd := exec.Command(p.cli, append([]string{"--addr", sc.addr(), "--insecure"}, r.args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			r.exit = ee.ExitCode()
		case err != nil:
			r.exit = -1
			r.stderr = err.Error()
		}
		if r.stderr == "" {
			r.stderr, _, _ = strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		}
		r.out, r.outErr = parseCaptureJSON([]byte(stdout.String()))
		return r
	}
	res := cliResult{devNull: one("/dev/null"), file: one(filepath.Join(tmp, "cli.pcapng"))}
	progress("triage capture -w /dev/null -o json: exit %d %s; -w FILE: exit %d %s", res.devNull.exit, res.devNull.stderr, res.file.exit, res.file.stderr)
	return res
}
