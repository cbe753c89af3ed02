package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Paths the API server serves its service-account issuer discovery at.
const (
	discoveryPath = "/.well-known/openid-configuration"
	jwksPath      = "/openid/v1/jwks"
)

// legacyIssuer is the issuer of legacy, Secret-based ServiceAccount tokens.
const legacyIssuer = "kubernetes/serviceaccount"

// kubeLeeway is the clock skew Kubernetes itself allows on exp, nbf and iat.
const kubeLeeway = 60 * time.Second

// maxTokenBytes bounds a token; kube-apiserver tokens are about 1 KiB.
const maxTokenBytes = 16 << 10

// maxDiscoveryBytes bounds the discovery document.
const maxDiscoveryBytes = 64 << 10

// Defaults of JWKSConfig.
const (
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxKeySetBytes     = 1 << 20
)

// kubeAlgorithms are the only algorithms accepted: what kube-apiserver signs
// ServiceAccount tokens with (RSA or P-256 keys).
var kubeAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// ErrKeySetUnavailable is wrapped by Verify's error when the cluster's key
// set could not be fetched (or refreshed for an unknown key): the token may
// be fine, the verifier cannot tell. Map it to gRPC Unavailable.
var ErrKeySetUnavailable = errors.New("the cluster's ServiceAccount token keys are unavailable")

// ErrInvalidToken is wrapped by every *TokenError: the token was read and
// refused.
var ErrInvalidToken = errors.New("invalid Kubernetes ServiceAccount token")

// TokenReason says why a token was refused.
type TokenReason string

// The reasons a token is refused.
const (
	ReasonMalformed   TokenReason = "malformed"     // not a compact JWS / JWT
	ReasonAlgorithm   TokenReason = "algorithm"     // alg is not RS256 or ES256
	ReasonUnknownKey  TokenReason = "unknown-key"   // kid not in the cluster's key set
	ReasonSignature   TokenReason = "signature"     // signature does not verify
	ReasonLegacy      TokenReason = "legacy"        // Secret-based token
	ReasonIssuer      TokenReason = "issuer"        // iss is not the cluster's
	ReasonAudience    TokenReason = "audience"      // aud is not triage's
	ReasonExpired     TokenReason = "expired"       // exp is past
	ReasonNotYetValid TokenReason = "not-yet-valid" // nbf or iat is in the future
	ReasonClaims      TokenReason = "claims"        // kubernetes.io claims missing or bad
	ReasonReview      TokenReason = "review"        // TokenReview refused it
)

// TokenError is a refused token. Its message says what is wrong and what to
// do; it never contains the token. errors.Is(err, ErrInvalidToken) holds.
type TokenError struct {
	// Reason classifies the refusal.
	Reason TokenReason
	// Msg is the full message.
	Msg string
	// Err is the underlying error, if any.
	Err error
}

func (e *TokenError) Error() string { return e.Msg }

// Unwrap returns ErrInvalidToken and the underlying error.
func (e *TokenError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.Err}
}

func tokenErr(reason TokenReason, err error, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Msg: "kubernetes token: " + fmt.Sprintf(format, args...), Err: err}
}

// JWKSConfig configures a JWKSVerifier.
type JWKSConfig struct {
	// APIServer is the API server's URL, e.g. https://10.0.0.1:443. Its
	// discovery document and key set are fetched from it. https is
	// required unless the host is a loopback address.
	APIServer string
	// CAFile is the PEM bundle the API server's certificate chains to,
	// normally /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; ""
	// uses the system roots. Ignored when HTTPClient is set.
	CAFile string
	// TokenFile holds the sidecar's own token for the API server; it is
	// re-read on every fetch because the kubelet rotates it. "" fetches
	// anonymously.
	TokenFile string
	// Audiences are triage's audiences; a token must name one. Default
	// [DefaultAudience].
	Audiences []string
	// Issuer is the cluster's token issuer (--service-account-issuer). ""
	// discovers it from the API server's /.well-known/openid-configuration.
	Issuer string
	// HTTPClient fetches the documents; nil builds one from CAFile.
	HTTPClient *http.Client
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// MinRefreshInterval is the least time between two fetches of the key
	// set, so tokens naming unknown keys cannot hammer the API server.
	// Default DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one fetch (discovery and key set). Default
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MaxKeySetBytes bounds the key set document. Default
	// DefaultMaxKeySetBytes.
	MaxKeySetBytes int64
}

