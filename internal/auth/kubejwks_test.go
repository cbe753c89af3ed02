package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const testIssuer = "https://kubernetes.default.svc.cluster.local"

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testKeys are signing keys shared by the tests (RSA generation is slow).
type testKeys struct {
	rsa1, rsa2, rsaOther *rsa.PrivateKey
	ec1                  *ecdsa.PrivateKey
}

var (
	keysOnce sync.Once
	keysVal  testKeys
)

func getTestKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		gen := func() *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			return k
		}
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		keysVal = testKeys{rsa1: gen(), rsa2: gen(), rsaOther: gen(), ec1: ec}
	})
	return keysVal
}

// fakeAPIServer serves discovery and the key set like kube-apiserver.
type fakeAPIServer struct {
	srv *httptest.Server

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	status    int    // non-zero: answer the key set with this status
	rawJWKS   []byte // non-nil: serve this as the key set
	issuer    string
	jwksURI   string
	gate      chan struct{} // non-nil: key set requests wait for it
	authSeen  []string
	discovery atomic.Int32
	jwks      atomic.Int32
}

func newFakeAPIServer(t testing.TB, keys ...jose.JSONWebKey) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{keys: keys, issuer: testIssuer}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+discoveryPath, func(w http.ResponseWriter, r *http.Request) {
		f.discovery.Add(1)
		f.mu.Lock()
		doc := map[string]any{"issuer": f.issuer, "jwks_uri": f.jwksURI, "id_token_signing_alg_values_supported": []string{"RS256"}}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("GET "+jwksPath, func(w http.ResponseWriter, r *http.Request) {
		// kube-apiserver answers 406 unless the key set's type is accepted.
		if !strings.Contains(r.Header.Get("Accept"), "application/jwk-set+json") {
			http.Error(w, "not acceptable", http.StatusNotAcceptable)
			return
		}
		f.jwks.Add(1)
		f.mu.Lock()
		f.authSeen = append(f.authSeen, r.Header.Get("Authorization"))
		gate, status, raw := f.gate, f.status, f.rawJWKS
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), f.keys...)}
		f.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if status != 0 {
			http.Error(w, "nope", status)
			return
		}
		if raw != nil {
			_, _ = w.Write(raw)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(set)
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // untrusted-CA handshakes are expected
	f.srv.StartTLS()
	f.jwksURI = "https://elsewhere.invalid/keys"
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) setKeys(keys ...jose.JSONWebKey) {
	f.mu.Lock()
	f.keys = keys
	f.mu.Unlock()
}

func (f *fakeAPIServer) setStatus(code int) {
	f.mu.Lock()
	f.status = code
	f.mu.Unlock()
}

func pubJWK(t testing.TB, key any, kid string) jose.JSONWebKey {
	t.Helper()
	var pub any
	alg := ""
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pub, alg = &k.PublicKey, string(jose.RS256)
	case *ecdsa.PrivateKey:
		pub, alg = &k.PublicKey, string(jose.ES256)
	default:
		t.Fatalf("unknown key type %T", key)
	}
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// sign signs claims with key; kid "" leaves the kid out.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	t.Helper()
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// saClaims are the claims of a projected token of shop/triage-viewer bound
// to pod web-0, issued at now.
func saClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"sub": "system:serviceaccount:shop:triage-viewer",
		"aud": []string{DefaultAudience},
		"exp": now.Add(10 * time.Minute).Unix(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"jti": "5b0a5c1e-0000-4000-8000-000000000001",
		"kubernetes.io": map[string]any{
			"namespace":      "shop",
			"serviceaccount": map[string]any{"name": "triage-viewer", "uid": "sa-uid-1"},
			"pod":            map[string]any{"name": "web-0", "uid": "pod-uid-1"},
			"node":           map[string]any{"name": "node-a", "uid": "node-uid-1"},
		},
	}
}

