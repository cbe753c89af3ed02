//go:build linux

package capture

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// LinkTypeOf returns the LINKTYPE_* value captures on iface produce: "any"
// gives LINUX_SLL2 (276); Ethernet and loopback interfaces give EN10MB (1),
// as libpcap; other hardware types are an error naming the ARPHRD type (use
// "any" for them). An interface that does not exist in the caller's network
// namespace gives an error wrapping ErrNoInterface. It needs no privilege.
func LinkTypeOf(iface string) (uint32, error) {
	if iface == "any" {
		return LinkTypeLinuxSLL2, nil
	}
	ht, err := arphrdOf(iface)
	if err != nil {
		return 0, err
	}
	return linkTypeFor(iface, ht)
}

func linkTypeFor(iface string, hatype uint16) (uint32, error) {
	switch hatype {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return LinkTypeEN10MB, nil
	}
	return 0, fmt.Errorf("capture: interface %q has hardware type %s, which is not supported on its own; capture on \"any\" (LINUX_SLL2) instead", iface, arphrdName(hatype))
}

// arphrdOf returns the interface's ARPHRD_* type (SIOCGIFHWADDR), in the
// calling thread's network namespace.
func arphrdOf(iface string) (uint16, error) {
	ifr, err := newIfreq(iface)
	if err != nil {
		return 0, err
	}
	// Any socket reaches the device ioctls; AF_UNIX needs no privilege.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("capture: socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, ifaceErr(iface, "SIOCGIFHWADDR", err)
	}
	// ifr_hwaddr.sa_family
	return ifr.Uint16(), nil
}

// ifindexOf returns the interface's index in fd's network namespace.
func ifindexOf(fd int, iface string) (int, error) {
	ifr, err := newIfreq(iface)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, ifaceErr(iface, "SIOCGIFINDEX", err)
	}
	return int(int32(ifr.Uint32())), nil
}

func newIfreq(iface string) (*unix.Ifreq, error) {
	ifr, err := unix.NewIfreq(iface)
	if err != nil || iface == "" {
		// Too long (IFNAMSIZ) or empty: no interface can have that name.
		return nil, fmt.Errorf("capture: interface %q: %w", iface, ErrNoInterface)
	}
	return ifr, nil
}

func ifaceErr(iface, op string, err error) error {
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("capture: interface %q: %w", iface, ErrNoInterface)
	}
	return fmt.Errorf("capture: interface %q: %s: %w", iface, op, err)
}

// arphrdName names common ARPHRD_* values for error messages.
func arphrdName(t uint16) string {
	names := map[uint16]string{
		unix.ARPHRD_NETROM:             "NETROM",
		unix.ARPHRD_ETHER:              "ETHER",
		unix.ARPHRD_IEEE802:            "IEEE802",
		unix.ARPHRD_INFINIBAND:         "INFINIBAND",
		unix.ARPHRD_CAN:                "CAN",
		unix.ARPHRD_PPP:                "PPP",
		unix.ARPHRD_RAWIP:              "RAWIP",
		unix.ARPHRD_TUNNEL:             "TUNNEL (ipip)",
		unix.ARPHRD_TUNNEL6:            "TUNNEL6 (ip6tnl)",
		unix.ARPHRD_SIT:                "SIT",
		unix.ARPHRD_IPGRE:              "IPGRE",
		unix.ARPHRD_IP6GRE:             "IP6GRE",
		unix.ARPHRD_LOOPBACK:           "LOOPBACK",
		unix.ARPHRD_IEEE80211:          "IEEE80211",
		unix.ARPHRD_IEEE80211_RADIOTAP: "IEEE80211_RADIOTAP",
		unix.ARPHRD_NONE:               "NONE (tun, wireguard)",
		unix.ARPHRD_VOID:               "VOID",
	}
	if n, ok := names[t]; ok {
		return fmt.Sprintf("ARPHRD_%s (%d)", n, t)
	}
	return fmt.Sprintf("ARPHRD %d", t)
}
