package render

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Cell is a table cell with an optional colour. Widths are measured on the
// text, so colour never breaks alignment (text/tabwriter counts escape
// codes, which is why Table exists).
type Cell struct {
	Text  string
	Color Color
}

// C is a coloured cell.
func C(color Color, text string) Cell { return Cell{Text: text, Color: color} }

// Table is a table of aligned columns, indented like a section's content,
// with two spaces between columns and no trailing space. A table made
// without headers is a key/value list.
type Table struct {
	indent string
	header []string
	rows   [][]Cell
	right  map[int]bool
}

// NewTable returns a table with the given column headers (none for a
// key/value list).
func NewTable(header ...string) *Table {
	return &Table{indent: indent, header: header, right: map[int]bool{}}
}

// Indent sets the left margin (a section's by default; "" for a table
// that stands alone).
func (t *Table) Indent(margin string) *Table {
	t.indent = margin
	return t
}

// AlignRight right-aligns the given columns (0-based), for numbers.
func (t *Table) AlignRight(cols ...int) *Table {
	for _, c := range cols {
		t.right[c] = true
	}
	return t
}

// Row adds a row. Each value is a Cell, a string, or anything else,
// formatted with fmt.Sprint.
func (t *Table) Row(values ...any) {
	row := make([]Cell, len(values))
	for i, v := range values {
		switch v := v.(type) {
		case Cell:
			row[i] = v
		case string:
			row[i] = Cell{Text: v}
		default:
			row[i] = Cell{Text: fmt.Sprint(v)}
		}
	}
	t.rows = append(t.rows, row)
}

// Len is the number of rows, headers excluded.
func (t *Table) Len() int { return len(t.rows) }

// Write writes the table to w.
func (t *Table) Write(w io.Writer, st Style) error {
	rows := t.rows
	if len(t.header) > 0 {
		head := make([]Cell, len(t.header))
		for i, h := range t.header {
			head[i] = Cell{Text: h, Color: Dim}
		}
		rows = append([][]Cell{head}, rows...)
	}
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.Text))
		}
	}
	ew := &errWriter{w: w}
	var b strings.Builder
	for _, r := range rows {
		b.Reset()
		b.WriteString(t.indent)
		last := len(r) - 1
		for last >= 0 && r[last].Text == "" {
			last-- // no trailing space for empty trailing cells
		}
		for i := 0; i <= last; i++ {
			c := r[i]
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.Text))
			if t.right[i] {
				b.WriteString(pad)
			}
			b.WriteString(st.Paint(c.Color, c.Text))
			if !t.right[i] && i < last {
				b.WriteString(pad)
			}
			if i < last {
				b.WriteString("  ")
			}
		}
		b.WriteString("\n")
		io.WriteString(ew, b.String())
	}
	return ew.err
}