func with(c map[string]any, key string, val any) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	if val == nil {
		delete(out, key)
	} else {
		out[key] = val
	}
	return out
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// newTestVerifier returns a verifier against f, with a clock.
func newTestVerifier(t testing.TB, f *fakeAPIServer, mod func(*JWKSConfig)) (*JWKSVerifier, *testClock) {
	t.Helper()
	clk := newTestClock()
	cfg := JWKSConfig{APIServer: f.srv.URL, HTTPClient: f.srv.Client(), Now: clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewJWKSVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, clk
}

func TestJWKSVerify(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"), pubJWK(t, k.ec1, "ec-1"))
	v, clk := newTestVerifier(t, f, nil)
	now := clk.Now()
	good := saClaims(now)
	valid := sign(t, jose.RS256, k.rsa1, "rsa-1", good)
	parts := strings.Split(valid, ".")

	pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	otherPayload, _ := json.Marshal(with(good, "sub", "system:serviceaccount:shop:triage-operator"))
	sig := []byte(parts[2])
	if sig[10] = 'A'; parts[2][10] == 'A' {
		sig[10] = 'B'
	}

	tests := []struct {
		name    string
		token   string
		reason  TokenReason // "" means accepted
		msgHave []string
	}{
		{name: "valid RS256", token: valid},
		{name: "valid ES256", token: sign(t, jose.ES256, k.ec1, "ec-1", good)},
		{name: "valid without kid", token: sign(t, jose.RS256, k.rsa1, "", good)},
		{name: "valid, aud as string", token: sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "aud", DefaultAudience))},
		{name: "expired within leeway", token: sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "exp", now.Add(-30*time.Second).Unix()))},
		{
			name:    "API server audience",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "aud", []string{testIssuer, "https://kubernetes.default.svc"})),
			reason:  ReasonAudience,
			msgHave: []string{`token audience ["https://kubernetes.default.svc.cluster.local" "https://kubernetes.default.svc"] is not triage's (triage.dev)`, "looks like a token for the API server", "kubectl create token triage-viewer -n shop --audience triage.dev"},
		},
		{
			name:    "triage's and the API server's audience",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "aud", []string{DefaultAudience, testIssuer})),
			reason:  ReasonAudience,
			msgHave: []string{"includes the API server's as well as triage's", "--audience triage.dev"},
		},
		{
			name:    "other audience",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "aud", []string{"vault"})),
			reason:  ReasonAudience,
			msgHave: []string{`["vault"]`, "--audience triage.dev"},
		},
		{
			name:    "expired",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "exp", now.Add(-5*time.Minute).Unix())),
			reason:  ReasonExpired,
			msgHave: []string{"expired at 2026-03-01T11:55:00Z (5m0s ago)", "kubectl create token"},
		},
		{
			name:    "not yet valid",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "nbf", now.Add(5*time.Minute).Unix())),
			reason:  ReasonNotYetValid,
			msgHave: []string{"not valid before 2026-03-01T12:05:00Z", "clocks"},
		},
		{
			name:   "issued in the future",
			token:  sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "iat", now.Add(5*time.Minute).Unix())),
			reason: ReasonNotYetValid,
		},
		{
			name:    "no exp",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "exp", nil)),
			reason:  ReasonClaims,
			msgHave: []string{"no expiry"},
		},
		{
			name:    "wrong issuer",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "iss", "https://other-cluster.example")),
			reason:  ReasonIssuer,
			msgHave: []string{`"https://other-cluster.example"`, testIssuer},
		},
		{
			name:    "legacy secret-based token",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", map[string]any{"iss": legacyIssuer, "sub": "system:serviceaccount:shop:default", "kubernetes.io/serviceaccount/namespace": "shop"}),
			reason:  ReasonLegacy,
			msgHave: []string{"legacy", "projected", "kubectl create token"},
		},
		{
			name:    "missing kubernetes.io claim",
			token:   sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "kubernetes.io", nil)),
			reason:  ReasonClaims,
			msgHave: []string{`no "kubernetes.io" claim`},
		},
		{
			name:   "kubernetes.io claim without serviceaccount uid",
			token:  sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "kubernetes.io", map[string]any{"namespace": "shop", "serviceaccount": map[string]any{"name": "triage-viewer"}})),
			reason: ReasonClaims,
		},
		{
			name:   "namespace with a colon",
			token:  sign(t, jose.RS256, k.rsa1, "rsa-1", with(with(good, "sub", "system:serviceaccount:a:b:triage-viewer"), "kubernetes.io", map[string]any{"namespace": "a:b", "serviceaccount": map[string]any{"name": "triage-viewer", "uid": "u"}})),
			reason: ReasonClaims,
		},
		{
			name:   "subject does not match the ServiceAccount",
			token:  sign(t, jose.RS256, k.rsa1, "rsa-1", with(good, "sub", "system:serviceaccount:shop:triage-operator")),
			reason: ReasonClaims,
		},
		{
			name:   "tampered payload",
			token:  parts[0] + "." + base64.RawURLEncoding.EncodeToString(otherPayload) + "." + parts[2],
			reason: ReasonSignature,
		},
		{
			name:   "tampered signature",
			token:  parts[0] + "." + parts[1] + "." + string(sig),
			reason: ReasonSignature,
		},
		{
			name:   "signed by a foreign key with a known kid",
			token:  sign(t, jose.RS256, k.rsaOther, "rsa-1", good),
			reason: ReasonSignature,
		},
		{
			name:    "alg none",
			token:   b64(`{"alg":"none","kid":"rsa-1"}`) + "." + parts[1] + ".",
			reason:  ReasonAlgorithm,
			msgHave: []string{`algorithm "none"`, "RS256 and ES256"},
		},
		{
			name:    "HS256 with the public key as secret",
			token:   sign(t, jose.HS256, pubPEM, "rsa-1", good),
			reason:  ReasonAlgorithm,
			msgHave: []string{`"HS256"`},
		},
		{
			name:   "RS256 header on the EC key's kid",
			token:  b64(`{"alg":"RS256","kid":"ec-1"}`) + "." + parts[1] + "." + parts[2],
			reason: ReasonUnknownKey,
		},
		{name: "empty", token: "", reason: ReasonMalformed, msgHave: []string{"no token"}},
		{name: "garbage", token: "not-a-jwt", reason: ReasonMalformed},
		{name: "two parts", token: parts[0] + "." + parts[1], reason: ReasonMalformed},
		{name: "JSON serialization", token: `{"payload":"` + parts[1] + `","signatures":[]}`, reason: ReasonMalformed},
		{name: "huge", token: strings.Repeat("a", maxTokenBytes+1), reason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if id.Username != "system:serviceaccount:shop:triage-viewer" || id.Namespace != "shop" || id.ServiceAccount != "triage-viewer" || id.ServiceAccountUID != "sa-uid-1" {
					t.Errorf("identity = %+v", id)
				}
				if id.BoundPod != "web-0" || id.BoundPodUID != "pod-uid-1" || id.BoundNode != "node-a" {
					t.Errorf("bound objects = %q %q %q", id.BoundPod, id.BoundPodUID, id.BoundNode)
				}
				wantGroups := []string{"system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"}
				if fmt.Sprint(id.Groups) != fmt.Sprint(wantGroups) {
					t.Errorf("groups = %v, want %v", id.Groups, wantGroups)
				}
				if id.Extra[extraPodName][0] != "web-0" || id.Extra[extraCredentialID][0] != "JTI=5b0a5c1e-0000-4000-8000-000000000001" {
					t.Errorf("extra = %v", id.Extra)
				}
				if id.Expiry.IsZero() || id.Expiry.After(now.Add(10*time.Minute)) || len(id.Audience) == 0 || id.Audience[0] != DefaultAudience {
					t.Errorf("expiry %v audience %v", id.Expiry, id.Audience)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token as %+v; want reason %s", id, tt.reason)
			}
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is %T, not *TokenError", err, err)
			}
			if te.Reason != tt.reason {
				t.Errorf("reason = %s, want %s (%v)", te.Reason, tt.reason, err)
			}
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrKeySetUnavailable) {
				t.Errorf("errors.Is(ErrInvalidToken) = %v, errors.Is(ErrKeySetUnavailable) = %v", errors.Is(err, ErrInvalidToken), errors.Is(err, ErrKeySetUnavailable))
			}
			for _, s := range tt.msgHave {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
			for _, part := range strings.Split(tt.token, ".") {
				if len(part) > 16 && strings.Contains(err.Error(), part) {
					t.Errorf("message echoes the token: %q", err)
				}
			}
		})
	}
	if n := f.jwks.Load(); n != 1 {
		t.Errorf("key set fetched %d times, want 1", n)
	}
	if n := f.discovery.Load(); n != 1 {
		t.Errorf("discovery fetched %d times, want 1", n)
	}
}