// JWKSVerifier verifies projected ServiceAccount tokens offline, against the
// public keys the API server publishes at /openid/v1/jwks. The keys are
// fetched on first use and again, at most once per MinRefreshInterval, when
// a token names a key that is not in the cached set (key rotation). There is
// no background goroutine. Concurrent Verify calls share one fetch. A fetch
// that fails keeps the previous keys.
//
// Offline verification cannot see revocation: a token bound to a pod stays
// valid until it expires even after the pod is deleted. Keep tokens short
// (kubectl create token --duration 10m) or use KubeReviewer.
//
// Reading the key set needs the sidecar's ServiceAccount to be allowed
// "get" on the non-resource URLs /.well-known/openid-configuration and
// /openid/v1/jwks, which the default ClusterRoleBinding
// system:service-account-issuer-discovery grants to every ServiceAccount.
type JWKSVerifier struct {
	cfg       JWKSConfig
	base      *url.URL
	jwksURL   string
	client    *http.Client
	now       func() time.Time
	audiences []string

	mu          sync.Mutex
	keys        *keySet    // nil until a fetch succeeds
	issuer      string     // configured or discovered
	lastAttempt time.Time  // start of the last fetch
	lastErr     error      // error of the last fetch, nil if it succeeded
	inflight    *fetchCall // the fetch in progress, if any
	fetches     int        // fetches started, for tests and metrics

	// verified remembers tokens that passed, by SHA-256, for at most
	// verifiedTTL and never past their expiry: checking a signature costs
	// ~40 µs (RS256) to ~60 µs (ES256), about half an Explain, and a client
	// sends the same token on every call.
	verified *ttlCache[KubeIdentity]
}

// verifiedTTL bounds how long a verified token is taken on trust: a key the
// cluster rotates out stops being honoured within it.
const (
	verifiedTTL     = time.Minute
	verifiedEntries = 1024
)

// maxKeySetAge is how long a fetched key set is used before the next token
// fetches it again (at most once per MinRefreshInterval; while a fetch
// fails, the old keys keep working): a key the cluster removes, e.g. after
// a compromise, stops being honoured within it.
const maxKeySetAge = 10 * time.Minute

// keySet is an immutable set of verification keys.
type keySet struct {
	keys    []jose.JSONWebKey
	fetched time.Time
}

func (s *keySet) hasKID(kid string) bool {
	return slices.ContainsFunc(s.keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
}

// fetchCall is one fetch that concurrent callers wait for.
type fetchCall struct {
	done chan struct{}
	err  error
}

// NewJWKSVerifier checks cfg and returns a verifier; it fetches nothing.
func NewJWKSVerifier(cfg JWKSConfig) (*JWKSVerifier, error) {
	base, err := parseAPIServerURL(cfg.APIServer)
	if err != nil {
		return nil, fmt.Errorf("kubernetes JWKS: %w", err)
	}
	v := &JWKSVerifier{cfg: cfg, base: base, issuer: cfg.Issuer, now: cfg.Now, verified: newTTLCache[KubeIdentity](verifiedEntries)}
	v.jwksURL = base.String() + jwksPath
	if v.now == nil {
		v.now = time.Now
	}
	if len(cfg.Audiences) == 0 {
		v.audiences = []string{DefaultAudience}
	} else {
		for _, a := range cfg.Audiences {
			if a == "" {
				return nil, errors.New("kubernetes JWKS: an audience is empty; use e.g. " + DefaultAudience)
			}
		}
		v.audiences = slices.Clone(cfg.Audiences)
	}
	if v.cfg.MinRefreshInterval <= 0 {
		v.cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if v.cfg.FetchTimeout <= 0 {
		v.cfg.FetchTimeout = DefaultFetchTimeout
	}
	if v.cfg.MaxKeySetBytes <= 0 {
		v.cfg.MaxKeySetBytes = DefaultMaxKeySetBytes
	}
	v.client = cfg.HTTPClient
	if v.client == nil {
		v.client, err = apiServerClient(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kubernetes JWKS: %w", err)
		}
	}
	return v, nil
}

// parseAPIServerURL checks an API server URL: http(s), https unless the
// host is loopback, no user, query or fragment.
func parseAPIServerURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("no API server URL; pass it (in a pod: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)")
	}
	base, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fmt.Errorf("API server %q is not an http(s) URL; pass e.g. https://10.0.0.1:443", s)
	}
	if base.Scheme == "http" && !isLoopbackHost(base.Hostname()) {
		return nil, fmt.Errorf("API server %q uses plain http to a non-loopback host; use https", s)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("API server %q must be scheme://host[:port][/path] without user, query or fragment", s)
	}
	return base, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// apiServerClient builds an HTTP client trusting caFile ("" = system roots)
