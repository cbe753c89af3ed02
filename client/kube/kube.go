package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/triage-sh/triage/client"
)

// Kube reaches triage sidecars in one cluster: it resolves targets to
// pods, mints tokens and dials sidecars. It is safe for concurrent use.
type Kube struct {
	// Flags are the flags it was built from, with defaults filled in.
	Flags Flags
	// Namespace is the target namespace: -n, else the context's.
	Namespace string
	// ContextName names the kubeconfig context in messages ("" if unknown).
	ContextName string
	// Config is the REST configuration of the API server.
	Config *rest.Config
	// Clientset talks to the API server.
	Clientset kubernetes.Interface
	// Tokens mints the bearer tokens sent to sidecars.
	Tokens *TokenSource
	// DialOptions is the template for each sidecar client: its CA,
	// ServerName, Timeout and DialOptions are used with --direct; with a
	// port-forward only Timeout and DialOptions are (the tunnel is TLS to
	// the API server, the last hop plaintext on the pod's loopback).
	// Addr and the token fields are always set by Dial.
	DialOptions client.Options
}

// New loads the kubeconfig as f says (KUBECONFIG, --kubeconfig,
// --context, in-cluster fallback) and returns a Kube whose sidecar clients
// start from template.
func New(f Flags, template client.Options) (*Kube, error) {
	f = f.withDefaults()
	if err := f.validate(); err != nil {
		return nil, err
	}
	cfg, ns, ctxName, err := f.load()
	if err != nil {
		return nil, err
	}
	k, err := NewForConfig(cfg, f, template)
	if err != nil {
		return nil, err
	}
	k.Namespace, k.ContextName = ns, ctxName
	return k, nil
}

// NewForConfig returns a Kube for the API server of cfg; the namespace is
// f.Namespace, else "default". Tests use it to point at a test server.
func NewForConfig(cfg *rest.Config, f Flags, template client.Options) (*Kube, error) {
	f = f.withDefaults()
	if err := f.validate(); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	return newKube(cfg, cs, f, template), nil
}

// newKube assembles a Kube from its parts; f has its defaults.
func newKube(cfg *rest.Config, cs kubernetes.Interface, f Flags, template client.Options) *Kube {
	ns := f.Namespace
	if ns == "" {
		ns = "default"
	}
	return &Kube{
		Flags:       f,
		Namespace:   ns,
		ContextName: f.Context,
		Config:      cfg,
		Clientset:   cs,
		Tokens:      NewTokenSource(cs, f.TierNamespace, f.Audience),
		DialOptions: template,
	}
}

// where describes the namespace and context for messages, e.g.
// `in namespace "shop" (context "prod")`.
func (k *Kube) where(ns string) string {
	if k.ContextName == "" {
		return fmt.Sprintf("in namespace %q", ns)
	}
	return fmt.Sprintf("in namespace %q (context %q)", ns, k.ContextName)
}
