package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Kubernetes authentication modes (--kube-auth).
const (
	kubeAuthJWKS        = "jwks"
	kubeAuthTokenReview = "tokenreview"
)

// methodKubeJWKS is the Identity.Method of a caller whose token was
// verified offline; only those get the tier ServiceAccounts' roles.
const methodKubeJWKS = "kube-" + kubeAuthJWKS

// kubeAuth authenticates callers by Kubernetes ServiceAccount tokens with
// triage's audience. In jwks mode the token is verified offline and the
// identity's roles come from the tier ServiceAccounts (and the policy file,
// if any); in tokenreview mode the API server authenticates the token and
// a SubjectAccessReview decides each call.
type kubeAuth struct {
	jwks   *auth.JWKSVerifier
	review kubeReviewer
	// tiers grants the tier ServiceAccounts their roles (jwks mode).
	tiers *auth.Policy
}

// kubeReviewer is what tokenreview mode needs of auth.KubeReviewer.
type kubeReviewer interface {
	Authenticate(ctx context.Context, token string) (auth.KubeIdentity, error)
	Authorize(ctx context.Context, id auth.KubeIdentity, perm triagev1.Permission) (allowed bool, reason string, err error)
}

// validateKube checks the --kube-* options.
func validateKube(o Options) error {
	switch o.KubeAuth {
	case "":
		return nil
	case kubeAuthJWKS:
	case kubeAuthTokenReview:
		if o.PodName == "" || o.PodNamespace == "" {
			return errors.New("--kube-auth=tokenreview asks the API server about this pod: set --pod-name and --pod-namespace (the injector sets TRIAGE_POD_NAME and TRIAGE_POD_NAMESPACE from the downward API)")
		}
	default:
		return fmt.Errorf("--kube-auth %q: use jwks, tokenreview, or leave it empty", o.KubeAuth)
	}
	if strings.TrimSpace(o.KubeAudience) == "" {
		return errors.New("--kube-audience is empty: triage's tokens need an audience of their own, e.g. triage.dev")
	}
	return nil
}

// kubeAPIServer is --kube-api-server, or the in-cluster address.
func kubeAPIServer(o Options) (string, error) {
	if o.KubeAPIServer != "" {
		return o.KubeAPIServer, nil
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return "", errors.New("--kube-auth needs the API server: run in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT) or pass --kube-api-server URL")
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// newKubeAuth builds the Kubernetes authenticator of o, or nil when
// --kube-auth is off. Nothing is fetched yet: the cluster's keys are read on
// the first token, so a sidecar starts even while the API server is away.
func newKubeAuth(o Options) (*kubeAuth, error) {
	if o.KubeAuth == "" {
		return nil, nil
	}
	api, err := kubeAPIServer(o)
	if err != nil {
		return nil, err
	}
	k := &kubeAuth{}
	switch o.KubeAuth {
	case kubeAuthJWKS:
		if k.jwks, err = auth.NewJWKSVerifier(auth.JWKSConfig{
			APIServer: api, CAFile: o.KubeCAFile, TokenFile: o.KubeTokenFile,
			Audiences: []string{o.KubeAudience}, Issuer: o.KubeIssuer,
		}); err != nil {
			return nil, fmt.Errorf("--kube-auth=jwks: %w", err)
		}
		k.tiers = auth.KubeTierPolicy(append(append([]string(nil), o.KubeTierNamespaces...), o.PodNamespace))
	case kubeAuthTokenReview:
		if k.review, err = newKubeReviewer(o, api); err != nil {
			return nil, fmt.Errorf("--kube-auth=tokenreview: %w", err)
		}
	}
	return k, nil
}

// looksLikeJWT reports whether a bearer token is a compact JWS (three
// base64url parts), as ServiceAccount tokens are; tokens-file tokens are
// opaque strings without dots.
func looksLikeJWT(tok string) bool {
	return strings.Count(tok, ".") == 2 && strings.HasPrefix(tok, "eyJ")
}

// authenticate verifies a ServiceAccount token.
func (k *kubeAuth) authenticate(ctx context.Context, tok string) (Identity, *auth.KubeIdentity, error) {
	var (
		id     auth.KubeIdentity
		err    error
		method string
	)
	if k.jwks != nil {
		id, err = k.jwks.Verify(ctx, tok)
		method = methodKubeJWKS
	} else {
		id, err = k.review.Authenticate(ctx, tok)
		method = "kube-" + kubeAuthTokenReview
	}
	if err != nil {
		return Identity{}, nil, kubeStatus(err)
	}
	return Identity{Name: id.Username, Method: method}, &id, nil
}

// kubeStatus maps the authenticators' errors to gRPC codes: the API server
// being unreachable is Unavailable (retry), anything wrong with the token is
// Unauthenticated with the verifier's advice.
func kubeStatus(err error) error {
	switch {
	case errors.Is(err, auth.ErrKeySetUnavailable), errors.Is(err, auth.ErrReviewUnavailable):
		return status.Errorf(codes.Unavailable, "cannot check the Kubernetes token now: %v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unauthenticated, err.Error())
}

// newKubeReviewer builds tokenreview mode's reviewer.
func newKubeReviewer(o Options, api string) (kubeReviewer, error) {
	client, err := auth.NewReviewHTTP(auth.ReviewHTTPConfig{APIServer: api, CAFile: o.KubeCAFile, TokenFile: o.KubeTokenFile})
	if err != nil {
		return nil, err
	}
	return auth.NewKubeReviewer(auth.ReviewConfig{Client: client, Audiences: []string{o.KubeAudience}, Namespace: o.PodNamespace, PodName: o.PodName})
}
