package procfs

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
var tcpStates = map[uint64]string{
	0x01: "ESTABLISHED", 0x02: "SYN_SENT", 0x03: "SYN_RECV", 0x04: "FIN_WAIT1",
	0x05: "FIN_WAIT2", 0x06: "TIME_WAIT", 0x07: "CLOSE", 0x08: "CLOSE_WAIT",
	0x09: "LAST_ACK", 0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "NEW_SYN_RECV",
}

// Socket is one row of /proc/PID/net/{tcp,tcp6,udp,udp6}.
type Socket struct {
	// Protocol is "tcp", "tcp6", "udp" or "udp6".
	Protocol string
	// LocalAddress and RemoteAddress are host:port, IPv6 in brackets.
	LocalAddress, RemoteAddress string
	// State is the TCP state name; for UDP "UNCONN" or "ESTABLISHED".
	State string
	// Inode is the socket inode.
	Inode uint64
	// TxQueue and RxQueue are the bytes queued.
	TxQueue, RxQueue uint64
}

// ParseNetLine parses one data row of a /proc/net/{tcp,tcp6,udp,udp6} table:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
func ParseNetLine(protocol, line string) (Socket, error) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return Socket{}, fmt.Errorf("%s row: %d fields, want at least 10", protocol, len(f))
	}
	s := Socket{Protocol: protocol}
	var err error
	if s.LocalAddress, err = ParseHexAddr(f[1]); err != nil {
		return Socket{}, fmt.Errorf("%s row: local address: %w", protocol, err)
	}
	if s.RemoteAddress, err = ParseHexAddr(f[2]); err != nil {
		return Socket{}, fmt.Errorf("%s row: remote address: %w", protocol, err)
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Socket{}, fmt.Errorf("%s row: state %q: %w", protocol, f[3], err)
	}
	s.State = stateName(protocol, st)
	tx, rx, ok := strings.Cut(f[4], ":")
	if !ok {
		return Socket{}, fmt.Errorf("%s row: queues %q", protocol, f[4])
	}
	if s.TxQueue, err = strconv.ParseUint(tx, 16, 64); err != nil {
		return Socket{}, fmt.Errorf("%s row: tx_queue: %w", protocol, err)
	}
	if s.RxQueue, err = strconv.ParseUint(rx, 16, 64); err != nil {
		return Socket{}, fmt.Errorf("%s row: rx_queue: %w", protocol, err)
	}
	if s.Inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
		return Socket{}, fmt.Errorf("%s row: inode: %w", protocol, err)
	}
	return s, nil
}

// stateName names a state of a tcp or udp table row. UDP sockets use TCP's
// numbers: ESTABLISHED when connected, CLOSE (shown as UNCONN, as ss does)
// otherwise.
func stateName(protocol string, st uint64) string {
	if strings.HasPrefix(protocol, "udp") {
		switch st {
		case 0x01:
			return "ESTABLISHED"
		case 0x07:
			return "UNCONN"
		}
	} else if name, ok := tcpStates[st]; ok {
		return name
	}
	return fmt.Sprintf("UNKNOWN_%02X", st)
}

// ParseHexAddr decodes an address of a /proc/net table, "0100007F:1F90" or
// the 32-hex-digit IPv6 form, into host:port. The kernel prints each 32-bit
// word of the address as a number in host byte order.
func ParseHexAddr(s string) (string, error) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("address %q: no port", s)
	}
	if len(hexIP) != 8 && len(hexIP) != 32 {
		return "", fmt.Errorf("address %q: %d hex digits, want 8 or 32", s, len(hexIP))
	}
	raw, err := hex.DecodeString(hexIP)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil || len(hexPort) != 4 {
		return "", fmt.Errorf("address %q: bad port", s)
	}
	ip := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	// A v4-mapped address stays [::ffff:a.b.c.d]:port, as ss prints it.
	addr, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(addr, uint16(port)).String(), nil
}

