//go:build linux

package cluster

import "syscall"

// procAttr makes the kernel kill etcd and kube-apiserver when the process
// that started them dies, so that a crashed or killed run leaves no servers
// behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// tempBase is where the control plane's directory goes: /dev/shm when it has
// room (etcd fsyncs every write, and preallocates 64 MB WAL segments), else
// the default temporary directory.
func tempBase() string {
	var fs syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &fs); err != nil || uint64(fs.Bavail)*uint64(fs.Bsize) < 1<<30 {
		return ""
	}
	return "/dev/shm"
}