// that refuses redirects, so the bearer token goes to the API server only.
func apiServerClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read API server CA: %w; in a pod it is /var/run/secrets/kubernetes.io/serviceaccount/ca.crt (automountServiceAccountToken must not be false)", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("API server CA %s holds no PEM certificate; point it at the cluster's ca.crt", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the API server answered with a redirect; triage does not follow it")
		},
	}, nil
}

// Audiences returns the audiences the verifier accepts.
func (v *JWKSVerifier) Audiences() []string { return slices.Clone(v.audiences) }

// Fetches returns how many fetches of the key set have been started.
func (v *JWKSVerifier) Fetches() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fetches
}

// Prefetch loads the key set if none is loaded yet (subject to
// MinRefreshInterval), so a readiness check can report a broken setup
// before the first call. The error wraps ErrKeySetUnavailable.
func (v *JWKSVerifier) Prefetch(ctx context.Context) error {
	_, _, err := v.keysFor(ctx, "", true)
	return err
}

// Verify checks rawToken, a projected ServiceAccount token, and returns the
// identity it proves. A refused token gives a *TokenError (errors.Is
// ErrInvalidToken); a key set that cannot be fetched gives an error wrapping
// ErrKeySetUnavailable.
func (v *JWKSVerifier) Verify(ctx context.Context, rawToken string) (KubeIdentity, error) {
	if rawToken == "" {
		return KubeIdentity{}, tokenErr(ReasonMalformed, nil, "no token; send a ServiceAccount token minted with %s", v.mintHint("", ""))
	}
	if len(rawToken) > maxTokenBytes {
		return KubeIdentity{}, tokenErr(ReasonMalformed, nil, "token is %d bytes, more than the %d a ServiceAccount token can be; send the token itself", len(rawToken), maxTokenBytes)
	}
	key := sha256.Sum256([]byte("jwks\x00" + rawToken))
	if id, ok := v.verified.get(key, v.now()); ok {
		return id.clone(), nil
	}
	id, err := v.verify(ctx, rawToken)
	if err != nil {
		return KubeIdentity{}, err
	}
	until := v.now().Add(verifiedTTL)
	if id.Expiry.Before(until) {
		until = id.Expiry
	}
	v.verified.put(key, id.clone(), until)
	return id, nil
}