func TestJWKSVerifierRotation(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	v, clk := newTestVerifier(t, f, nil)
	ctx := context.Background()

	if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))); err != nil {
		t.Fatal(err)
	}
	f.setKeys(pubJWK(t, k.rsa1, "rsa-1"), pubJWK(t, k.rsa2, "rsa-2"))
	clk.Advance(time.Second)
	rotated := sign(t, jose.RS256, k.rsa2, "rsa-2", saClaims(clk.Now()))

	// Within MinRefreshInterval of the first fetch: no refetch, unknown key.
	_, err := v.Verify(ctx, rotated)
	var te *TokenError
	if !errors.As(err, &te) || te.Reason != ReasonUnknownKey || !strings.Contains(err.Error(), `key "rsa-2"`) {
		t.Fatalf("Verify right after a fetch = %v, want unknown key rsa-2", err)
	}
	if n := f.jwks.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := v.Verify(ctx, rotated); err != nil {
		t.Fatalf("Verify after rotation: %v", err)
	}
	if n := f.jwks.Load(); n != 2 {
		t.Fatalf("fetches = %d, want exactly one refetch (2)", n)
	}
	// Known kids need no fetch; the old key keeps working until removed.
	for range 3 {
		if _, err := v.Verify(ctx, rotated); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.jwks.Load(); n != 2 {
		t.Fatalf("fetches = %d after known kids, want 2", n)
	}
	// The old key is removed: after a refetch its tokens are refused.
	f.setKeys(pubJWK(t, k.rsa2, "rsa-2"))
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa2, "rsa-3", saClaims(clk.Now()))); err == nil {
		t.Fatal("unknown kid rsa-3 accepted")
	}
	if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))); !errors.As(err, &te) || te.Reason != ReasonUnknownKey {
		t.Fatalf("token of a removed key = %v, want unknown key", err)
	}
}

