package sidecar

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/triage-sh/triage/internal/config"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func TestSettingsConvertedOnce(t *testing.T) {
	s := &Server{settings: []config.Value{
		{Name: "addr", Value: "127.0.0.1:0", Source: triagev1.Source_SOURCE_FLAG, Origin: "--addr"},
		{Name: "tls-key", Value: "[redacted]", Source: triagev1.Source_SOURCE_DEFAULT, Origin: "default"},
	}}
	first, second := s.Settings(), s.Settings()
	if len(first) != len(s.settings) {
		t.Fatalf("%d settings, want %d", len(first), len(s.settings))
	}
	for i, v := range s.settings {
		if !proto.Equal(first[i], v.Proto()) {
			t.Errorf("setting %d is %v, want %v", i, first[i], v.Proto())
		}
		if first[i] != second[i] {
			t.Errorf("setting %d was converted again on the second call", i)
		}
	}
}

func TestCertificatesReusedWithinTTL(t *testing.T) {
	p := newPKI(t)
	st := startServer(t, p, nil)
	s := st.srv
	first := s.Certificates()
	if len(first) == 0 {
		t.Fatal("no certificates described")
	}
	if again := s.Certificates(); &again[0] != &first[0] {
		t.Fatal("the certificates were described again within certViewTTL")
	}
	serial := first[0].GetSerial()

	// A new server certificate (ReloadInterval 0: read on the next
	// handshake or description) shows once the view is older than the TTL.
	p.issueServer(t)
	s.view.mu.Lock()
	s.view.certsAt = s.view.certsAt.Add(-certViewTTL)
	s.view.mu.Unlock()
	later := s.Certificates()
	if len(later) == 0 || later[0].GetSerial() == serial {
		t.Fatalf("after a reload and certViewTTL, serial %q, want a new one (was %q)", later[0].GetSerial(), serial)
	}
	if !later[0].GetNotAfter().AsTime().After(time.Now()) {
		t.Errorf("the new certificate's NotAfter %v is not in the future", later[0].GetNotAfter().AsTime())
	}
}
