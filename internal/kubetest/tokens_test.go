package kubetest

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

// saClaims are the claims of a ServiceAccount token the tests read.
type saClaims struct {
	jwt.Claims
	Kubernetes struct {
		Namespace      string `json:"namespace"`
		ServiceAccount struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

// tierAccounts creates triage-system and the tier ServiceAccounts.
func tierAccounts(t *testing.T, c *controlPlane) {
	t.Helper()
	if err := cluster.CreateServiceAccounts(ctx(t), c.Client(), cluster.TriageNamespace); err != nil {
		t.Fatal(err)
	}
}

func mint(t *testing.T, client kubernetes.Interface, name string, audiences ...string) string {
	t.Helper()
	tr, err := cluster.MintToken(ctx(t), client, cluster.TriageNamespace, name, 10*time.Minute, audiences...)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// get GETs path on the API server with cfg's credentials.
func get(t *testing.T, cfg *rest.Config, path string) (int, []byte) {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, cfg.Host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// jwks fetches the API server's ServiceAccount signing keys, as a
// ServiceAccount may (system:service-account-issuer-discovery).
func jwks(t *testing.T, c *controlPlane) *jose.JSONWebKeySet {
	t.Helper()
	tierAccounts(t, c)
	code, body := get(t, c.TokenConfig(mint(t, c.Client(), "triage-viewer")), "/openid/v1/jwks")
	if code != http.StatusOK {
		t.Fatalf("GET /openid/v1/jwks: %d %s", code, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("/openid/v1/jwks: %v: %s", err, body)
	}
	return &set
}

// verify checks token's signature against set and returns its claims.
func verify(t *testing.T, set *jose.JSONWebKeySet, token string) *saClaims {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parsing the token: %v", err)
	}
	if len(tok.Headers) != 1 {
		t.Fatalf("%d JWS headers", len(tok.Headers))
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys for kid %q", len(keys), tok.Headers[0].KeyID)
	}
	var claims saClaims
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("verifying the token with the cluster's JWKS: %v", err)
	}
	return &claims
}

// The OIDC discovery document and the JWKS are served to ServiceAccounts
// (the default system:service-account-issuer-discovery binding), not to
// other users or to tokens minted for another audience.
func TestServiceAccountIssuerDiscovery(t *testing.T) {
	c := needCluster(t)
	tierAccounts(t, c)
	saToken := mint(t, c.Client(), "triage-viewer")
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
		want int
	}{
		{"service account", c.TokenConfig(saToken), http.StatusOK},
		{"triage audience", c.TokenConfig(mint(t, c.Client(), "triage-viewer", cluster.TriageAudience)), http.StatusUnauthorized},
		{"bob", c.UserConfig("bob"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/.well-known/openid-configuration", "/openid/v1/jwks"} {
				code, body := get(t, tc.cfg, path)
				if code != tc.want {
					t.Errorf("GET %s: %d, want %d: %s", path, code, tc.want, body)
				}
			}
		})
	}

	_, body := get(t, c.TokenConfig(saToken), "/.well-known/openid-configuration")
	var doc struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("openid-configuration: %v: %s", err, body)
	}
	if doc.Issuer != c.IssuerURL() || !strings.HasSuffix(doc.JWKSURI, "/openid/v1/jwks") || !slices.Contains(doc.Algs, "ES256") {
		t.Errorf("openid-configuration %+v, want issuer %s, jwks_uri .../openid/v1/jwks, ES256", doc, c.IssuerURL())
	}
	// The JWKS verifies the tokens the API server mints.
	claims := verify(t, jwks(t, c), saToken)
	if claims.Issuer != c.IssuerURL() {
		t.Errorf("iss %q, want %q", claims.Issuer, c.IssuerURL())
	}
}