func TestJWKSVerifierUnknownKidFlood(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	v, clk := newTestVerifier(t, f, nil)
	ctx := context.Background()

	// 600 bogus kids over 60 simulated seconds, concurrently in bursts.
	const seconds, perSecond = 60, 10
	for s := range seconds {
		var wg sync.WaitGroup
		for i := range perSecond {
			tok := sign(t, jose.RS256, k.rsaOther, fmt.Sprintf("bogus-%d-%d", s, i), saClaims(clk.Now()))
			wg.Go(func() {
				if _, err := v.Verify(ctx, tok); err == nil {
					t.Error("bogus kid accepted")
				}
			})
		}
		wg.Wait()
		clk.Advance(time.Second)
	}
	maxFetches := int32(1 + seconds/int(DefaultMinRefreshInterval/time.Second))
	if n := f.jwks.Load(); n < 2 || n > maxFetches {
		t.Errorf("key set fetched %d times for %d bogus tokens over %ds, want 2..%d", n, seconds*perSecond, seconds, maxFetches)
	}
	if int32(v.Fetches()) != f.jwks.Load() {
		t.Errorf("Fetches() = %d, server saw %d", v.Fetches(), f.jwks.Load())
	}
}

func TestJWKSVerifierSharedFetch(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	f.gate = make(chan struct{})
	v, clk := newTestVerifier(t, f, nil)
	tok := sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))

	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	// Wait for the one fetch to reach the server, give the others time to
	// queue behind it, then let it finish.
	deadline := time.Now().Add(5 * time.Second)
	for f.jwks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(f.gate)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	if got := f.jwks.Load(); got != 1 {
		t.Errorf("%d concurrent Verify calls made %d fetches, want 1", n, got)
	}

	// A waiter whose context ends stops waiting, with ErrKeySetUnavailable.
	f2 := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	f2.gate = make(chan struct{})
	defer close(f2.gate)
	v2, _ := newTestVerifier(t, f2, func(c *JWKSConfig) { c.FetchTimeout = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	go func() { _, _ = v2.Verify(context.Background(), tok) }()
	for f2.jwks.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := v2.Verify(ctx, tok); !errors.Is(err, ErrKeySetUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter with expired context: %v, want ErrKeySetUnavailable and DeadlineExceeded", err)
	}
}

func TestJWKSVerifierKeySetUnavailable(t *testing.T) {
	k := getTestKeys(t)
	big := `{"keys":[` + strings.Repeat(`{"kty":"oct","k":"AAAA"},`, 100) + `{}]}`
	tests := []struct {
		name    string
		setup   func(f *fakeAPIServer)
		cfg     func(c *JWKSConfig)
		msgHave []string
	}{
		{name: "server down", setup: func(f *fakeAPIServer) { f.srv.Close() }, msgHave: []string{"/.well-known/openid-configuration", "reach the API server"}},
		{name: "forbidden", setup: func(f *fakeAPIServer) { f.setStatus(http.StatusForbidden) }, msgHave: []string{"/openid/v1/jwks", "403", "system:service-account-issuer-discovery"}},
		{name: "server error", setup: func(f *fakeAPIServer) { f.setStatus(http.StatusInternalServerError) }, msgHave: []string{"500"}},
		{name: "larger than the limit", setup: func(f *fakeAPIServer) { f.rawJWKS = []byte(big) }, cfg: func(c *JWKSConfig) { c.MaxKeySetBytes = 1000 }, msgHave: []string{"larger than 1000 bytes"}},
		{name: "not JSON", setup: func(f *fakeAPIServer) { f.rawJWKS = []byte("<html>") }, msgHave: []string{"not a JSON Web Key Set"}},
		{name: "no usable key", setup: func(f *fakeAPIServer) { f.rawJWKS = []byte(`{"keys":[{"kty":"OKP","crv":"X448","x":"AAAA"}]}`) }, msgHave: []string{"no usable RS256 or ES256"}},
		{name: "private key", setup: func(f *fakeAPIServer) {
			b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.rsa1, KeyID: "rsa-1"}}})
			f.rawJWKS = b
		}, msgHave: []string{"private key"}},
		{name: "token file unreadable", cfg: func(c *JWKSConfig) { c.TokenFile = filepath.Join(t.TempDir(), "missing") }, msgHave: []string{"automountServiceAccountToken"}},
		{name: "discovery not a document", cfg: func(c *JWKSConfig) { c.APIServer += "/nothing" }, msgHave: []string{"404"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
			if tt.setup != nil {
				tt.setup(f)
			}
			v, clk := newTestVerifier(t, f, tt.cfg)
			tok := sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))
			_, err := v.Verify(context.Background(), tok)
			if !errors.Is(err, ErrKeySetUnavailable) {
				t.Fatalf("Verify = %v, want ErrKeySetUnavailable", err)
			}
			if errors.Is(err, ErrInvalidToken) {
				t.Errorf("%v is also ErrInvalidToken", err)
			}
			for _, s := range tt.msgHave {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
			// A second call within MinRefreshInterval reuses the error.
			before := f.jwks.Load() + f.discovery.Load()
			if _, err2 := v.Verify(context.Background(), tok); !errors.Is(err2, ErrKeySetUnavailable) {
				t.Errorf("second Verify = %v", err2)
			}
			if after := f.jwks.Load() + f.discovery.Load(); after != before {
				t.Errorf("second Verify within the refresh interval made %d requests", after-before)
			}
		})
	}
}