// verify is Verify without the cache.
func (v *JWKSVerifier) verify(ctx context.Context, rawToken string) (KubeIdentity, error) {
	jws, err := jose.ParseSignedCompact(rawToken, kubeAlgorithms)
	if err != nil {
		if alg, ok := headerAlg(rawToken); ok && !slices.Contains(kubeAlgorithms, jose.SignatureAlgorithm(alg)) {
			return KubeIdentity{}, tokenErr(ReasonAlgorithm, err, "token is signed with algorithm %s; triage accepts only RS256 and ES256, what kube-apiserver signs ServiceAccount tokens with; mint one with %s", quoteShort(alg), v.mintHint("", ""))
		}
		return KubeIdentity{}, tokenErr(ReasonMalformed, err, "token is not a signed JWT (three base64url parts separated by dots): %v; send the ServiceAccount token printed by %s", err, v.mintHint("", ""))
	}
	if len(jws.Signatures) != 1 {
		return KubeIdentity{}, tokenErr(ReasonMalformed, nil, "token has %d signatures, not one", len(jws.Signatures))
	}
	hdr := jws.Signatures[0].Protected
	alg := jose.SignatureAlgorithm(hdr.Algorithm)
	if !slices.Contains(kubeAlgorithms, alg) {
		return KubeIdentity{}, tokenErr(ReasonAlgorithm, nil, "token is signed with algorithm %s; triage accepts only RS256 and ES256", quoteShort(hdr.Algorithm))
	}

	keys, issuer, fetchErr := v.keysFor(ctx, hdr.KeyID, false)
	if keys == nil {
		if fetchErr == nil { // not reached: no keys means a failed fetch
			fetchErr = fmt.Errorf("%w: no key set loaded from %s", ErrKeySetUnavailable, v.jwksURL)
		}
		return KubeIdentity{}, fetchErr
	}
	var candidates []jose.JSONWebKey
	for _, k := range keys.keys {
		if (hdr.KeyID == "" || k.KeyID == hdr.KeyID) && keyFits(k, alg) {
			candidates = append(candidates, k)
		}
	}
	if len(candidates) == 0 {
		if fetchErr != nil {
			return KubeIdentity{}, fetchErr
		}
		if hdr.KeyID == "" {
			return KubeIdentity{}, tokenErr(ReasonUnknownKey, nil, "token has no key id and none of the cluster's %d keys (from %s) is an %s key; it was not issued by this cluster's API server", len(keys.keys), v.jwksURL, alg)
		}
		return KubeIdentity{}, tokenErr(ReasonUnknownKey, nil, "token is signed by key %s, which is not among the cluster's %s keys (%s, fetched %s): it was not issued by this cluster's API server, or its signing key was rotated out; mint a new one with %s", quoteShort(hdr.KeyID), alg, v.jwksURL, keys.fetched.UTC().Format(time.RFC3339), v.mintHint("", ""))
	}
	var payload []byte
	for _, k := range candidates {
		if payload, err = jws.Verify(k.Key); err == nil {
			break
		}
	}
	if err != nil {
		return KubeIdentity{}, tokenErr(ReasonSignature, nil, "token signature does not verify against the cluster's key %s: the token was altered or forged; mint a new one with %s", quoteShort(hdr.KeyID), v.mintHint("", ""))
	}
	return v.checkClaims(payload, issuer)
}

// headerAlg extracts the alg of a compact JWS's header without verifying
// anything, for error messages.
func headerAlg(raw string) (string, bool) {
	h, _, ok := strings.Cut(raw, ".")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
	if err != nil {
		return "", false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &hdr) != nil || hdr.Alg == "" {
		return "", false
	}
	return hdr.Alg, true
}

// keyFits reports whether k can verify alg: the right key type and size,
// meant for signatures, and either without an alg or with this one.
func keyFits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Use != "" && k.Use != "sig" {
		return false
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == jose.RS256 && pub.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && pub.Curve == elliptic.P256()
	}
	return false
}

// kubeClaims are the claims of a projected ServiceAccount token.
type kubeClaims struct {
	jwt.Claims
	Kubernetes *kubernetesClaim `json:"kubernetes.io"`
}

// kubernetesClaim is the private "kubernetes.io" claim.
type kubernetesClaim struct {
	Namespace      string  `json:"namespace"`
	ServiceAccount *objRef `json:"serviceaccount"`
	Pod            *objRef `json:"pod"`
	Node           *objRef `json:"node"`
}

type objRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// checkClaims checks the verified payload and builds the identity.
func (v *JWKSVerifier) checkClaims(payload []byte, issuer string) (KubeIdentity, error) {
	var c kubeClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return KubeIdentity{}, tokenErr(ReasonClaims, err, "token claims are not valid JSON claims: %v; mint a new token with %s", err, v.mintHint("", ""))
	}
	if c.Issuer == legacyIssuer {
		return KubeIdentity{}, tokenErr(ReasonLegacy, nil, "token is a legacy Secret-based ServiceAccount token (issuer %q), which never expires and has no audience; triage accepts only projected tokens: mint one with %s (the TokenRequest API), or let the triage CLI mint it", legacyIssuer, v.mintHint("", ""))
	}
	if c.Issuer != issuer {
		return KubeIdentity{}, tokenErr(ReasonIssuer, nil, "token issuer %s is not this cluster's (%q): the token comes from another cluster or issuer; mint one in this cluster with %s", quoteShort(c.Issuer), issuer, v.mintHint("", ""))
	}
	k := c.Kubernetes
	if k == nil {
		return KubeIdentity{}, tokenErr(ReasonClaims, nil, "token has no \"kubernetes.io\" claim, so it names no ServiceAccount; mint a ServiceAccount token with %s", v.mintHint("", ""))
	}
	if k.ServiceAccount == nil || k.ServiceAccount.Name == "" || k.ServiceAccount.UID == "" || k.Namespace == "" {
		return KubeIdentity{}, tokenErr(ReasonClaims, nil, "token's \"kubernetes.io\" claim lacks the namespace or the serviceaccount name and uid; mint a ServiceAccount token with %s", v.mintHint("", ""))
	}
	if checkKubeName(k.Namespace) != nil || checkKubeName(k.ServiceAccount.Name) != nil {
		return KubeIdentity{}, tokenErr(ReasonClaims, nil, "token names namespace %s and ServiceAccount %s, which are not Kubernetes names", quoteShort(k.Namespace), quoteShort(k.ServiceAccount.Name))
	}
	id := serviceAccountIdentity(k.Namespace, k.ServiceAccount.Name, k.ServiceAccount.UID)
	if c.Subject != id.Username {
		return KubeIdentity{}, tokenErr(ReasonClaims, nil, "token subject %s does not match its ServiceAccount %s", quoteShort(c.Subject), id.Username)
	}
	ns, sa := k.Namespace, k.ServiceAccount.Name

	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		hint := ""
		if v.looksLikeAPIServerAudience(c.Audience, issuer) {
			hint = "this looks like a token for the API server; "
		}
		return KubeIdentity{}, tokenErr(ReasonAudience, nil, "token audience %s is not triage's (%s): %smint one with %s or let the triage CLI mint it", quoteList(c.Audience), strings.Join(v.audiences, ", "), hint, v.mintHint(sa, ns))
	}
	// A token the API server would also accept is a credential for the
	// cluster: refusing it keeps triage's tokens useless there and keeps a
	// sidecar from being handed (and logging, forwarding) one.
	if v.looksLikeAPIServerAudience(c.Audience, issuer) {
		return KubeIdentity{}, tokenErr(ReasonAudience, nil, "token audience %s includes the API server's as well as triage's: such a token is a credential for the whole cluster; mint one with triage's audience only: %s", quoteList(c.Audience), v.mintHint(sa, ns))
	}

	now := v.now()
	if c.Expiry == nil {
		return KubeIdentity{}, tokenErr(ReasonClaims, nil, "token has no expiry (exp); triage accepts only expiring tokens: mint one with %s", v.mintHint(sa, ns))
	}
	exp := c.Expiry.Time()
	if now.After(exp.Add(kubeLeeway)) {
		return KubeIdentity{}, tokenErr(ReasonExpired, nil, "token expired at %s (%s ago); mint a new one with %s", exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second), v.mintHint(sa, ns))
	}
	if c.NotBefore != nil && now.Add(kubeLeeway).Before(c.NotBefore.Time()) {
		return KubeIdentity{}, tokenErr(ReasonNotYetValid, nil, "token is not valid before %s (%s from now); check the clocks of this node and the control plane, or mint a new one", c.NotBefore.Time().UTC().Format(time.RFC3339), c.NotBefore.Time().Sub(now).Round(time.Second))
	}
	if c.IssuedAt != nil && now.Add(kubeLeeway).Before(c.IssuedAt.Time()) {
		return KubeIdentity{}, tokenErr(ReasonNotYetValid, nil, "token was issued at %s, %s in the future; check the clocks of this node and the control plane", c.IssuedAt.Time().UTC().Format(time.RFC3339), c.IssuedAt.Time().Sub(now).Round(time.Second))
	}

	id.Expiry = exp
	id.Audience = slices.Clone([]string(c.Audience))
	id.CredentialID = c.ID
	extra := map[string][]string{}
	if k.Pod != nil {
		id.BoundPod, id.BoundPodUID = k.Pod.Name, k.Pod.UID
		extra[extraPodName] = []string{k.Pod.Name}
		extra[extraPodUID] = []string{k.Pod.UID}
	}
	if k.Node != nil {
		id.BoundNode, id.BoundNodeUID = k.Node.Name, k.Node.UID
		extra[extraNodeName] = []string{k.Node.Name}
		extra[extraNodeUID] = []string{k.Node.UID}
	}
	if c.ID != "" {
		extra[extraCredentialID] = []string{"JTI=" + c.ID}
	}
	if len(extra) > 0 {
		id.Extra = extra
	}
	return id, nil
}