// ParseNetTable parses a /proc/net/{tcp,tcp6,udp,udp6} table from r and
// returns the rows whose inode keep accepts (all rows when keep is nil).
func ParseNetTable(r io.Reader, protocol string, keep func(inode uint64) bool) ([]Socket, error) {
	var out []Socket
	header := true
	err := scanLines(r, func(line string) error {
		if header {
			header = false
			return nil
		}
		if strings.TrimSpace(line) == "" {
			return nil
		}
		s, err := ParseNetLine(protocol, line)
		if err != nil {
			return err
		}
		if keep == nil || keep(s.Inode) {
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse %s table: %w", protocol, err)
	}
	return out, nil
}

// ParseUnixInodes returns the inodes of a /proc/net/unix table:
//
//	Num RefCount Protocol Flags Type St Inode Path
func ParseUnixInodes(r io.Reader, keep func(inode uint64) bool) ([]uint64, error) {
	var out []uint64
	header := true
	err := scanLines(r, func(line string) error {
		if header {
			header = false
			return nil
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		if len(f) < 7 {
			return fmt.Errorf("unix row: %d fields, want at least 7", len(f))
		}
		inode, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			return fmt.Errorf("unix row: inode: %w", err)
		}
		if keep == nil || keep(inode) {
			out = append(out, inode)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse unix table: %w", err)
	}
	return out, nil
}

// Sockets summarises the sockets of a process.
type Sockets struct {
	// TCPByState counts TCP sockets (v4 and v6) by state.
	TCPByState map[string]int
	// UDP counts UDP sockets (v4 and v6).
	UDP int
	// Unix counts Unix domain sockets.
	Unix int
	// Other counts sockets in none of the tables: netlink, packet, and
	// sockets of another network namespace.
	Other int
	// List has every TCP and UDP socket, ordered by protocol then inode.
	List []Socket
}

// netTables are the tables read by Sockets.
var netTables = []string{"tcp", "tcp6", "udp", "udp6"}

// Sockets matches the socket inodes of a process (from FDs) against the
// tables of its network namespace, /proc/PID/net/*. A missing table (e.g.
// tcp6 with IPv6 disabled) counts as empty.
func (p FS) Sockets(pid int, inodes []uint64) (Sockets, error) {
	out := Sockets{TCPByState: map[string]int{}}
	if len(inodes) == 0 {
		return out, nil
	}
	mine := make(map[uint64]bool, len(inodes))
	for _, in := range inodes {
		mine[in] = false // false: not yet found in a table
	}
	keep := func(inode uint64) bool {
		found, ok := mine[inode]
		if ok && !found {
			mine[inode] = true
			return true
		}
		return false
	}
	for _, proto := range netTables {
		rows, err := readNetTable(p, pid, proto, func(r io.Reader) ([]Socket, error) {
			return ParseNetTable(r, proto, keep)
		})
		if err != nil {
			return Sockets{}, err
		}
		for _, s := range rows {
			if strings.HasPrefix(proto, "tcp") {
				out.TCPByState[s.State]++
			} else {
				out.UDP++
			}
		}
		out.List = append(out.List, rows...)
	}
	unix, err := readNetTable(p, pid, "unix", func(r io.Reader) ([]uint64, error) {
		return ParseUnixInodes(r, keep)
	})
	if err != nil {
		return Sockets{}, err
	}
	out.Unix = len(unix)
	for _, found := range mine {
		if !found {
			out.Other++
		}
	}
	sort.SliceStable(out.List, func(i, j int) bool {
		a, b := out.List[i], out.List[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.Inode < b.Inode
	})
	return out, nil
}

// readNetTable opens /proc/PID/net/NAME and parses it; a missing table
// parses as empty.
func readNetTable[T any](p FS, pid int, name string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	path := p.pidPath(pid, "net", name)
	f, err := openBounded(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(p.pidPath(pid)); serr != nil {
			return nil, fmt.Errorf("pid %d: %w", pid, serr)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	defer f.Close()
	rows, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %s: %w", pid, path, err)
	}
	return rows, nil
}
