package bpf

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestKernelAccepts attaches every compiled program to a socket: the
// kernel's classic BPF checker must accept it (no privileges needed).
func TestKernelAccepts(t *testing.T) {
	n := 0
	long := "host 1.2.3.4"
	for i := 0; i < 60; i++ {
		long += " or 10.0.0.1"
	}
	for _, f := range append(append([]string{}, commonFilters...), long+" or port 80") {
		for _, lt := range []LinkType{EN10MB, LinuxSLL2} {
			for _, o := range []Options{{}, {KernelVLAN: true}} {
				prog, err := CompileWithOptions(f, lt, 65535, o)
				if err != nil || (o.KernelVLAN && !hasExtensions(prog)) {
					continue
				}
				// A fresh socket each time: replaced filters are freed lazily
				// and count against net.core.optmem_max meanwhile.
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					t.Skipf("socket: %v", err)
				}
				if err := attachFilter(fd, prog); err != nil {
					t.Errorf("%v %+v %q: kernel rejects the program (%d instructions): %v", lt, o, f, len(prog), err)
				}
				unix.Close(fd)
				n++
			}
		}
	}
	t.Logf("kernel accepted %d programs", n)
}