// looksLikeAPIServerAudience reports whether auds is what the API server
// accepts for itself: its issuer, its URL or kubernetes.default.svc.
func (v *JWKSVerifier) looksLikeAPIServerAudience(auds []string, issuer string) bool {
	for _, a := range auds {
		if a == issuer || strings.TrimRight(a, "/") == v.base.String() || strings.Contains(a, "kubernetes.default.svc") {
			return true
		}
	}
	return false
}

// mintHint is the kubectl command that mints a token triage accepts.
func (v *JWKSVerifier) mintHint(sa, ns string) string {
	return mintCommand(sa, ns, v.audiences[0])
}

// mintCommand is the kubectl command that mints a token for audience.
func mintCommand(sa, ns, audience string) string {
	if !strings.HasPrefix(sa, tierPrefix) || ns == "" {
		// Not a tier ServiceAccount: suggest the viewer tier where triage
		// is normally installed.
		sa, ns = TierServiceAccount(Viewer), "triage-system"
	}
	return fmt.Sprintf("`kubectl create token %s -n %s --audience %s`", sa, ns, audience)
}

func quoteList(list []string) string {
	q := make([]string, 0, len(list))
	for i, s := range list {
		if i == 4 {
			q = append(q, fmt.Sprintf("(%d more)", len(list)-i))
			break
		}
		q = append(q, quoteShort(s))
	}
	return "[" + strings.Join(q, " ") + "]"
}

// keysFor returns the key set to verify a token with key id kid, fetching
// it when none is loaded or kid is not in it (at most once per
// MinRefreshInterval). keys is nil only when no key set was ever fetched;
// err, if not nil, wraps ErrKeySetUnavailable and is the last fetch's error.
// When prefetch is set a loaded key set is good enough whatever kid.
func (v *JWKSVerifier) keysFor(ctx context.Context, kid string, prefetch bool) (keys *keySet, issuer string, err error) {
	v.mu.Lock()
	fresh := v.keys != nil && v.now().Sub(v.keys.fetched) < maxKeySetAge
	if v.keys != nil && (prefetch || fresh && (kid == "" || v.keys.hasKID(kid))) {
		defer v.mu.Unlock()
		return v.keys, v.issuer, nil
	}
	if call := v.inflight; call != nil {
		v.mu.Unlock()
		return v.wait(ctx, call)
	}
	now := v.now()
	if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.cfg.MinRefreshInterval {
		defer v.mu.Unlock()
		return v.keys, v.issuer, v.lastErr
	}
	call := &fetchCall{done: make(chan struct{})}
	v.inflight = call
	v.lastAttempt = now
	v.fetches++
	issuer = v.issuer
	v.mu.Unlock()

	// The fetch is shared: it must not stop because this caller gives up.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.FetchTimeout)
	ks, issuer, ferr := v.fetch(fctx, issuer)
	cancel()

	v.mu.Lock()
	if ferr == nil {
		v.keys, v.issuer = ks, issuer
	}
	v.lastErr = ferr
	call.err = ferr
	v.inflight = nil
	close(call.done)
	keys, issuer = v.keys, v.issuer
	v.mu.Unlock()
	return keys, issuer, ferr
}

