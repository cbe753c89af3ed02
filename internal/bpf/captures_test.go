package bpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// fixturesDir is ../shared/fixtures relative to the module root.
var fixturesDir = filepath.Join("..", "..", "..", "shared", "fixtures")

// readCapture reads every packet of a pcap or pcapng file with its link
// type (pcapng files may mix interfaces of several link types). On an error
// it returns the packets before it, and for a classic pcap file the link
// type of the file as the only element of links if no packet was read.
func readCapture(path string) ([]layers.LinkType, [][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var read func() ([]byte, gopacket.CaptureInfo, error)
	var link func(gopacket.CaptureInfo) layers.LinkType
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if errors.Is(err, io.EOF) {
			return nil, nil, nil // a section header and nothing else
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		read = r.ReadPacketData
		link = func(ci gopacket.CaptureInfo) layers.LinkType { return ci.AncillaryData[0].(layers.LinkType) }
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		read = r.ReadPacketData
		lt := r.LinkType()
		link = func(gopacket.CaptureInfo) layers.LinkType { return lt }
	}
	var links []layers.LinkType
	var pkts [][]byte
	for {
		data, ci, err := read()
		if errors.Is(err, io.EOF) {
			return links, pkts, nil
		}
		if err != nil {
			if len(links) == 0 {
				links = []layers.LinkType{link(ci)}
			}
			return links, pkts, fmt.Errorf("%s: packet %d: %w", path, len(pkts)+1, err)
		}
		links = append(links, link(ci))
		pkts = append(pkts, data)
	}
}

// ourLink maps a capture's link type to ours.
func ourLink(l layers.LinkType) (LinkType, bool) {
	switch l {
	case layers.LinkTypeEthernet:
		return EN10MB, true
	case layers.LinkTypeLinuxSLL2:
		return LinuxSLL2, true
	}
	return 0, false
}

// supportedLink returns the link type shared by all packets, when we
// support it.
func supportedLink(links []layers.LinkType) (LinkType, bool) {
	if len(links) == 0 {
		return 0, false
	}
	for _, l := range links[1:] {
		if l != links[0] {
			return 0, false
		}
	}
	return ourLink(links[0])
}

type fixtureCaptures struct {
	missing   error
	files     []string
	byLink    map[LinkType][]packet
	otherLink map[layers.LinkType]int // packets skipped, by link type
	// unreadable: files of other link types pcapgo cannot read whole
	// (tcpdump's deliberately malformed SLIP captures)
	unreadable []string
	errs       []error
}

var (
	fixtureOnce sync.Once
	fixtureCap  fixtureCaptures
)

// loadFixtureCaptures reads the pcap and pcapng files under
// ../shared/fixtures/pcap and ../shared/fixtures/bpf-filters/savefiles.
func loadFixtureCaptures() *fixtureCaptures {
	fixtureOnce.Do(func() {
		fc := &fixtureCap
		fc.byLink = map[LinkType][]packet{}
		fc.otherLink = map[layers.LinkType]int{}
		if _, err := os.Stat(fixturesDir); err != nil {
			fc.missing = err
			return
		}
		for _, sub := range []string{"pcap", filepath.Join("bpf-filters", "savefiles")} {
			_ = filepath.WalkDir(filepath.Join(fixturesDir, sub), func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".pcap") || strings.HasSuffix(path, ".pcapng")) {
					return nil
				}
				rel, _ := filepath.Rel(fixturesDir, path)
				fc.files = append(fc.files, rel)
				links, pkts, err := readCapture(path)
				if err != nil {
					if _, ok := supportedLink(links); ok {
						fc.errs = append(fc.errs, err)
					} else {
						fc.unreadable = append(fc.unreadable, rel)
					}
				}
				for i, p := range pkts {
					lt, ok := ourLink(links[i])
					if !ok {
						fc.otherLink[links[i]]++
						continue
					}
					fc.byLink[lt] = append(fc.byLink[lt], packet{fmt.Sprintf("%s#%d", rel, i+1), p})
				}
				return nil
			})
		}
	})
	return &fixtureCap
}

// TestFixtureCaptures reads every capture of the fixtures and reports what
// the differential corpus takes from them.
func TestFixtureCaptures(t *testing.T) {
	sharedFixtures(t)
	fc := loadFixtureCaptures()
	for _, err := range fc.errs {
		t.Error(err)
	}
	if len(fc.byLink[EN10MB]) == 0 {
		t.Error("no Ethernet packets in the fixture captures")
	}
	var other []string
	n := 0
	for l, c := range fc.otherLink {
		other = append(other, fmt.Sprintf("DLT %d: %d", int(l), c))
		n += c
	}
	sort.Strings(other)
	t.Logf("fixture captures: %d files; packets used: EN10MB %d, LINUX_SLL2 %d; skipped on other link types: %d (%s); "+
		"unreadable files of other link types: %d (%s)",
		len(fc.files), len(fc.byLink[EN10MB]), len(fc.byLink[LinuxSLL2]), n, strings.Join(other, ", "),
		len(fc.unreadable), strings.Join(fc.unreadable, ", "))
}