func TestJWKSVerifierKeepsKeysWhenRefreshFails(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	v, clk := newTestVerifier(t, f, nil)
	ctx := context.Background()
	if err := v.Prefetch(ctx); err != nil {
		t.Fatal(err)
	}
	f.setStatus(http.StatusServiceUnavailable)
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa2, "rsa-2", saClaims(clk.Now()))); !errors.Is(err, ErrKeySetUnavailable) {
		t.Fatalf("unknown kid with the API server failing = %v, want ErrKeySetUnavailable", err)
	}
	if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))); err != nil {
		t.Fatalf("known kid after a failed refresh: %v", err)
	}
}

func TestJWKSVerifierTokenFileAndIssuer(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, clk := newTestVerifier(t, f, func(c *JWKSConfig) {
		c.TokenFile = tokenFile
		c.Issuer = testIssuer
		c.Audiences = []string{"other", DefaultAudience}
	})
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("rotated-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	f.setKeys(pubJWK(t, k.rsa1, "rsa-1"), pubJWK(t, k.rsa2, "rsa-2"))
	if _, err := v.Verify(ctx, sign(t, jose.RS256, k.rsa2, "rsa-2", saClaims(clk.Now()))); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	seen := fmt.Sprint(f.authSeen)
	f.mu.Unlock()
	if seen != "[Bearer first-token Bearer rotated-token]" {
		t.Errorf("Authorization headers = %s, want the token file re-read per fetch", seen)
	}
	if n := f.discovery.Load(); n != 0 {
		t.Errorf("discovery fetched %d times with a configured issuer", n)
	}
}

func TestJWKSVerifierCAFile(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := newTestClock()
	v, err := NewJWKSVerifier(JWKSConfig{APIServer: f.srv.URL, CAFile: caFile, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))); err != nil {
		t.Fatalf("Verify with the CA file: %v", err)
	}

	// Without the CA the server is not trusted.
	other, err := NewJWKSVerifier(JWKSConfig{APIServer: f.srv.URL, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Prefetch(context.Background()); !errors.Is(err, ErrKeySetUnavailable) || !strings.Contains(err.Error(), "CA") {
		t.Errorf("Prefetch without the CA = %v, want an untrusted-certificate ErrKeySetUnavailable", err)
	}
}

func TestNewJWKSVerifierErrors(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  JWKSConfig
		want string
	}{
		{"no URL", JWKSConfig{}, "no API server URL"},
		{"not a URL", JWKSConfig{APIServer: "10.0.0.1"}, "not an http(s) URL"},
		{"plain http", JWKSConfig{APIServer: "http://10.0.0.1"}, "use https"},
		{"query", JWKSConfig{APIServer: "https://10.0.0.1/?x=1"}, "without user, query"},
		{"empty audience", JWKSConfig{APIServer: "https://10.0.0.1", Audiences: []string{""}}, "audience is empty"},
		{"missing CA", JWKSConfig{APIServer: "https://10.0.0.1", CAFile: "/nonexistent/ca.crt"}, "read API server CA"},
		{"CA not PEM", JWKSConfig{APIServer: "https://10.0.0.1", CAFile: notPEM}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewJWKSVerifier(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewJWKSVerifier = %v, want %q", err, tt.want)
			}
		})
	}
	v, err := NewJWKSVerifier(JWKSConfig{APIServer: "http://127.0.0.1:8001/"})
	if err != nil {
		t.Fatalf("loopback http: %v", err)
	}
	if got := v.Audiences(); len(got) != 1 || got[0] != DefaultAudience {
		t.Errorf("default audiences = %v", got)
	}
}

