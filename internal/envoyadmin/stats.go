package envoyadmin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Stat is one Envoy statistic. Counters and gauges have Value; text readouts
// have Text; histograms have Quantiles (text form) or Histogram set.
type Stat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value,omitempty"`
	// Text is a text readout's value.
	Text string `json:"text,omitempty"`
	// Histogram is true for histograms; Quantiles holds what Envoy computed
	// (empty when it printed "No recorded values").
	Histogram bool       `json:"histogram,omitempty"`
	Quantiles []Quantile `json:"quantiles,omitempty"`
}

// Quantile is one histogram quantile. Interval and Cumulative are nil where
// Envoy printed nan (no samples in the interval).
type Quantile struct {
	Quantile   float64  `json:"quantile"` // 0..100
	Interval   *float64 `json:"interval"`
	Cumulative *float64 `json:"cumulative"`
}

// ParseStatsText parses /stats in text form: "name: value" per line, where
// value is an unsigned integer, a quoted text readout, "No recorded values",
// or histogram quantiles "P0(interval,cumulative) P25(...) ...". Stat names
// may contain ':' (Istio's cluster names do not, but listener addresses do),
// so the value starts after the last ": ".
func ParseStatsText(b []byte) ([]Stat, error) {
	var out []Stat
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(s) == "" {
			continue
		}
		st, err := parseStatLine(s)
		if err != nil {
			return out, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, st)
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, nil
}

func parseStatLine(s string) (Stat, error) {
	// Text readouts: name: "value" (the value may hold ": ").
	if i := strings.Index(s, ": \""); i > 0 && len(s) >= i+4 && strings.HasSuffix(s, "\"") {
		txt, err := strconv.Unquote(s[i+2:])
		if err != nil {
			txt = s[i+3 : len(s)-1]
		}
		return Stat{Name: s[:i], Text: txt}, nil
	}
	i := strings.LastIndex(s, ": ")
	if i <= 0 {
		if strings.HasSuffix(s, ":") { // "name:" with an empty value
			return Stat{Name: strings.TrimSuffix(s, ":")}, nil
		}
		return Stat{}, fmt.Errorf("no \": \" in %q", trimForError(s))
	}
	name, val := s[:i], strings.TrimSpace(s[i+2:])
	// Histogram values contain ": " nowhere, but a name may; for histograms
	// the value starts at the first " P0(" or "No recorded values".
	if j := strings.Index(s, ": P0("); j > 0 {
		name, val = s[:j], s[j+2:]
	} else if strings.HasSuffix(s, ": No recorded values") {
		return Stat{Name: strings.TrimSuffix(s, ": No recorded values"), Histogram: true}, nil
	}
	if strings.HasPrefix(val, "P") && strings.Contains(val, "(") {
		q, err := parseQuantiles(val)
		if err != nil {
			return Stat{}, fmt.Errorf("histogram %s: %w", name, err)
		}
		return Stat{Name: name, Histogram: true, Quantiles: q}, nil
	}
	v, err := strconv.ParseUint(val, 10, 64)
	if err != nil {
		// Gauges are unsigned in Envoy, but be lenient with a sign.
		if f, ferr := strconv.ParseInt(val, 10, 64); ferr == nil && f < 0 {
			return Stat{Name: name, Value: 0}, nil
		}
		return Stat{}, fmt.Errorf("value of %s is not a number: %q", name, trimForError(val))
	}
	return Stat{Name: name, Value: v}, nil
}

func parseQuantiles(s string) ([]Quantile, error) {
	var out []Quantile
	for _, f := range strings.Fields(s) {
		open := strings.IndexByte(f, '(')
		if !strings.HasPrefix(f, "P") || open < 2 || !strings.HasSuffix(f, ")") {
			return nil, fmt.Errorf("quantile %q is not P<q>(interval,cumulative)", trimForError(f))
		}
		q, err := strconv.ParseFloat(f[1:open], 64)
		if err != nil {
			return nil, fmt.Errorf("quantile %q: %w", trimForError(f), err)
		}
		parts := strings.Split(f[open+1:len(f)-1], ",")
		if len(parts) != 2 {
			return nil, fmt.Errorf("quantile %q has %d values, want 2", trimForError(f), len(parts))
		}
		iv, err := parseNaN(parts[0])
		if err != nil {
			return nil, err
		}
		cv, err := parseNaN(parts[1])
		if err != nil {
			return nil, err
		}
		out = append(out, Quantile{Quantile: q, Interval: iv, Cumulative: cv})
	}
	return out, nil
}

func parseNaN(s string) (*float64, error) {
	if s == "nan" || s == "" {
		return nil, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("quantile value %q: %w", trimForError(s), err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, nil
	}
	return &f, nil
}

func trimForError(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ParseStatsJSON parses /stats?format=json: {"stats": [{"name","value"},
// ..., {"histograms": {...}}]}, or the bare array.
func ParseStatsJSON(b []byte) ([]Stat, error) {
	var doc struct {
		Stats []json.RawMessage `json:"stats"`
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &doc.Stats); err != nil {
			return nil, err
		}
	} else if err := json.Unmarshal(t, &doc); err != nil {
		return nil, err
	}
	var out []Stat
	for _, raw := range doc.Stats {
		var e struct {
			Name       *string         `json:"name"`
			Value      json.RawMessage `json:"value"`
			Histograms *struct {
				SupportedQuantiles []float64 `json:"supported_quantiles"`
				ComputedQuantiles  []struct {
					Name   string `json:"name"`
					Values []struct {
						Interval   *float64 `json:"interval"`
						Cumulative *float64 `json:"cumulative"`
					} `json:"values"`
				} `json:"computed_quantiles"`
			} `json:"histograms"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, err
		}
		switch {
		case e.Histograms != nil:
			for _, h := range e.Histograms.ComputedQuantiles {
				st := Stat{Name: h.Name, Histogram: true}
				for i, v := range h.Values {
					var q float64
					if i < len(e.Histograms.SupportedQuantiles) {
						q = e.Histograms.SupportedQuantiles[i]
					}
					st.Quantiles = append(st.Quantiles, Quantile{Quantile: q, Interval: v.Interval, Cumulative: v.Cumulative})
				}
				out = append(out, st)
			}
		case e.Name != nil:
			st := Stat{Name: *e.Name}
			v := bytes.TrimSpace(e.Value)
			switch {
			case len(v) == 0 || string(v) == "null":
			case v[0] == '"':
				if err := json.Unmarshal(v, &st.Text); err != nil {
					return nil, err
				}
			default:
				n, err := strconv.ParseUint(string(v), 10, 64)
				if err != nil {
					f, ferr := strconv.ParseFloat(string(v), 64)
					if ferr != nil || f < 0 {
						return nil, fmt.Errorf("stat %s: value %s is not a counter or gauge", st.Name, trimForError(string(v)))
					}
					n = uint64(f)
				}
				st.Value = n
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// Logger is one Envoy logger and its level.
type Logger struct {
	Name  string `json:"name"`
	Level string `json:"level"`
}

// ParseLogging parses /logging's answer ("active loggers:\n  admin: info\n..."),
// sorted by name.
func ParseLogging(b []byte) []Logger {
	var out []Logger
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasSuffix(line, "loggers:") {
			continue
		}
		name, level, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name, level = strings.TrimSpace(name), strings.TrimSpace(level)
		if name == "" || level == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		out = append(out, Logger{Name: name, Level: level})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
