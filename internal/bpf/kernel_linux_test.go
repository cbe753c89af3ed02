package bpf

import (
	"testing"
	"unsafe"

	xbpf "golang.org/x/net/bpf"
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
			prog, err := Compile(f, lt, 65535)
			if err != nil {
				continue
			}
			raw, err := xbpf.Assemble(prog)
			if err != nil {
				t.Fatalf("%q: assemble: %v", f, err)
			}
			// A fresh socket each time: replaced filters are freed lazily
			// and count against net.core.optmem_max meanwhile.
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
			if err != nil {
				t.Skipf("socket: %v", err)
			}
			fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
			if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
				t.Errorf("%v %q: kernel rejects the program (%d instructions): %v", lt, f, len(raw), err)
			}
			unix.Close(fd)
			n++
		}
	}
	t.Logf("kernel accepted %d programs", n)
}
