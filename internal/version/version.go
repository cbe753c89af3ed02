// Package version identifies the running binary.
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Version is set at link time with -ldflags "-X github.com/triage-sh/triage/internal/version.Version=v1.2.3".
var Version = ""

var (
	started = time.Now()
	once    sync.Once
	build   *triagev1.Build
)

// Build returns the binary's version, VCS revision, Go version, platform and start time.
func Build() *triagev1.Build {
	once.Do(func() {
		b := &triagev1.Build{
			Version:   Version,
			GoVersion: runtime.Version(),
			Platform:  runtime.GOOS + "/" + runtime.GOARCH,
			Started:   timestamppb.New(started),
		}
		if info, ok := debug.ReadBuildInfo(); ok {
			if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
				b.Version = info.Main.Version
			}
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					b.Revision = s.Value
				}
			}
		}
		if b.Version == "" {
			b.Version = "devel"
		}
		build = b
	})
	return build
}

// Started is when the process started (when this package was initialised).
func Started() time.Time { return started }
