package render

import (
	"fmt"
	"io"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Interfaces renders `triage capture --list-interfaces`.
func Interfaces(w io.Writer, resp *triagev1.ListInterfacesResponse, st Style) error {
	t := NewTable("NAME", "INDEX", "LINK TYPE", "UP", "MTU", "ADDRESSES").Indent("").AlignRight(1, 4)
	for _, in := range resp.GetInterfaces() {
		up := C(Red, "no")
		if in.GetUp() {
			up = C(Green, "yes")
		}
		t.Row(in.GetName(), in.GetIndex(), in.GetLinkType(), up, in.GetMtu(), strings.Join(in.GetAddresses(), " "))
	}
	if err := t.Write(w, st); err != nil {
		return err
	}
	if !resp.GetCaptureAvailable() {
		if _, err := fmt.Fprintf(w, "\n%s %s\n", st.Paint(Yellow, "capture is unavailable:"), resp.GetCaptureUnavailableReason()); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}
