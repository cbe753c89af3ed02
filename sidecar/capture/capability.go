// Package capture is the CaptureService capability: on-demand packet capture
// in the pod's network namespace. A tcpdump filter is compiled to classic BPF
// in pure Go (internal/bpf) and attached in the kernel to an AF_PACKET ring
// (internal/capture); packets are written as pcapng and streamed to the
// caller in chunks. Everything that can grow is capped by the server: the
// duration, the file size, the snap length, the number of concurrent
// captures, and the memory between the ring and a slow client.
package capture

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// Options are the capture capability's settings.
type Options struct {
	// MaxDuration caps a capture's duration; it is also the default.
	MaxDuration time.Duration
	// MaxBytes caps a capture's pcapng size; it is also the default.
	MaxBytes int64
	// MaxSnapLen caps the bytes kept per packet; it is also the default.
	MaxSnapLen int
	// MaxConcurrent is how many captures may run at once.
	MaxConcurrent int
	// RingBytes is the kernel ring's size per capture.
	RingBytes int
	// BufferBytes bounds the packets held between the ring and a slow
	// client; packets beyond it are dropped and counted as stream drops.
	BufferBytes int
}

// DefaultOptions are the defaults AddFlags registers.
func DefaultOptions() Options {
	return Options{
		MaxDuration:   60 * time.Second,
		MaxBytes:      256 << 20,
		MaxSnapLen:    262144,
		MaxConcurrent: 1,
		RingBytes:     8 << 20,
		BufferBytes:   4 << 20,
	}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.MaxDuration, "capture-max-duration", o.MaxDuration, "longest packet capture (also the default duration)")
	fs.Int64Var(&o.MaxBytes, "capture-max-bytes", o.MaxBytes, "largest pcapng a capture may stream (also the default)")
	fs.IntVar(&o.MaxSnapLen, "capture-max-snaplen", o.MaxSnapLen, "most bytes kept of each packet (also the default)")
	fs.IntVar(&o.MaxConcurrent, "capture-max-concurrent", o.MaxConcurrent, "packet captures that may run at once")
	fs.IntVar(&o.RingBytes, "capture-ring-bytes", o.RingBytes, "kernel ring size per capture (at least 8 MiB)")
	fs.IntVar(&o.BufferBytes, "capture-buffer-bytes", o.BufferBytes, "packets held for a slow client before they are dropped and counted")
}

func (o Options) validate() error {
	switch {
	case o.MaxDuration <= 0:
		return fmt.Errorf("--capture-max-duration must be positive")
	case o.MaxBytes < 1<<10:
		return fmt.Errorf("--capture-max-bytes must be at least 1024")
	case o.MaxSnapLen < 1 || o.MaxSnapLen > 262144:
		return fmt.Errorf("--capture-max-snaplen must be between 1 and 262144")
	case o.MaxConcurrent < 1:
		return fmt.Errorf("--capture-max-concurrent must be at least 1")
	case o.RingBytes < 8<<20:
		return fmt.Errorf("--capture-ring-bytes must be at least 8 MiB (8388608)")
	case o.BufferBytes < 256<<10:
		return fmt.Errorf("--capture-buffer-bytes must be at least 256 KiB (262144)")
	}
	return nil
}

// Capability returns the capture row of the capability table, with its own flags.
func Capability() capability.Capability {
	o := DefaultOptions()
	return capability.Capability{
		Name:     "capture",
		AddFlags: o.AddFlags,
		Register: func(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) { return Register(s, d, o) },
	}
}

// Register registers CaptureService on s. The service is registered even
// when the sidecar cannot open packet sockets, so that callers learn what to
// add to the pod (FailedPrecondition) rather than meeting Unimplemented;
// explain carries the same advice as a finding.
func Register(s grpc.ServiceRegistrar, d capability.Deps, o Options) (func(), error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	srv := newServer(o)
	triagev1.RegisterCaptureServiceServer(s, srv)
	if d.Contribute != nil {
		d.Contribute(srv.explain)
	}
	return srv.close, nil
}
