package procfs

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tail := " 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0"
	tests := []struct {
		name    string
		in      string
		want    Stat
		wantErr bool
	}{
		{
			name: "plain",
			in:   "42 (sleep) S 1 42 42 0 -1 4194304 90 0 0 0 7 3 0 0 20 0 1 0 9876 8192 200" + tail,
			want: Stat{PID: 42, Comm: "sleep", State: 'S', PPID: 1, UTime: 7, STime: 3, NumThreads: 1, StartTicks: 9876, Flags: 4194304},
		},
		{
			name: "kernel thread",
			in:   "3 (kworker/0:1-events) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0" + tail,
			want: Stat{PID: 3, Comm: "kworker/0:1-events", State: 'I', PPID: 2, NumThreads: 1, StartTicks: 100, Flags: 69238880},
		},
		{
			name: "comm with spaces and parentheses",
			in:   "7 (a) b (c)) R 3 7 7 0 -1 0 0 0 0 0 100 200 0 0 20 0 12 0 5" + tail,
			want: Stat{PID: 7, Comm: "a) b (c)", State: 'R', PPID: 3, UTime: 100, STime: 200, NumThreads: 12, StartTicks: 5},
		},
		{
			name: "empty comm, trailing newline",
			in:   "9 () Z 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n",
			want: Stat{PID: 9, Comm: "", State: 'Z', PPID: 1, NumThreads: 1, StartTicks: 1},
		},
		{name: "no parentheses", in: "1 init S 0", wantErr: true},
		{name: "too few fields", in: "1 (init) S 0 1 1", wantErr: true},
		{name: "bad pid", in: "x (init) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0", wantErr: true},
		{name: "bad utime", in: "1 (init) S 0 0 0 0 -1 0 0 0 0 0 -5 0 0 0 20 0 1 0 1 0 0", wantErr: true},
		{name: "two-letter state", in: "1 (init) SS 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseStat() error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got.KernelThread() != (tt.name == "kernel thread") {
				t.Errorf("KernelThread() = %v for %q", got.KernelThread(), tt.in)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("ParseStat() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStatTimes(t *testing.T) {
	s := Stat{UTime: 250, STime: 101, StartTicks: 12345}
	if got, want := s.CPUUser(), 2500*time.Millisecond; got != want {
		t.Errorf("CPUUser() = %v, want %v", got, want)
	}
	if got, want := s.CPUSystem(), 1010*time.Millisecond; got != want {
		t.Errorf("CPUSystem() = %v, want %v", got, want)
	}
	if got := (Stat{UTime: 1 << 63}).CPUUser(); got != time.Duration(math.MaxInt64) {
		t.Errorf("CPUUser() of 2^63 ticks = %v, want it saturated", got)
	}
	boot := time.Unix(1700000000, 0)
	if got, want := s.StartTime(boot), time.Unix(1700000123, 450_000_000); !got.Equal(want) {
		t.Errorf("StartTime() = %v, want %v", got, want)
	}
}

func TestStateString(t *testing.T) {
	tests := map[byte]string{'S': "S (sleeping)", 'R': "R (running)", 'Z': "Z (zombie)", 'I': "I (idle)", 'q': "q (unknown)", 0: ""}
	for in, want := range tests {
		if got := StateString(in); got != want {
			t.Errorf("StateString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBootTime(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "cpu 1 2 3\nbtime 1700000000\nprocesses 3\n", want: 1700000000},
		{in: "btime 5", want: 5},
		{in: "cpu 1 2 3\n", wantErr: true},
		{in: "btime x\n", wantErr: true},
		{in: "btime -1\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseBootTime(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseBootTime(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got.Unix() != tt.want {
			t.Errorf("ParseBootTime(%q) = %v, want %v", tt.in, got.Unix(), tt.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Status
		wantErr bool
	}{
		{
			name: "process",
			in:   "Name:\tapp\nUid:\t1000\t1001\t1001\t1001\nGid:\t2000\t2001\t2001\t2001\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n",
			want: Status{RSSBytes: 10 << 20, PeakRSSBytes: 20 << 20, UID: 1000, GID: 2000, Threads: 7},
		},
		{
			name: "kernel thread has no Vm lines",
			in:   "Name:\tkthreadd\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nThreads:\t1\n",
			want: Status{Threads: 1},
		},
		{name: "bad unit", in: "VmRSS:\t10 MB\n", wantErr: true},
		{name: "bad uid", in: "Uid:\tx\n", wantErr: true},
		{name: "uid too big", in: "Uid:\t4294967296\n", wantErr: true},
		{name: "negative threads", in: "Threads:\t-1\n", wantErr: true},
		{name: "overflowing kB", in: "VmRSS:\t18446744073709551615 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseStatus() error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("ParseStatus() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	in := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		"Max open files            1024                 524288               files     \n" +
		"Max nice priority         0                    0                    \n"
	got, err := ParseLimits(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{
		"Max cpu time":      {0, 0},
		LimitOpenFiles:      {1024, 524288},
		"Max nice priority": {0, 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseLimits() = %v, want %v", got, want)
	}
	for _, bad := range []string{"Max open files 1024\n", "1024 2048 files\n", "Max open files lots lots files\n", "Max open files 1 99999999999999999999999 files\n"} {
		if _, err := ParseLimits(bad); err == nil {
			t.Errorf("ParseLimits(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseNULList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", nil},
		{"a\x00b c\x00", []string{"a", "b c"}},
		{"a\x00\x00b", []string{"a", "", "b"}},
		{"no-terminator", []string{"no-terminator"}},
	}
	for _, tt := range tests {
		got := ParseNULList(tt.in)
		if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseNULList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseEnviron(t *testing.T) {
	got := ParseEnviron("A=1\x00B=x=y\x00C=\x00D\x00")
	want := []EnvVar{{"A", "1"}, {"B", "x=y"}, {"C", ""}, {"D", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseEnviron() = %v, want %v", got, want)
	}
}

func TestClassifyLink(t *testing.T) {
	tests := []struct {
		target   string
		kind     string
		inode    uint64
		needStat bool
	}{
		{"socket:[12345]", KindSocket, 12345, false},
		{"socket:[x]", KindOther, 0, false},
		{"pipe:[99]", KindPipe, 0, false},
		{"anon_inode:[eventpoll]", KindAnonInode, 0, false},
		{"anon_inode:inotify", KindAnonInode, 0, false},
		{"/var/log/app.log", KindFile, 0, true},
		{"/tmp/x (deleted)", KindFile, 0, true},
		{"net:[4026531840]", KindOther, 0, false},
		{"", KindOther, 0, false},
	}
	for _, tt := range tests {
		kind, inode, needStat := ClassifyLink(tt.target)
		if kind != tt.kind || inode != tt.inode || needStat != tt.needStat {
			t.Errorf("ClassifyLink(%q) = %q, %d, %v; want %q, %d, %v", tt.target, kind, inode, needStat, tt.kind, tt.inode, tt.needStat)
		}
	}
}

func TestParseHexAddr(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "0100007F:1F90", want: "127.0.0.1:8080"},
		{in: "00000000:0000", want: "0.0.0.0:0"},
		{in: "0A00000A:FFFF", want: "10.0.0.10:65535"},
		{in: "00000000000000000000000001000000:20FB", want: "[::1]:8443"},
		{in: "000080FE000000000000000001000000:14E9", want: "[fe80::1]:5353"},
		{in: "0000000000000000FFFF00000100007F:1F90", want: "[::ffff:127.0.0.1]:8080"},
		{in: "B80D0120000000000000000001000000:0050", want: "[2001:db8::1]:80"},
		{in: "0100007F", wantErr: true},
		{in: "0100007:1F90", wantErr: true},
		{in: "0100007G:1F90", wantErr: true},
		{in: "0100007F:10000", wantErr: true},
		{in: "0100007F:", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseHexAddr(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseHexAddr(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseHexAddr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseNetTable(t *testing.T) {
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7001 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0100007F:1F90 0200007F:D431 01 00000010:00000020 00:00000000 00000000  1000        0 7002 1 0000000000000000 20 4 30 10 -1\n" +
		"   2: 0100007F:1F91 0200007F:D432 0C 00000000:00000000 00:00000000 00000000  1000        0 0 1 0000000000000000 20 4 30 10 -1\n" +
		"\n"
	tests := []struct {
		name  string
		proto string
		keep  func(uint64) bool
		want  []Socket
	}{
		{
			name:  "all rows",
			proto: "tcp",
			want: []Socket{
				{Protocol: "tcp", LocalAddress: "127.0.0.1:8080", RemoteAddress: "0.0.0.0:0", State: "LISTEN", Inode: 7001},
				{Protocol: "tcp", LocalAddress: "127.0.0.1:8080", RemoteAddress: "127.0.0.2:54321", State: "ESTABLISHED", Inode: 7002, TxQueue: 16, RxQueue: 32},
				{Protocol: "tcp", LocalAddress: "127.0.0.1:8081", RemoteAddress: "127.0.0.2:54322", State: "NEW_SYN_RECV"},
			},
		},
		{
			name:  "kept rows",
			proto: "tcp",
			keep:  func(i uint64) bool { return i == 7002 },
			want: []Socket{
				{Protocol: "tcp", LocalAddress: "127.0.0.1:8080", RemoteAddress: "127.0.0.2:54321", State: "ESTABLISHED", Inode: 7002, TxQueue: 16, RxQueue: 32},
			},
		},
		{
			name:  "udp states",
			proto: "udp",
			keep:  func(i uint64) bool { return i != 0 },
			want: []Socket{
				{Protocol: "udp", LocalAddress: "127.0.0.1:8080", RemoteAddress: "0.0.0.0:0", State: "UNKNOWN_0A", Inode: 7001},
				{Protocol: "udp", LocalAddress: "127.0.0.1:8080", RemoteAddress: "127.0.0.2:54321", State: "ESTABLISHED", Inode: 7002, TxQueue: 16, RxQueue: 32},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNetTable(strings.NewReader(table), tt.proto, tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseNetTable() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{
		"header\n   0: 0100007F:1F90 00000000:0000 0A\n",
		"header\n   0: 0100007F:1F90 00000000:0000 ZZ 00000000:00000000 00:00000000 00000000 0 0 7001\n",
		"header\n   0: 0100007F:1F90 00000000:0000 0A 0000000000000000 00:00000000 00000000 0 0 7001\n",
		"header\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 -1\n",
	} {
		if _, err := ParseNetTable(strings.NewReader(bad), "tcp", nil); err == nil {
			t.Errorf("ParseNetTable(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseUnixInodes(t *testing.T) {
	in := "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 7005 /run/app.sock\n" +
		"0000000000000000: 00000003 00000000 00000000 0001 03 8889\n"
	got, err := ParseUnixInodes(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{7005, 8889}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseUnixInodes() = %v, want %v", got, want)
	}
	if _, err := ParseUnixInodes(strings.NewReader("h\n0: 1 2 3\n"), nil); err == nil {
		t.Error("ParseUnixInodes(short row) succeeded, want an error")
	}
}

func TestParseCgroupV2Path(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"0::/\n", "/", true},
		{"0::/kubepods.slice/pod1/app\n", "/kubepods.slice/pod1/app", true},
		{"12:memory:/docker/a\n0::/system.slice/x.service\n", "/system.slice/x.service", true},
		{"12:memory:/docker/a\n1:name=systemd:/docker/a\n", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := ParseCgroupV2Path(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseCgroupV2Path(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseKeyValues(t *testing.T) {
	got, err := ParseKeyValues("low 0\nhigh 3\noom_kill 1\n\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint64{"low": 0, "high": 3, "oom_kill": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseKeyValues() = %v, want %v", got, want)
	}
	for _, bad := range []string{"low\n", "low 1 2\n", "low -1\n", "low x\n"} {
		if _, err := ParseKeyValues(bad); err == nil {
			t.Errorf("ParseKeyValues(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseUintOrMax(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"max\n", 0, false},
		{"268435456\n", 268435456, false},
		{"0", 0, false},
		{"", 0, true},
		{"-1", 0, true},
		{"1 2", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseUintOrMax(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseUintOrMax(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"max 100000\n", 0, false},
		{"50000 100000\n", 0.5, false},
		{"250000 100000", 2.5, false},
		{"max 0", 0, true},
		{"50000", 0, true},
		{"x 100000", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseCPUMax(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseCPUMax(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParsePSI(t *testing.T) {
	got, err := ParsePSI("io", "some avg10=12.34 avg60=5.00 avg300=1.00 total=999\nfull avg10=10.00 avg60=4.00 avg300=0.90 total=888\n")
	if err != nil {
		t.Fatal(err)
	}
	want := PSI{Resource: "io", Some: &PSILine{12.34, 5, 1, 999}, Full: &PSILine{10, 4, 0.9, 888}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePSI() = %+v %+v, want %+v %+v", got.Some, got.Full, want.Some, want.Full)
	}
	// Kernels before 5.13 have no full line for cpu.
	got, err = ParsePSI("cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")
	if err != nil || got.Full != nil || got.Some == nil || got.Some.TotalUsec != 7 {
		t.Errorf("ParsePSI(some only) = %+v, %v", got, err)
	}
	for _, bad := range []string{
		"",
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"some avg10=0.00 avg60=0.00 total=0\n",
		"some avg10=NaN avg60=0.00 avg300=0.00 total=0\n",
		"some avg10=101 avg60=0.00 avg300=0.00 total=0\n",
		"some avg10 avg60=0.00 avg300=0.00 total=0\n",
		"half avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
	} {
		if _, err := ParsePSI("cpu", bad); err == nil {
			t.Errorf("ParsePSI(%q) succeeded, want an error", bad)
		}
	}
}