// TokenRequest mints triage-audience tokens that carry the ServiceAccount's
// identity and are useless against the API server.
func TestTokenRequest(t *testing.T) {
	c := needCluster(t)
	tierAccounts(t, c)
	set := jwks(t, c)
	tr, err := cluster.MintToken(ctx(t), c.Client(), cluster.TriageNamespace, "triage-viewer", 600*time.Second, cluster.TriageAudience)
	if err != nil {
		t.Fatal(err)
	}
	claims := verify(t, set, tr.Status.Token)
	if !slices.Equal([]string(claims.Audience), []string{cluster.TriageAudience}) {
		t.Errorf("aud %q, want [%s]", claims.Audience, cluster.TriageAudience)
	}
	if claims.Issuer != c.IssuerURL() {
		t.Errorf("iss %q, want %q", claims.Issuer, c.IssuerURL())
	}
	if claims.Kubernetes.Namespace != cluster.TriageNamespace || claims.Kubernetes.ServiceAccount.Name != "triage-viewer" || claims.Kubernetes.ServiceAccount.UID == "" {
		t.Errorf("kubernetes.io %+v, want %s/triage-viewer with a uid", claims.Kubernetes, cluster.TriageNamespace)
	}
	if claims.Expiry == nil || claims.IssuedAt == nil || claims.Expiry.Time().Sub(claims.IssuedAt.Time()) != 600*time.Second {
		t.Errorf("iat %v exp %v, want 600 s apart", claims.IssuedAt, claims.Expiry)
	}
	if !tr.Status.ExpirationTimestamp.Time.Equal(claims.Expiry.Time()) {
		t.Errorf("status expiration %v, claims' %v", tr.Status.ExpirationTimestamp, claims.Expiry.Time())
	}

	// As a bearer token against the API server.
	for _, tc := range []struct {
		name      string
		audiences []string
		wantUser  string // "" = refused with 401
	}{
		{"triage audience", []string{cluster.TriageAudience}, ""},
		{"default audience", nil, "system:serviceaccount:" + cluster.TriageNamespace + ":triage-viewer"},
		{"both audiences", []string{cluster.TriageAudience, c.IssuerURL()}, "system:serviceaccount:" + cluster.TriageNamespace + ":triage-viewer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := kubernetes.NewForConfig(c.TokenConfig(mint(t, c.Client(), "triage-viewer", tc.audiences...)))
			if err != nil {
				t.Fatal(err)
			}
			review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx(t), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			switch {
			case tc.wantUser == "" && !apierrors.IsUnauthorized(err):
				t.Errorf("got %v (user %+v), want 401 Unauthorized", err, review)
			case tc.wantUser != "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantUser != "" && review.Status.UserInfo.Username != tc.wantUser:
				t.Errorf("user %q, want %q", review.Status.UserInfo.Username, tc.wantUser)
			}
		})
	}
}

// Who may mint which tier's tokens is RBAC on serviceaccounts/token with
// resourceNames: the on-call group may mint triage-viewer's, nobody else's.
func TestTokenMintingRBAC(t *testing.T) {
	c := needCluster(t)
	tierAccounts(t, c)
	if err := cluster.GrantTokenMinting(ctx(t), c.Client(), cluster.TriageNamespace, "triage-viewer", "oncall"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, account string
		allowed       bool
	}{
		{"alice", "triage-viewer", true},
		{"bob", "triage-viewer", false},
		{"alice", "triage-operator", false},
		{"bob", "triage-operator", false},
	} {
		t.Run(tc.user+"/"+tc.account, func(t *testing.T) {
			client, err := kubernetes.NewForConfig(c.UserConfig(tc.user))
			if err != nil {
				t.Fatal(err)
			}
			var tr *authenticationv1.TokenRequest
			// The binding reaches the authorizer's cache asynchronously.
			for deadline := time.Now().Add(15 * time.Second); ; {
				tr, err = cluster.MintToken(ctx(t), client, cluster.TriageNamespace, tc.account, 10*time.Minute, cluster.TriageAudience)
				if err == nil || !tc.allowed || !apierrors.IsForbidden(err) || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("%s could not mint %s's token: %v", tc.user, tc.account, err)
			case tc.allowed && tr.Status.Token == "":
				t.Fatal("empty token")
			case !tc.allowed && !apierrors.IsForbidden(err):
				t.Fatalf("%s minting %s's token: %v, want 403 Forbidden", tc.user, tc.account, err)
			}
		})
	}
}
