package capture

import (
	"errors"
	"runtime"

	"golang.org/x/sys/unix"
)

// packetSocket opens the AF_PACKET socket. A sidecar that is not root gets
// CAP_NET_RAW only through file capabilities (kubernetes#56374), and a
// binary marked cap_net_raw+ep refuses to start where the capability is
// dropped; so the binary carries only the permitted bit (+p), and the
// capability is raised into the effective set here, on this OS thread, for
// the socket call alone (packet_create is the only place the kernel checks
// it: bind, the ring and the filter need nothing), then lowered again.
// Capabilities are per thread, so the goroutine is locked to its thread
// meanwhile, and a thread whose capability could not be lowered again is
// never returned to the scheduler (it exits with the goroutine).
func packetSocket(typ int) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, typ, 0)
	if err == nil || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
		return fd, err
	}
	runtime.LockOSThread()
	hdr, data, cerr := capget()
	if cerr != nil || data[0].Permitted&(1<<unix.CAP_NET_RAW) == 0 {
		runtime.UnlockOSThread()
		return -1, err
	}
	data[0].Effective |= 1 << unix.CAP_NET_RAW
	if cerr := unix.Capset(&hdr, &data[0]); cerr != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	fd, err = unix.Socket(unix.AF_PACKET, typ, 0)
	data[0].Effective &^= 1 << unix.CAP_NET_RAW
	if cerr := unix.Capset(&hdr, &data[0]); cerr != nil {
		return fd, err // stays locked: the thread dies with this goroutine
	}
	runtime.UnlockOSThread()
	return fd, err
}

// NetRawPermitted reports whether CAP_NET_RAW is in this process's
// permitted set, so packet sockets can be opened (raised into the effective
// set for the socket alone, see packetSocket). It asks the kernel directly
// (capget), with no file to read.
func NetRawPermitted() (bool, error) {
	_, data, err := capget()
	if err != nil {
		return false, err
	}
	return data[0].Permitted&(1<<unix.CAP_NET_RAW) != 0, nil
}

// capget reads the calling thread's capability sets; hdr is what capset
// takes back.
func capget() (hdr unix.CapUserHeader, data [2]unix.CapUserData, err error) {
	hdr.Version = unix.LINUX_CAPABILITY_VERSION_3 // version 3 takes two data words
	err = unix.Capget(&hdr, &data[0])
	return hdr, data, err
}
