package main

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/triage-sh/triage/internal/bpf"
)

func TestParseTcpdumpStats(t *testing.T) {
	tests := []struct {
		name, stderr string
		want         tcpdumpStats
		wantErr      bool
	}{
		{name: "4.99", stderr: "tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n^C1000 packets captured\n2000 packets received by filter\n3 packets dropped by kernel\n",
			want: tcpdumpStats{captured: 1000, received: 2000, dropped: 3, ifDropped: -1}},
		{name: "singular and interface drops", stderr: "1 packet captured\n1 packet received by filter\n0 packets dropped by kernel\n7 packets dropped by interface\n",
			want: tcpdumpStats{captured: 1, received: 1, dropped: 0, ifDropped: 7}},
		{name: "no statistics", stderr: "tcpdump: lo: You don't have permission to capture on that device\n", wantErr: true},
		{name: "kernel line missing", stderr: "5 packets captured\n5 packets received by filter\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTcpdumpStats(tt.stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCaptureJSON(t *testing.T) {
	out := `{"file":"x.pcapng","packets":12,"bytes":4096,"kernel_drops":1,"stream_drops":2,"stop_reason":"client",
	"header":{"attributes":{"ring_bytes":"8388608"}},
	"trailer":{"bytes":"4096","duration":"1.500s","counters":{"kernel_packets":"15","packets":"12"},"notes":["n"]}}`
	got, err := parseCaptureJSON([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got.Packets != 12 || got.Bytes != 4096 || got.KernelDrops != 1 || got.StreamDrops != 2 || got.StopReason != "client" ||
		got.Trailer.Counters.KernelPackets != 15 || got.Trailer.Duration != "1.500s" || got.Header.Attributes["ring_bytes"] != "8388608" {
		t.Fatalf("got %+v", got)
	}
	// kernel_packets as a JSON number is read too.
	if got, err := parseCaptureJSON([]byte(`{"stop_reason":"bytes","trailer":{"counters":{"kernel_packets":7}}}`)); err != nil || got.Trailer.Counters.KernelPackets != 7 {
		t.Fatalf("numeric kernel_packets: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "triage: sync /dev/null: invalid argument", `{"packets":1}`} {
		if _, err := parseCaptureJSON([]byte(bad)); err == nil {
			t.Errorf("parseCaptureJSON(%q): want an error", bad)
		}
	}
}

func TestParsePacketSockets(t *testing.T) {
	const table = `sk               RefCnt Type Proto  Iface R Rmem   User   Inode
0000000000000000 3      3    0003   1     1 0      0      123456
0000000000000000 3      3    0000   0     0 0      0      123457
0000000000000000 3      2    0003   2     1 0      0      123458
`
	rows, err := parsePacketSockets([]byte(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []packetSocket{{"123456", 1, true}, {"123457", 0, false}, {"123458", 2, true}}
	if len(rows) != len(want) {
		t.Fatalf("got %v, want %v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: got %+v, want %+v", i, rows[i], want[i])
		}
	}
	if _, err := parsePacketSockets([]byte("sk RefCnt Type\n")); err == nil {
		t.Error("an unexpected header: want an error")
	}
}

func TestDurAndTruncate(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-1, "?"}, {8192, "8 µs"}, {1_990_000, "1.99 ms"}, {131 * time.Millisecond, "131 ms"}, {5823 * time.Millisecond, "5.82 s"},
	} {
		if got := dur(tt.d); got != tt.want {
			t.Errorf("dur(%d) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := truncate("a |\n\tb `c`", 60); got != `a \| b 'c'` {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("ééééé", 3); got != "ééé…" {
		t.Errorf("truncate runes = %q", got)
	}
}

// TestLoadCorpus reads small tables in libpcap's layout.
func TestLoadCorpus(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("libpcap_filter_accept_tests.json", `{"_meta":{},"tests":[
		{"DLT":"EN10MB","aliases":["tcp","ip proto 6"],"snaplen":96},
		{"DLT":"EN10MB","aliases":["_enumerate_bpf_image"]},
		{"DLT":"EN10MB","aliases":["inbound"],"linuxext":1},
		{"DLT":"LINUX_SLL2","aliases":["udp"]},
		{"DLT":"RAW","aliases":["ip"]}]}`)
	write("libpcap_filter_reject_tests_common_dlts.json", `{"tests":[
		{"DLT":"EN10MB","expr":"ether host nonsense"},
		{"DLT":"IPV4","expr":"ether"},
		{"errstr":"x","name":"savefile only","savefile":"a.pcap"}]}`)
	write("libpcap_filter_apply_tests.json", `{"tests":[
		{"expr":"icmp","savefile":"eth.pcap","results":[1]},
		{"expr":"ip","savefile":"raw.pcap","results":[1]},
		{"expr":"tcp","savefile":"missing.pcap","results":[0]}]}`)
	if err := os.Mkdir(filepath.Join(dir, "savefiles"), 0o700); err != nil {
		t.Fatal(err)
	}
	pcapHeader := func(link uint32) []byte {
		b := make([]byte, 24)
		binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4)
		binary.LittleEndian.PutUint16(b[4:], 2)
		binary.LittleEndian.PutUint16(b[6:], 4)
		binary.LittleEndian.PutUint32(b[16:], 65535)
		binary.LittleEndian.PutUint32(b[20:], link)
		return b
	}
	for name, link := range map[string]uint32{"eth.pcap": 1, "raw.pcap": 101} {
		if err := os.WriteFile(filepath.Join(dir, "savefiles", name), pcapHeader(link), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := loadCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []corpusFilter{
		{tableAccept, bpf.EN10MB, "tcp", 96},
		{tableAccept, bpf.EN10MB, "ip proto 6", 96},
		{tableAccept, bpf.LinuxSLL2, "udp", bpf.DefaultSnaplen},
		{tableReject, bpf.EN10MB, "ether host nonsense", bpf.DefaultSnaplen},
		{tableApply, bpf.EN10MB, "icmp", bpf.DefaultSnaplen},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
	}

	if _, err := loadCorpus(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent folder: %v, want fs.ErrNotExist", err)
	}
}
