package sidecar

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// fakeIssuer is the part of an API server the jwks mode reads: discovery
// and the key set, with a real P-256 key whose tokens the test signs.
type fakeIssuer struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	issuer string
	down   atomic.Bool
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIssuer{key: key, issuer: "https://kubernetes.default.svc.cluster.local"}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": f.issuer, "jwks_uri": f.issuer + "/openid/v1/jwks"})
		case "/openid/v1/jwks":
			// As kube-apiserver: 406 unless the client accepts the key set's type.
			if !strings.Contains(r.Header.Get("Accept"), "application/jwk-set+json") {
				http.Error(w, "not acceptable", http.StatusNotAcceptable)
				return
			}
			w.Header().Set("Content-Type", "application/jwk-set+json")
			_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// token signs a ServiceAccount token for ns/sa with the given audience.
func (f *fakeIssuer) token(t *testing.T, ns, sa, aud string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: f.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{
		"iss": f.issuer, "aud": []string{aud}, "sub": "system:serviceaccount:" + ns + ":" + sa,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": sa, "uid": "uid-" + sa}},
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKubeJWKSAuth: a sidecar with --kube-auth=jwks on plaintext loopback
// admits tier ServiceAccount tokens with triage's audience and their roles
// only, refuses the API server's audience and foreign ServiceAccounts, and
// says Unavailable (not Unauthenticated) when the keys cannot be fetched.
func TestKubeJWKSAuth(t *testing.T) {
	iss := newFakeIssuer(t)
	// jwksOnly: plaintext loopback, Kubernetes tokens the only credentials.
	jwksOnly := func(o *Options) {
		o.TLSCert, o.TLSKey, o.ClientCA, o.PolicyFile, o.TokensFile = "", "", "", "", ""
		o.InsecureLocal = true
		o.KubeAuth, o.KubeAPIServer, o.KubeTokenFile, o.KubeCAFile = "jwks", iss.srv.URL, "", ""
	}
	s := startServer(t, newPKI(t), func(o *Options) {
		jwksOnly(o)
		o.PodNamespace = "shop"
	})
	explain := func(tok string) error {
		_, err := triagev1.NewExplainServiceClient(dial(t, s.addr, nil, tok)).Explain(testCtx(t), &triagev1.ExplainRequest{})
		return err
	}
	profile := func(tok string) error {
		stream, err := triagev1.NewRuntimeServiceClient(dial(t, s.addr, nil, tok)).Profile(testCtx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_HEAP, Target: triagev1.Target_TARGET_SELF})
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	code := func(err error) codes.Code { return status.Code(err) }

	viewer := iss.token(t, "triage-system", "triage-viewer", "triage.dev")
	if err := explain(viewer); err != nil {
		t.Fatalf("viewer explain: %v", err)
	}
	if err := profile(viewer); code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "triage-profiler") {
		t.Errorf("viewer profile: %v; want PermissionDenied naming triage-profiler", err)
	}
	// The pod's own namespace holds tiers too.
	if err := profile(iss.token(t, "shop", "triage-profiler", "triage.dev")); err != nil {
		t.Errorf("profiler of the pod's namespace: %v", err)
	}
	if err := explain(iss.token(t, "other", "triage-operator", "triage.dev")); code(err) != codes.PermissionDenied {
		t.Errorf("tier of another namespace: %v; want PermissionDenied", err)
	}
	if err := explain(iss.token(t, "triage-system", "triage-viewer", "https://kubernetes.default.svc.cluster.local")); code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "audience") {
		t.Errorf("API server audience: %v; want Unauthenticated about the audience", err)
	}
	if err := explain(viewer[:len(viewer)-4] + "AAAA"); code(err) != codes.Unauthenticated {
		t.Errorf("tampered signature: %v; want Unauthenticated", err)
	}
	if err := explain(""); code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "ServiceAccount token") {
		t.Errorf("no token: %v; want Unauthenticated saying to send a ServiceAccount token", err)
	}
	audit := strings.Join(s.audit.Lines(), "\n")
	if !strings.Contains(audit, `"identity":"system:serviceaccount:triage-system:triage-viewer"`) || !strings.Contains(audit, `"auth_method":"kube-jwks"`) {
		t.Errorf("audit lacks the ServiceAccount identity and method:\n%s", audit)
	}
	if strings.Contains(audit, viewer) {
		t.Error("a token reached the audit log")
	}

	// Explain shows the mode and the caller's tier role.
	resp, err := triagev1.NewExplainServiceClient(dial(t, s.addr, nil, viewer)).Explain(testCtx(t), &triagev1.ExplainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if a := resp.GetAuth(); !strings.Contains(strings.Join(a.GetModes(), ","), "kube-jwks") || strings.Join(a.GetCaller().GetRoles(), ",") != "viewer" {
		t.Errorf("explain auth: modes %v caller %+v", a.GetModes(), a.GetCaller())
	}

	// The API server is away: keys already fetched keep working; a sidecar
	// that has none says Unavailable (retry), not Unauthenticated.
	iss.down.Store(true)
	if err := explain(viewer); err != nil {
		t.Errorf("known key while the API server is down: %v", err)
	}
	cold := startServer(t, newPKI(t), jwksOnly)
	_, err = triagev1.NewExplainServiceClient(dial(t, cold.addr, nil, viewer)).Explain(testCtx(t), &triagev1.ExplainRequest{})
	if code(err) != codes.Unavailable {
		t.Errorf("no keys and the API server down: %v; want Unavailable", err)
	}
}
