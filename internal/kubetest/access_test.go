package kubetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/pprof/profile"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/client/kube"
	"github.com/triage-sh/triage/internal/audit"
	"github.com/triage-sh/triage/internal/kubetest/cluster"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Method names in the sidecar's audit log.
const (
	explainMethod = "/triage.v1.ExplainService/Explain"
	profileMethod = "/triage.v1.RuntimeService/Profile"
)

// newKube is client/kube for user in groups (cluster.AdminUser: the
// admin), targeting ns.
func newKube(t *testing.T, c *controlPlane, ns, user string, groups ...string) *kube.Kube {
	t.Helper()
	cfg := c.UserConfig(user, groups...)
	if user == cluster.AdminUser {
		cfg = c.RestConfig()
	}
	k, err := kube.NewForConfig(cfg, kube.Flags{Namespace: ns}, client.Options{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dialTier resolves pod in k's namespace and dials its sidecar with a token
// of tier, retrying while RBAC bindings made by the test propagate. The
// client closes when the test ends.
func dialTier(t *testing.T, k *kube.Kube, pod, tier string) *client.Client {
	t.Helper()
	pods, err := k.Resolve(ctx(t), kube.Target{Kind: kube.KindPod, Name: pod})
	if err != nil {
		t.Fatal(err)
	}
	var cl *client.Client
	var closeFn func() error
	err = eventually(15*time.Second, func() error {
		// A fresh TokenSource: a refusal is cached for a minute.
		k.Tokens = kube.NewTokenSource(k.Clientset, "", "")
		cl, closeFn, err = k.Dial(ctx(t), pods[0], tier)
		return err
	})
	if err != nil {
		t.Fatalf("dialing %s with a %s token: %v", pod, tier, err)
	}
	t.Cleanup(func() { _ = closeFn() })
	return cl
}

// rawDial port-forwards to the pod's sidecar as the admin and dials it
// with token as is (no minting), for tokens client/kube would never send.
func rawDial(t *testing.T, c *controlPlane, ns, pod, token string) *client.Client {
	t.Helper()
	f := forward(t, c, ns, pod, sidecarPort, cluster.WebSocket)
	cl, err := client.Dial(ctx(t), client.Options{Addr: f.Addr, Insecure: true, Token: token, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// wantCode checks err's gRPC code and that its message holds every want.
func wantCode(t *testing.T, err error, code codes.Code, want ...string) {
	t.Helper()
	if got := grpcstatus.Code(err); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
	msg := grpcstatus.Convert(err).Message()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not mention %q", msg, w)
		}
	}
}

// heapProfile asks cl for a quick heap profile and parses it.
func heapProfile(t *testing.T, cl *client.Client) (*profile.Profile, error) {
	t.Helper()
	var buf bytes.Buffer
	_, err := cl.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_HEAP}, &buf)
	if err != nil {
		return nil, err
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatalf("the heap profile does not parse: %v", err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatalf("the heap profile is not valid: %v", err)
	}
	return p, nil
}

// awaitAudit waits (up to 5 s: the sidecar writes a record once the call
// is done, which may be after the client has its answer) for a record of
// method after the first mark records of s's audit log, and returns it.
func awaitAudit(t *testing.T, s *sidecarProc, method string, mark int) audit.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := s.audit(t)
		for i := mark; i < len(recs); i++ {
			if recs[i].Method == method {
				return recs[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record of %s in %s after record %d (%d records)", method, s.AuditLog, mark, len(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditMark is the number of records in s's audit log, for awaitAudit.
func auditMark(t *testing.T, s *sidecarProc) int {
	t.Helper()
	return len(s.audit(t))
}

// saUser is the Kubernetes username of ServiceAccount ns/name.
func saUser(ns, name string) string { return "system:serviceaccount:" + ns + ":" + name }

// A tier token minted through client/kube reaches a real sidecar through
// the API server's port-forward; the sidecar verifies it offline against
// the cluster's keys, audits the ServiceAccount, and grants its tier only.
func TestAccessTiers(t *testing.T) {
	c := needCluster(t)
	applyAccess(t, c)
	ns := namespace(t, c, nil)
	// A classic sidecar container here; the fleet tests use native ones.
	f := startFleet(t, c, ns, "api", fleetOptions{Replicas: 1, Classic: true})
	pod, sc := f.Pods[0].Name, f.Sidecars[0]
	bindClusterRole(t, c, ns, "triage-user", rbacv1.GroupKind, "oncall")

	t.Run("viewer", func(t *testing.T) {
		cl := dialTier(t, newKube(t, c, ns, "alice", "oncall", "triage:viewers"), pod, "viewer")
		mark := auditMark(t, sc)
		resp, err := cl.Explain(ctx(t))
		if err != nil {
			t.Fatalf("Explain with a viewer token: %v", err)
		}
		if resp == nil {
			t.Fatal("Explain: empty answer")
		}
		rec := awaitAudit(t, sc, explainMethod, mark)
		if want := saUser(cluster.TriageNamespace, "triage-viewer"); rec.Identity != want || rec.AuthMethod != "kube-jwks" || rec.Code != codes.OK.String() {
			t.Errorf("audit %+v, want identity %s, auth_method kube-jwks, code OK", rec, want)
		}
		sum, groups, err := cl.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{})
		if err != nil {
			t.Fatalf("Goroutines with a viewer token: %v", err)
		}
		if sum.GetTotal() <= 0 || len(groups) == 0 {
			t.Errorf("goroutines: total %d in %d groups, want some", sum.GetTotal(), len(groups))
		}
		mark = auditMark(t, sc)
		_, err = heapProfile(t, cl)
		wantCode(t, err, codes.PermissionDenied, "triage-profiler", saUser(cluster.TriageNamespace, "triage-viewer"))
		if rec := awaitAudit(t, sc, profileMethod, mark); rec.Code != codes.PermissionDenied.String() {
			t.Errorf("audit of the refused profile: %+v", rec)
		}
	})
	t.Run("profiler", func(t *testing.T) {
		cl := dialTier(t, newKube(t, c, ns, "alice", "oncall", "triage:profilers"), pod, "profiler")
		mark := auditMark(t, sc)
		p, err := heapProfile(t, cl)
		if err != nil {
			t.Fatalf("heap profile with a profiler token: %v", err)
		}
		if len(p.SampleType) == 0 {
			t.Error("the heap profile has no sample types")
		}
		rec := awaitAudit(t, sc, profileMethod, mark)
		if want := saUser(cluster.TriageNamespace, "triage-profiler"); rec.Identity != want || rec.Code != codes.OK.String() {
			t.Errorf("audit %+v, want identity %s, code OK", rec, want)
		}
	})
}

// jwtParts splits a compact JWS.
func jwtParts(t *testing.T, tok string) [3]string {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("token has %d parts, want 3", len(p))
	}
	return [3]string{p[0], p[1], p[2]}
}

// withClaim returns tok with claim set to value in its payload and the
// signature left as it was.
func withClaim(t *testing.T, tok, claim string, value any) string {
	t.Helper()
	p := jwtParts(t, tok)
	raw, err := base64.RawURLEncoding.DecodeString(p[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims[claim] = value
	raw, err = json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return p[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + p[2]
}

// flipSignature returns tok with one bit of its signature flipped.
func flipSignature(t *testing.T, tok string) string {
	t.Helper()
	p := jwtParts(t, tok)
	sig, err := base64.RawURLEncoding.DecodeString(p[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// forge signs the claims of tok with a key the cluster never published,
// under the cluster's own key ID.
func forge(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), parsed.Headers[0].KeyID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The sidecar refuses every token that is not an untampered triage.dev
// token signed by the cluster, and says why; the API server in turn
// refuses triage.dev tokens. (Expiry cannot be reached end to end: the
// API server's shortest token lives 10 minutes and the sidecar's clock is
// its own. internal/auth's TestJWKSVerify covers expired tokens, the
// leeway, and tokens without exp.)
func TestAccessTokens(t *testing.T) {
	c := needCluster(t)
	tierAccounts(t, c)
	ns := namespace(t, c, nil)
	f := startFleet(t, c, ns, "api", fleetOptions{Replicas: 1})
	pod := f.Pods[0].Name

	viewer := mint(t, c.Client(), "triage-viewer", cluster.TriageAudience)
	operatorAPI := mint(t, c.Client(), "triage-operator")
	for _, tc := range []struct {
		name  string
		token string
		code  codes.Code
		want  []string // in the sidecar's message
	}{
		{"triage audience", viewer, codes.OK, nil},
		{"API server audience", mint(t, c.Client(), "triage-viewer"), codes.Unauthenticated, []string{"audience", cluster.TriageAudience}},
		{"both audiences", mint(t, c.Client(), "triage-viewer", cluster.TriageAudience, c.IssuerURL()), codes.Unauthenticated, []string{"audience"}},
		{"payload tampered: operator's subject", withClaim(t, viewer, "sub", saUser(cluster.TriageNamespace, "triage-operator")), codes.Unauthenticated, nil},
		{"payload tampered: audience", withClaim(t, operatorAPI, "aud", []string{cluster.TriageAudience}), codes.Unauthenticated, nil},
		{"signature tampered", flipSignature(t, viewer), codes.Unauthenticated, nil},
		{"signed by another key", forge(t, viewer), codes.Unauthenticated, nil},
		{"not a JWT", "opaque-" + randomHex(8), codes.Unauthenticated, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := rawDial(t, c, ns, pod, tc.token)
			mark := auditMark(t, f.Sidecars[0])
			_, err := cl.Explain(ctx(t))
			if tc.code == codes.OK {
				if err != nil {
					t.Fatalf("Explain: %v", err)
				}
				return
			}
			wantCode(t, err, tc.code, tc.want...)
			if rec := awaitAudit(t, f.Sidecars[0], explainMethod, mark); rec.Code != tc.code.String() || rec.Identity != "" {
				t.Errorf("audit %+v, want code %v and no identity", rec, tc.code)
			}
		})
	}

	t.Run("triage audience at the API server", func(t *testing.T) {
		code, body := get(t, c.TokenConfig(viewer), "/api")
		if code != http.StatusUnauthorized {
			t.Errorf("GET /api with a triage.dev token: %d, want 401: %s", code, body)
		}
	})
}

// Who may mint which tier is deploy/base/access.yaml's RBAC, through
// client/kube's TokenSource: the minter Roles are cumulative, a refusal
// names the Role to ask for, and a user without triage-user in the app's
// namespace cannot port-forward to its pods.
func TestAccessMintingRBAC(t *testing.T) {
	c := needCluster(t)
	applyAccess(t, c)
	ns := namespace(t, c, nil)

	for _, tc := range []struct {
		user, group string
		allowed     []string // tiers; the others are refused
	}{
		{"carol", "triage:viewers", []string{"viewer"}},
		{"erin", "triage:profilers", []string{"viewer", "profiler"}},
		{"frank", "triage:capturers", []string{"viewer", "profiler", "capturer"}},
		{"dave", "triage:operators", []string{"viewer", "profiler", "capturer", "operator"}},
		{"bob", "", nil},
	} {
		for _, tier := range kube.Tiers {
			allowed := false
			for _, a := range tc.allowed {
				allowed = allowed || a == tier
			}
			t.Run(tc.user+"/"+tier, func(t *testing.T) {
				var groups []string
				if tc.group != "" {
					groups = []string{tc.group}
				}
				cs, err := kubernetes.NewForConfig(c.UserConfig(tc.user, groups...))
				if err != nil {
					t.Fatal(err)
				}
				var tok string
				mintTier := func() error {
					tok, err = kube.NewTokenSource(cs, "", "").Token(ctx(t), tier, ns)
					return err
				}
				if allowed {
					err = eventually(15*time.Second, mintTier)
				} else {
					err = mintTier()
				}
				switch {
				case allowed && err != nil:
					t.Fatalf("%s in %s could not mint the %s token: %v", tc.user, tc.group, tier, err)
				case allowed:
					claims := unverifiedClaims(t, tok)
					if want := saUser(cluster.TriageNamespace, kube.ServiceAccount(tier)); claims.Subject != want || len(claims.Audience) != 1 || claims.Audience[0] != cluster.TriageAudience {
						t.Errorf("minted sub %q aud %q, want %s and [%s]", claims.Subject, claims.Audience, want, cluster.TriageAudience)
					}
				case err == nil:
					t.Fatalf("%s in %q minted the %s token", tc.user, tc.group, tier)
				case !strings.Contains(err.Error(), kube.MinterRole(tier)) || !strings.Contains(err.Error(), "serviceaccounts/token"):
					t.Errorf("refusal %q does not name serviceaccounts/token and Role %s", err, kube.MinterRole(tier))
				}
			})
		}
	}

	t.Run("port-forward without triage-user", func(t *testing.T) {
		f := startFleet(t, c, ns, "api", fleetOptions{Replicas: 1})
		pods, err := newKube(t, c, ns, cluster.AdminUser).Resolve(ctx(t), kube.Target{Kind: kube.KindPod, Name: f.Pods[0].Name})
		if err != nil {
			t.Fatal(err)
		}
		// bob may mint the viewer token, not port-forward in ns.
		k := newKube(t, c, ns, "bob", "triage:viewers")
		var dialErr error
		err = eventually(15*time.Second, func() error {
			k.Tokens = kube.NewTokenSource(k.Clientset, "", "")
			_, closeFn, err := k.Dial(ctx(t), pods[0], "viewer")
			if err == nil {
				_ = closeFn()
				return nil
			}
			dialErr = err
			if strings.Contains(err.Error(), "serviceaccounts/token") {
				return err // the minting binding has not arrived yet
			}
			return nil
		})
		if err != nil {
			t.Fatalf("bob could not mint the viewer token: %v", err)
		}
		if dialErr == nil || !strings.Contains(dialErr.Error(), "pods/portforward") {
			t.Fatalf("bob's port-forward: %v, want an error naming pods/portforward", dialErr)
		}
		if !strings.Contains(strings.ToLower(dialErr.Error()), "forbidden") {
			t.Errorf("bob's port-forward: %v, want the API server's Forbidden", dialErr)
		}
	})
}

// unverifiedClaims reads a token's registered claims without checking it.
func unverifiedClaims(t *testing.T, tok string) jwt.Claims {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// In tokenreview mode the sidecar asks the API server: TokenReview
// authenticates (so deleting the ServiceAccount revokes its tokens once the
// sidecar's 10-second cache lapses) and a SubjectAccessReview on the
// virtual pods/<permission> subresource in group triage.dev decides.
func TestAccessTokenReview(t *testing.T) {
	c := needCluster(t)
	ns := namespace(t, c, nil)
	const reviewer, viewerSA = "triage-reviewer", "triage-viewer"
	bindClusterRole(t, c, "", "system:auth-delegator", rbacv1.ServiceAccountKind, ns+":"+reviewer)
	// The tier ServiceAccount lives in the app's namespace here, so that
	// deleting it touches no other test.
	if err := cluster.CreateServiceAccounts(ctx(t), c.Client(), ns, viewerSA); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "triage-test-view-" + ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"triage.dev"}, Resources: []string{"pods/view"}, Verbs: []string{"get"}}},
	}
	if _, err := c.Client().RbacV1().ClusterRoles().Create(ctx(t), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cx, cancel := cleanupCtx()
		defer cancel()
		_ = c.Client().RbacV1().ClusterRoles().Delete(cx, role.Name, metav1.DeleteOptions{})
	})
	bindClusterRole(t, c, ns, role.Name, rbacv1.ServiceAccountKind, ns+":"+viewerSA)
	f := startFleet(t, c, ns, "api", fleetOptions{Replicas: 1, KubeAuth: "tokenreview", ServiceAccount: reviewer})

	tr, err := cluster.MintToken(ctx(t), c.Client(), ns, viewerSA, 10*time.Minute, cluster.TriageAudience)
	if err != nil {
		t.Fatal(err)
	}
	cl := rawDial(t, c, ns, f.Pods[0].Name, tr.Status.Token)
	mark := auditMark(t, f.Sidecars[0])
	if err := eventually(15*time.Second, func() error { _, err := cl.Explain(ctx(t)); return err }); err != nil {
		t.Fatalf("Explain with a viewer token in tokenreview mode: %v", err)
	}
	rec := awaitAudit(t, f.Sidecars[0], explainMethod, mark)
	if want := saUser(ns, viewerSA); rec.Identity != want || rec.AuthMethod != "kube-tokenreview" {
		t.Errorf("audit %+v, want identity %s, auth_method kube-tokenreview", rec, want)
	}
	_, err = heapProfile(t, cl)
	wantCode(t, err, codes.PermissionDenied, "pods/profile", "triage.dev")

	t.Run("revoked", func(t *testing.T) {
		if err := c.Client().CoreV1().ServiceAccounts(ns).Delete(ctx(t), viewerSA, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The sidecar caches an authenticated token for 10 s.
		start := time.Now()
		err := eventually(20*time.Second, func() error {
			_, err := cl.Explain(ctx(t))
			if err == nil {
				return errors.New("still accepted")
			}
			if grpcstatus.Code(err) != codes.Unauthenticated {
				return fmt.Errorf("got %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("a deleted ServiceAccount's token after %v: %v", time.Since(start).Round(time.Second), err)
		}
		t.Logf("revoked after %v", time.Since(start).Round(100*time.Millisecond))
	})
}
