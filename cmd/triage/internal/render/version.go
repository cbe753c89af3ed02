package render

import (
	"io"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Version writes the client's build and, when known, the server's; a nil
// server is left out (the caller reports why).
func Version(w io.Writer, clientBuild, server *triagev1.Build, st Style) error {
	t := NewTable().Indent("")
	t.Row("client", BuildLine(clientBuild))
	if server != nil {
		t.Row("server", BuildLine(server))
	}
	return t.Write(w, st)
}
