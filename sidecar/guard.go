package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/triage-sh/triage/internal/audit"
	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// guard is the one boundary every call crosses: it authenticates,
// authorizes against the method's permission (default deny), bounds the calls
// in flight, recovers panics, turns uncoded errors into Internal, and writes
// one audit record per call, denials included.
type guard struct {
	perms    permissionTable
	tokens   *auth.TokensFile // nil: bearer tokens disabled
	policy   *auth.PolicyFile // nil: every call denied
	kube     *kubeAuth        // nil: Kubernetes tokens disabled
	audit    *audit.Logger
	log      *slog.Logger
	inflight chan struct{}
	reclaim  *reclaimer // nil: memory is left to the runtime
}

// call is what the guard knows about one call while it runs.
type call struct {
	rec  audit.Record
	perm triagev1.Permission
	// kube is the caller's Kubernetes identity, when a ServiceAccount
	// token authenticated it.
	kube *auth.KubeIdentity
}

func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	g.reclaim.begin()
	defer g.reclaim.end()
	c := g.begin(ctx, info.FullMethod)
	c.rec.Args = summarize(req)
	defer func() { g.end(c, err) }()
	ctx, release, err := g.admit(ctx, c)
	if err != nil {
		return nil, err
	}
	defer release()
	err = g.protect(c, func() error {
		var herr error
		resp, herr = handler(ctx, req)
		return herr
	})
	err = codedStatus(err, c).Err()
	if m, ok := resp.(proto.Message); ok && err == nil {
		c.rec.BytesSent = int64(proto.Size(m))
	}
	return resp, err
}

func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	g.reclaim.begin()
	defer g.reclaim.end()
	c := g.begin(ss.Context(), info.FullMethod)
	defer func() { g.end(c, err) }()
	ctx, release, err := g.admit(ss.Context(), c)
	if err != nil {
		return err
	}
	defer release()
	ws := &auditedStream{ServerStream: ss, ctx: ctx, c: c}
	err = g.protect(c, func() error { return handler(srv, ws) })
	return codedStatus(err, c).Err()
}

// begin starts the audit record of a call.
func (g *guard) begin(ctx context.Context, method string) *call {
	c := &call{rec: audit.Record{Time: time.Now(), Method: method, AuthMethod: "none"}}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		c.rec.Peer = p.Addr.String()
		if c.rec.Peer == "" || c.rec.Peer == "@" {
			c.rec.Peer = "unix"
		}
	}
	c.perm = g.perms[method]
	c.rec.Permission = permissionName(c.perm)
	return c
}

// admit authenticates and authorizes the call and takes an in-flight slot.
func (g *guard) admit(ctx context.Context, c *call) (context.Context, func(), error) {
	if c.perm == open {
		return ctx, func() {}, nil
	}
	id, kid, err := g.authenticate(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.rec.Identity, c.rec.AuthMethod, c.kube = id.Name, id.Method, kid
	if err := g.authorize(ctx, id, c); err != nil {
		return nil, nil, err
	}
	select {
	case g.inflight <- struct{}{}:
	default:
		return nil, nil, status.Errorf(codes.ResourceExhausted,
			"the sidecar is busy: %d calls in flight (limit --max-inflight=%d); retry shortly", cap(g.inflight), cap(g.inflight))
	}
	return withIdentity(ctx, id), func() { <-g.inflight }, nil
}

// authenticate finds the caller: a bearer token if one is presented (a
// Kubernetes ServiceAccount token when --kube-auth is on and it is a JWT,
// else one of --tokens-file), else a verified client certificate, else the
// Unix peer's uid.
func (g *guard) authenticate(ctx context.Context) (Identity, *auth.KubeIdentity, error) {
	if tok, present, err := bearerToken(ctx); present {
		if err != nil {
			return Identity{}, nil, err
		}
		if g.kube != nil && (looksLikeJWT(tok) || g.tokens == nil) {
			return g.kube.authenticate(ctx, tok)
		}
		if g.tokens == nil {
			return Identity{}, nil, status.Error(codes.Unauthenticated,
				"bearer tokens are not enabled on this sidecar (it has no --tokens-file or --kube-auth); use a client certificate")
		}
		name, ok := g.tokens.Lookup(tok)
		if !ok {
			return Identity{}, nil, status.Error(codes.Unauthenticated,
				"bearer token not recognised: its SHA-256 is not in the sidecar's --tokens-file; check the token or ask for one")
		}
		return Identity{Name: name, Method: "token"}, nil, nil
	}
	p, _ := peer.FromContext(ctx)
	if p != nil {
		switch ai := p.AuthInfo.(type) {
		case credentials.TLSInfo:
			if len(ai.State.VerifiedChains) > 0 && len(ai.State.VerifiedChains[0]) > 0 {
				name := auth.IdentityFromCert(ai.State.VerifiedChains[0][0])
				if name == "" {
					return Identity{}, nil, status.Error(codes.Unauthenticated,
						"client certificate names no identity (no SPIFFE URI SAN, DNS SAN or CN); issue one that does")
				}
				return Identity{Name: name, Method: "mtls"}, nil, nil
			}
		case unixPeerInfo:
			return Identity{Name: fmt.Sprintf("uid:%d", ai.UID), Method: "unix-peer"}, nil, nil
		}
	}
	if g.kube != nil {
		return Identity{}, nil, status.Error(codes.Unauthenticated,
			"no credentials: send a Kubernetes ServiceAccount token with triage's audience (the triage CLI mints one from your kubeconfig: triage explain pod/NAME)")
	}
	return Identity{}, nil, status.Error(codes.Unauthenticated,
		"no credentials: present a client certificate signed by the sidecar's --client-ca or a bearer token from its --tokens-file (for local development: triage --dev DIR)")
}

// bearerToken reads "authorization: Bearer X" from the call's metadata.
func bearerToken(ctx context.Context) (tok string, present bool, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", true, status.Error(codes.Unauthenticated, "more than one authorization header; send exactly one")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return "", true, status.Error(codes.Unauthenticated, `malformed authorization header: send "Bearer <token>"`)
	}
	return strings.TrimSpace(tok), true, nil
}

