package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/triage-sh/triage/internal/bpf"
)

// corpusFilter is one filter of libpcap's test tables, for one link type.
type corpusFilter struct {
	table   string // accept, reject, apply
	link    bpf.LinkType
	expr    string
	snaplen uint32
}

// Tables, as corpus_test.go in internal/bpf reads them.
const (
	tableAccept = "accept" // libpcap_filter_accept_tests.json: every alias of a test for our DLTs without Linux extensions
	tableReject = "reject" // libpcap_filter_reject_tests_common_dlts.json: the tests for our DLTs
	tableApply  = "apply"  // libpcap_filter_apply_tests.json: the tests whose savefile is of one of our link types
)

var links = []bpf.LinkType{bpf.EN10MB, bpf.LinuxSLL2}

// linkTypeSLL2 is LINKTYPE_LINUX_SLL2 in a savefile.
const linkTypeSLL2 layers.LinkType = 276

// loadCorpus reads the three tables in dir. It returns fs.ErrNotExist
// (wrapped) when dir is absent.
func loadCorpus(dir string) ([]corpusFilter, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	var out []corpusFilter
	ourLink := func(dlt string) (bpf.LinkType, bool) {
		for _, l := range links {
			if l.String() == dlt {
				return l, true
			}
		}
		return 0, false
	}

	var af struct {
		Tests []struct {
			DLT     string   `json:"DLT"`
			Aliases []string `json:"aliases"`
			Snaplen int      `json:"snaplen"`
			Linux   int      `json:"linuxext"`
		} `json:"tests"`
	}
	if err := readJSON(filepath.Join(dir, "libpcap_filter_accept_tests.json"), &af); err != nil {
		return nil, err
	}
	for _, tc := range af.Tests {
		l, ok := ourLink(tc.DLT)
		if !ok || tc.Linux != 0 {
			continue
		}
		sl := uint32(tc.Snaplen)
		if sl == 0 {
			sl = bpf.DefaultSnaplen
		}
		for _, a := range tc.Aliases {
			if !strings.HasPrefix(a, "_") { // _enumerate_...: a program, not a filter
				out = append(out, corpusFilter{tableAccept, l, a, sl})
			}
		}
	}

	var rf struct {
		Tests []struct {
			DLT  string `json:"DLT"`
			Expr string `json:"expr"`
		} `json:"tests"`
	}
	if err := readJSON(filepath.Join(dir, "libpcap_filter_reject_tests_common_dlts.json"), &rf); err != nil {
		return nil, err
	}
	for _, tc := range rf.Tests {
		if l, ok := ourLink(tc.DLT); ok {
			out = append(out, corpusFilter{tableReject, l, tc.Expr, bpf.DefaultSnaplen})
		}
	}

	var pf struct {
		Tests []struct {
			Expr     string `json:"expr"`
			Savefile string `json:"savefile"`
		} `json:"tests"`
	}
	if err := readJSON(filepath.Join(dir, "libpcap_filter_apply_tests.json"), &pf); err != nil {
		return nil, err
	}
	linkOf := map[string]layers.LinkType{}
	for _, tc := range pf.Tests {
		lt, ok := linkOf[tc.Savefile]
		if !ok {
			lt, _ = savefileLink(filepath.Join(dir, "savefiles", tc.Savefile))
			linkOf[tc.Savefile] = lt
		}
		switch lt {
		case layers.LinkTypeEthernet:
			out = append(out, corpusFilter{tableApply, bpf.EN10MB, tc.Expr, bpf.DefaultSnaplen})
		case linkTypeSLL2:
			out = append(out, corpusFilter{tableApply, bpf.LinuxSLL2, tc.Expr, bpf.DefaultSnaplen})
		}
	}
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

// savefileLink is the link type of a pcap or pcapng file (its first
// interface's); 0 when it cannot be read.
func savefileLink(path string) (layers.LinkType, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return 0, err
	}
	if string(magic) == "\x0a\x0d\x0d\x0a" {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return 0, err
		}
		return r.LinkType(), nil
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		return 0, err
	}
	return r.LinkType(), nil
}

// compileRow is one table and link type.
type compileRow struct {
	table              string
	link               bpf.LinkType
	filters            int
	accepted, rejected int
	total              time.Duration // sum of the per-filter medians
	p50, max           time.Duration // per filter
	slowest            string
}

type compileResult struct {
	missing error // the fixtures folder is absent
	dir     string
	passes  int
	rows    []compileRow
	all     compileRow // every table and link type
}

// measureCompile compiles every filter of the corpus p.compilePass times
// (after one warm-up pass) and keeps each filter's median time.
func measureCompile(p params) (compileResult, error) {
	res := compileResult{dir: p.fixtures, passes: p.compilePass}
	corpus, err := loadCorpus(p.fixtures)
	if errors.Is(err, fs.ErrNotExist) {
		res.missing = err
		progress("compile: skipped, %v", err)
		return res, nil
	}
	if err != nil {
		return res, err
	}
	progress("compile: %d filters of libpcap's tables in %s, %d passes", len(corpus), p.fixtures, p.compilePass)
	times := make([][]time.Duration, len(corpus))
	ok := make([]bool, len(corpus))
	for pass := -1; pass < p.compilePass; pass++ {
		for i, cf := range corpus {
			t0 := time.Now()
			_, err := bpf.Compile(cf.expr, cf.link, cf.snaplen)
			d := time.Since(t0)
			if pass < 0 {
				ok[i] = err == nil
				continue
			}
			times[i] = append(times[i], d)
		}
	}
	type key struct {
		table string
		link  bpf.LinkType
	}
	per := map[key][]int{}
	var order []key
	for i, cf := range corpus {
		k := key{cf.table, cf.link}
		if _, seen := per[k]; !seen {
			order = append(order, k)
		}
		per[k] = append(per[k], i)
	}
	med := make([]time.Duration, len(corpus))
	for i := range corpus {
		slices.Sort(times[i])
		med[i] = times[i][len(times[i])/2]
	}
	summarize := func(table string, link bpf.LinkType, idx []int) compileRow {
		r := compileRow{table: table, link: link, filters: len(idx)}
		var ds []time.Duration
		for _, i := range idx {
			if ok[i] {
				r.accepted++
			} else {
				r.rejected++
			}
			r.total += med[i]
			ds = append(ds, med[i])
			if med[i] > r.max {
				r.max, r.slowest = med[i], corpus[i].expr
			}
		}
		slices.Sort(ds)
		if len(ds) > 0 {
			r.p50 = ds[len(ds)/2]
		}
		return r
	}
	var all []int
	for _, k := range order {
		res.rows = append(res.rows, summarize(k.table, k.link, per[k]))
		all = append(all, per[k]...)
	}
	res.all = summarize("all", 0, all)
	progress("compile: %d filters, %d accepted, %d rejected, %s in all (median %s per filter, slowest %s)",
		res.all.filters, res.all.accepted, res.all.rejected, res.all.total, res.all.p50, res.all.max)
	return res, nil
}