// FuzzJWKSVerify feeds arbitrary strings as tokens: Verify must not panic,
// and must accept nothing but the one genuinely signed token.
func FuzzJWKSVerify(f *testing.F) {
	k := getTestKeys(f)
	srv := newFakeAPIServer(f, pubJWK(f, k.rsa1, "rsa-1"), pubJWK(f, k.ec1, "ec-1"))
	v, clk := newTestVerifier(f, srv, nil)
	good := sign(f, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))
	goodEC := sign(f, jose.ES256, k.ec1, "ec-1", saClaims(clk.Now()))
	parts := strings.Split(good, ".")
	for _, s := range []string{
		good, goodEC, "", ".", "..", "a.b.c",
		parts[0] + "." + parts[1] + ".",
		b64(`{"alg":"none"}`) + "." + parts[1] + ".",
		b64(`{"alg":"HS256","kid":"rsa-1"}`) + "." + parts[1] + "." + parts[2],
		b64(`{"alg":"ES256","kid":"rsa-1"}`) + "." + parts[1] + "." + parts[2],
		b64(`{"alg":"RS256","crit":["b64"],"b64":false}`) + "." + parts[1] + "." + parts[2],
		`{"payload":"e30","signatures":[{"protected":"` + parts[0] + `","signature":"` + parts[2] + `"}]}`,
		sign(f, jose.RS256, k.rsaOther, "rsa-1", saClaims(clk.Now())),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(context.Background(), tok)
		if err == nil {
			if !sameJWS(tok, good) && !sameJWS(tok, goodEC) {
				t.Fatalf("accepted a token that was not signed by the test: %q as %+v", tok, id)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrKeySetUnavailable) {
			t.Fatalf("error %v is neither ErrInvalidToken nor ErrKeySetUnavailable", err)
		}
	})
}

// sameJWS reports whether compact JWS a decodes to the same header, payload
// and signature bytes as b (base64url is lenient about the last
// character's unused bits, so two strings can carry one signed token).
func sameJWS(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	if len(pa) != 3 || len(pb) != 3 {
		return false
	}
	for i := range pa {
		da, errA := base64.RawURLEncoding.DecodeString(pa[i])
		db, errB := base64.RawURLEncoding.DecodeString(pb[i])
		if errA != nil || errB != nil || string(da) != string(db) {
			return false
		}
	}
	return true
}

