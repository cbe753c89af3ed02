package kube

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/triage-sh/triage/client"
)

// ErrorTable writes one line per failed or skipped pod, under the header
// POD NODE ERROR, and returns how many pods it listed (0: nothing written).
// Pods are named namespace/name when they span namespaces. Each error is
// flattened to one line.
func ErrorTable[T any](w io.Writer, results []Result[T]) (int, error) {
	namespaces := map[string]bool{}
	n := 0
	for _, r := range results {
		namespaces[r.Pod.Namespace] = true
		if r.Err != nil {
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tERROR")
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		name := r.Pod.Name
		if len(namespaces) > 1 {
			name = r.Pod.String()
		}
		node := r.Pod.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, node, oneLine(client.Describe(r.Err)))
	}
	if err := tw.Flush(); err != nil {
		return n, fmt.Errorf("write the error table: %w", err)
	}
	return n, nil
}

// oneLine folds white space runs (newlines, tabs) into single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