// wait waits for call and returns the state after it.
func (v *JWKSVerifier) wait(ctx context.Context, call *fetchCall) (*keySet, string, error) {
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, "", fmt.Errorf("%w: gave up waiting for the key set fetch from %s: %w", ErrKeySetUnavailable, v.jwksURL, ctx.Err())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys, v.issuer, call.err
}

// fetch discovers the issuer (if still unknown) and fetches the key set.
func (v *JWKSVerifier) fetch(ctx context.Context, issuer string) (*keySet, string, error) {
	bearer := ""
	if v.cfg.TokenFile != "" {
		b, err := os.ReadFile(v.cfg.TokenFile)
		if err != nil {
			return nil, "", fmt.Errorf("%w: read the sidecar's API server token: %w; mount the ServiceAccount token (automountServiceAccountToken) or configure no token file", ErrKeySetUnavailable, err)
		}
		bearer = strings.TrimSpace(string(b))
	}
	if issuer == "" {
		body, err := v.get(ctx, v.base.String()+discoveryPath, bearer, maxDiscoveryBytes)
		if err != nil {
			return nil, "", err
		}
		var doc struct {
			Issuer string `json:"issuer"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == "" {
			return nil, "", fmt.Errorf("%w: %s%s is not an OpenID discovery document with an issuer; pass the issuer (the API server's --service-account-issuer) explicitly", ErrKeySetUnavailable, v.base, discoveryPath)
		}
		issuer = doc.Issuer
	}
	body, err := v.get(ctx, v.jwksURL, bearer, v.cfg.MaxKeySetBytes)
	if err != nil {
		return nil, "", err
	}
	keys, err := parseKeySet(body)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %w", ErrKeySetUnavailable, v.jwksURL, err)
	}
	return &keySet{keys: keys, fetched: v.now()}, issuer, nil
}

// get fetches url with at most limit bytes of body.
func (v *JWKSVerifier) get(ctx context.Context, url, bearer string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeySetUnavailable, url, err)
	}
	// kube-apiserver serves discovery as application/json and the key set
	// as application/jwk-set+json, answering 406 to an Accept without it.
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w; check that the sidecar can reach the API server and trusts its CA", ErrKeySetUnavailable, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = "; the sidecar's ServiceAccount needs the default ClusterRoleBinding system:service-account-issuer-discovery (get on /.well-known/openid-configuration and /openid/v1/jwks), and its token must be mounted"
		case http.StatusNotFound:
			hint = "; the API server does not serve service-account issuer discovery (Kubernetes 1.21+ with --service-account-issuer)"
		}
		return nil, fmt.Errorf("%w: GET %s: %s%s", ErrKeySetUnavailable, url, resp.Status, hint)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrKeySetUnavailable, url, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: GET %s: the document is larger than %d bytes; raise the limit if the cluster really publishes that many keys", ErrKeySetUnavailable, url, limit)
	}
	return body, nil
}

// maxKeys bounds the keys kept from one key set.
const maxKeys = 256

// parseKeySet parses a JWKS document, keeping the public RSA and P-256
// signature keys. Keys of other types are skipped, so a cluster that adds
// a key type triage does not know keeps working; private keys are an error.
func parseKeySet(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // a key type or curve go-jose does not know
		}
		if !k.IsPublic() {
			return nil, errors.New("the key set holds a private key; refusing it")
		}
		if !k.Valid() || (!keyFits(k, jose.RS256) && !keyFits(k, jose.ES256)) {
			continue
		}
		keys = append(keys, k)
		if len(keys) == maxKeys {
			break
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("the key set has no usable RS256 or ES256 public key (%d keys in the document)", len(doc.Keys))
	}
	return keys, nil
}