// authorize checks the policy (with the tier ServiceAccounts' roles in jwks
// mode), or asks the API server in tokenreview mode: default deny.
func (g *guard) authorize(ctx context.Context, id Identity, c *call) error {
	if c.kube != nil && g.kube.review != nil {
		allowed, reason, err := g.kube.review.Authorize(ctx, *c.kube, c.perm)
		if err != nil {
			return kubeStatus(err)
		}
		if !allowed {
			return status.Errorf(codes.PermissionDenied, "%s: %s", c.rec.Method, reason)
		}
		return nil
	}
	roles := g.roles(id)
	if auth.Grants(roles, c.perm) {
		return nil
	}
	need, _ := auth.MinimalRole(c.perm)
	if c.kube != nil {
		return status.Errorf(codes.PermissionDenied,
			"%s may not call %s: it needs permission %s, which the token of ServiceAccount %s (or a higher tier) carries; the triage CLI mints it for commands that need it",
			id.Name, c.rec.Method, permissionName(c.perm), auth.TierServiceAccount(need))
	}
	have := "no roles"
	if len(roles) > 0 {
		names := make([]string, len(roles))
		for i, r := range roles {
			names[i] = string(r)
		}
		have = "roles " + strings.Join(names, ",")
	}
	where := "the sidecar's --policy-file"
	if g.policy != nil {
		where = g.policy.Path()
	}
	return status.Errorf(codes.PermissionDenied,
		"%s (%s) may not call %s: it needs permission %s; bind it to role %s or higher in %s",
		id.Name, have, c.rec.Method, permissionName(c.perm), need, where)
}

// roles are the policy's roles of id, and in jwks mode those its tier
// ServiceAccount carries.
func (g *guard) roles(id Identity) []auth.Role {
	var roles []auth.Role
	if g.policy != nil {
		roles = g.policy.Roles(id.Name)
	}
	if id.Method == methodKubeJWKS && g.kube != nil && g.kube.tiers != nil {
		for _, r := range g.kube.tiers.Roles(id.Name) {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	return roles
}

// protect runs f, turning a panic into Internal. The server keeps serving.
func (g *guard) protect(c *call, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			g.log.Error("panic in handler", "method", c.rec.Method, "panic", fmt.Sprint(r), "stack", string(stack))
			c.rec.Message = fmt.Sprintf("panic: %v", r)
			err = status.Errorf(codes.Internal, "internal error in %s (the sidecar recovered and keeps serving; details are in its log)", c.rec.Method)
		}
	}()
	return f()
}

// end maps uncoded errors and writes the audit record.
func (g *guard) end(c *call, err error) {
	st := codedStatus(err, c)
	c.rec.Code = st.Code().String()
	if c.rec.Message == "" && st.Code() != codes.OK {
		c.rec.Message = st.Message()
	}
	c.rec.DurationMS = float64(time.Since(c.rec.Time).Microseconds()) / 1000
	if aerr := g.audit.Log(c.rec); aerr != nil {
		g.log.Error("audit log write failed", "err", aerr)
	}
}

// codedStatus returns err's status. An error without a gRPC code is a bug in
// a service layer: it becomes Internal, and its text goes only to the audit
// log (through c), never to the caller.
func codedStatus(err error, c *call) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "call cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded")
	}
	c.rec.Message = err.Error()
	return status.New(codes.Internal, "internal error in "+c.rec.Method+" (details are in the sidecar's audit log)")
}

// auditedStream counts the bytes a stream sends, records its request for the
// audit log, and carries the authenticated context.
type auditedStream struct {
	grpc.ServerStream
	ctx context.Context
	c   *call
}

func (s *auditedStream) Context() context.Context { return s.ctx }

func (s *auditedStream) SendMsg(m any) error {
	if pm, ok := m.(proto.Message); ok {
		s.c.rec.BytesSent += int64(proto.Size(pm))
	}
	return s.ServerStream.SendMsg(m)
}

func (s *auditedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && s.c.rec.Args == "" {
		s.c.rec.Args = summarize(m)
	}
	return err
}