// TestJWKSVerifiedCache: a verified token is taken on trust for at most a
// minute and never past its expiry; the key set is fetched again once it is
// older than maxKeySetAge, so a key the cluster removed stops being honoured,
// while an old key set keeps working when the API server is away.
func TestJWKSVerifiedCache(t *testing.T) {
	k := getTestKeys(t)
	f := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	v, clk := newTestVerifier(t, f, nil)
	ctx := t.Context()

	short := sign(t, jose.RS256, k.rsa1, "rsa-1", with(saClaims(clk.Now()), "exp", clk.Now().Add(30*time.Second).Unix()))
	if _, err := v.Verify(ctx, short); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // past exp and the leeway
	var te *TokenError
	if _, err := v.Verify(ctx, short); !errors.As(err, &te) || te.Reason != ReasonExpired {
		t.Errorf("expired token after it was cached: %v; want ReasonExpired", err)
	}

	tok := sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	f.setKeys(pubJWK(t, k.rsa2, "rsa-2")) // rsa-1 rotated out
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("within the cache's minute: %v", err)
	}
	// The check above passes without a cache too (the loaded key set still
	// holds rsa-1); on a second verifier the key set is fetched again
	// without rsa-1 within the minute, and only the cache accepts tok.
	f2 := newFakeAPIServer(t, pubJWK(t, k.rsa1, "rsa-1"))
	v2, clk2 := newTestVerifier(t, f2, nil)
	cachedTok := sign(t, jose.RS256, k.rsa1, "rsa-1", saClaims(clk2.Now()))
	if _, err := v2.Verify(ctx, cachedTok); err != nil {
		t.Fatal(err)
	}
	f2.setKeys(pubJWK(t, k.rsa2, "rsa-2"))
	clk2.Advance(DefaultMinRefreshInterval)
	if _, err := v2.Verify(ctx, sign(t, jose.RS256, k.rsa2, "rsa-2", saClaims(clk2.Now()))); err != nil || f2.jwks.Load() != 2 {
		t.Fatalf("refetch for rsa-2: %v, %d fetches; want the key set fetched again", err, f2.jwks.Load())
	}
	if _, err := v2.Verify(ctx, cachedTok); err != nil {
		t.Errorf("within the cache's minute, after a refetch without its key: %v", err)
	}
	fetches := v.Fetches()
	clk.Advance(maxKeySetAge)
	if _, err := v.Verify(ctx, tok); !errors.As(err, &te) || te.Reason != ReasonUnknownKey {
		t.Errorf("a token of a rotated-out key once the key set is old: %v; want ReasonUnknownKey", err)
	}
	if v.Fetches() != fetches+1 {
		t.Errorf("an old key set was fetched %d times, want once", v.Fetches()-fetches)
	}
	// While the API server cannot answer, an old key set keeps working.
	good := sign(t, jose.RS256, k.rsa2, "rsa-2", saClaims(clk.Now()))
	f.mu.Lock()
	f.status = http.StatusServiceUnavailable
	f.mu.Unlock()
	clk.Advance(maxKeySetAge)
	if _, err := v.Verify(ctx, good); err != nil {
		t.Errorf("an old key set while the API server is down: %v", err)
	}
}

// BenchmarkJWKSVerify is the per-call cost of checking a ServiceAccount
// token offline (keys fetched): "uncached" is a token's first call (the
// signature checked), "cached" every later call with the same token, what
// a client's calls to a --kube-auth=jwks sidecar mostly pay.
func BenchmarkJWKSVerify(b *testing.B) {
	k := getTestKeys(b)
	srv := newFakeAPIServer(b, pubJWK(b, k.rsa1, "rsa-1"), pubJWK(b, k.ec1, "ec-1"))
	v, clk := newTestVerifier(b, srv, nil)
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(b, jose.RS256, k.rsa1, "rsa-1", saClaims(clk.Now()))},
		{"ES256", sign(b, jose.ES256, k.ec1, "ec-1", saClaims(clk.Now()))},
	} {
		b.Run(tc.name+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.verify(b.Context(), tc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/cached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
