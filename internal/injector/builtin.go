package injector

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Keys of the built-in mode's Secret.
const (
	SecretKeyCACert  = "ca.crt"
	SecretKeyCAKey   = "ca.key"
	SecretKeyTLSCert = "tls.crt"
	SecretKeyTLSKey  = "tls.key"
)

// Defaults of BuiltinCerts.
const (
	DefaultCAValidity        = 10 * 365 * 24 * time.Hour
	DefaultServingValidity   = 365 * 24 * time.Hour
	DefaultRenewBefore       = 30 * 24 * time.Hour
	DefaultCertCheckInterval = 10 * time.Minute
	DefaultCertRetryMin      = 5 * time.Second
	DefaultCertRetryMax      = 2 * time.Minute
	// inClusterNamespaceFile is where a pod's service account namespace is.
	inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// BuiltinCerts is the built-in certificate mode: it keeps a CA and a serving
// certificate for the webhook's Service in a Secret (which must exist: the
// injector has no right to create Secrets), and the caBundle of every
// webhook of a MutatingWebhookConfiguration equal to the CA. Every replica
// runs it; concurrent writers are settled by the Secret's resourceVersion
// (an Update that conflicts is retried from a fresh read, which usually
// finds the other replica's certificate valid). The server itself reads the
// certificate from the Secret's volume (CertReloader).
type BuiltinCerts struct {
	Client        kubernetes.Interface
	Namespace     string // the Secret's and the Service's namespace
	SecretName    string
	WebhookConfig string
	Service       string
	Log           *slog.Logger

	// Zero values take the defaults above.
	CAValidity, ServingValidity, RenewBefore time.Duration
	Interval, RetryMin, RetryMax             time.Duration
	Now                                      func() time.Time
}

// DNSNames are the serving certificate's names: SERVICE.NAMESPACE.svc and
// SERVICE.NAMESPACE.svc.cluster.local.
func (b *BuiltinCerts) DNSNames() []string {
	base := b.Service + "." + b.Namespace + ".svc"
	return []string{base, base + ".cluster.local"}
}

func (b *BuiltinCerts) defaults() {
	if b.Log == nil {
		b.Log = slog.Default()
	}
	if b.Now == nil {
		b.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&b.CAValidity, DefaultCAValidity)
	def(&b.ServingValidity, DefaultServingValidity)
	def(&b.RenewBefore, DefaultRenewBefore)
	def(&b.Interval, DefaultCertCheckInterval)
	def(&b.RetryMin, DefaultCertRetryMin)
	def(&b.RetryMax, DefaultCertRetryMax)
}

// Run syncs at once and then every Interval (±10%) until ctx is done; a
// failed sync is logged and retried sooner, with backoff from RetryMin to
// RetryMax.
func (b *BuiltinCerts) Run(ctx context.Context) {
	b.defaults()
	retry := b.RetryMin
	for {
		wait := b.Interval
		if err := b.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			b.Log.Error("built-in certificates: sync failed; retrying", "secret", b.Namespace+"/"+b.SecretName, "webhookConfiguration", b.WebhookConfig, "retryIn", retry.String(), "error", err.Error())
			wait = retry
			retry = min(2*retry, b.RetryMax)
		} else {
			retry = b.RetryMin
			wait += time.Duration(mrand.Int64N(int64(wait)/5+1)) - wait/10
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Sync makes sure the Secret holds a valid CA and serving certificate, then
// that the webhook configuration trusts the CA.
func (b *BuiltinCerts) Sync(ctx context.Context) error {
	b.defaults()
	bundle, err := b.syncSecret(ctx)
	if err != nil {
		return err
	}
	return b.syncWebhook(ctx, bundle)
}

// syncSecret returns the CA bundle (ca.crt) of a Secret that is valid,
// after filling or renewing it when needed.
func (b *BuiltinCerts) syncSecret(ctx context.Context) ([]byte, error) {
	secrets := b.Client.CoreV1().Secrets(b.Namespace)
	const attempts = 5
	for range attempts {
		sec, err := secrets.Get(ctx, b.SecretName, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", b.Namespace, b.SecretName, err)
		}
		now := b.Now()
		ca, why := b.check(sec.Data, now)
		if why == "" {
			return sec.Data[SecretKeyCACert], nil
		}
		data, rotatedCA, err := b.generate(sec.Data, ca, now)
		if err != nil {
			return nil, err
		}
		sec = sec.DeepCopy()
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		for k, v := range data {
			sec.Data[k] = v
		}
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: "triage-injector"})
		if apierrors.IsConflict(err) {
			b.Log.Info("built-in certificates: Secret changed meanwhile; reading it again", "secret", b.Namespace+"/"+b.SecretName)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("updating Secret %s/%s: %w", b.Namespace, b.SecretName, err)
		}
		b.Log.Info("built-in certificates: Secret updated", "secret", b.Namespace+"/"+b.SecretName, "reason", why, "newCA", rotatedCA, "dnsNames", b.DNSNames())
		return data[SecretKeyCACert], nil
	}
	return nil, fmt.Errorf("updating Secret %s/%s: still conflicting after %d attempts", b.Namespace, b.SecretName, attempts)
}

// caPair is a parsed CA.
type caPair struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// check says why data does not hold a CA and serving certificate valid
// for RenewBefore more ("" when it does). It returns the CA when that one
// is usable for RenewBefore more.
func (b *BuiltinCerts) check(data map[string][]byte, now time.Time) (*caPair, string) {
	ca, err := parseCA(data[SecretKeyCACert], data[SecretKeyCAKey])
	if err != nil {
		return nil, "no valid CA: " + err.Error()
	}
	horizon := now.Add(b.RenewBefore)
	if now.Before(ca.cert.NotBefore) || horizon.After(ca.cert.NotAfter) {
		return nil, "the CA expires within the renewal window"
	}
	pair, err := tls.X509KeyPair(data[SecretKeyTLSCert], data[SecretKeyTLSKey])
	if err != nil {
		return ca, "no valid serving certificate: " + err.Error()
	}
	leaf := pair.Leaf
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	for _, name := range b.DNSNames() {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return ca, "the serving certificate does not verify: " + err.Error()
		}
	}
	if horizon.After(leaf.NotAfter) {
		return ca, "the serving certificate expires within the renewal window"
	}
	return ca, ""
}

// generate returns new Secret data: a serving certificate signed by ca, or
// by a new CA when ca is nil. The bundle (ca.crt) is the CA followed by the
// unexpired certificates of the previous bundle, so that a server still
// presenting a certificate of the previous CA is trusted until it reloads.
func (b *BuiltinCerts) generate(old map[string][]byte, ca *caPair, now time.Time) (map[string][]byte, bool, error) {
	newCA := ca == nil
	var caKeyPEM []byte
	if newCA {
		var err error
		if ca, caKeyPEM, err = makeCA("triage-injector CA ("+b.Namespace+")", now, b.CAValidity); err != nil {
			return nil, false, err
		}
	} else {
		caKeyPEM = old[SecretKeyCAKey]
	}
	notAfter := now.Add(b.ServingValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	certPEM, keyPEM, err := issueServing(ca, b.Service+"."+b.Namespace+".svc", b.DNSNames(), now, notAfter)
	if err != nil {
		return nil, false, err
	}
	bundle := append([]byte(nil), ca.pem...)
	rest := old[SecretKeyCACert]
	for {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if blk.Type != "CERTIFICATE" || err != nil || !now.Before(c.NotAfter) || c.Equal(ca.cert) || bytes.Contains(bundle, pem.EncodeToMemory(blk)) {
			continue
		}
		bundle = append(bundle, pem.EncodeToMemory(blk)...)
	}
	return map[string][]byte{
		SecretKeyCACert:  bundle,
		SecretKeyCAKey:   caKeyPEM,
		SecretKeyTLSCert: certPEM,
		SecretKeyTLSKey:  keyPEM,
	}, newCA, nil
}

// syncWebhook patches the caBundle of every webhook of the configuration
// that differs from bundle.
func (b *BuiltinCerts) syncWebhook(ctx context.Context, bundle []byte) error {
	api := b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := api.Get(ctx, b.WebhookConfig, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", b.WebhookConfig, err)
	}
	type entry struct {
		Name         string `json:"name"`
		ClientConfig struct {
			CABundle []byte `json:"caBundle"`
		} `json:"clientConfig"`
	}
	var (
		entries []entry
		changed []string
	)
	for _, w := range cfg.Webhooks {
		e := entry{Name: w.Name}
		e.ClientConfig.CABundle = bundle
		entries = append(entries, e)
		if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
			changed = append(changed, w.Name)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"webhooks": entries})
	if err != nil {
		return err
	}
	// A strategic merge patch: webhooks merge by name, so an entry added or
	// reordered meanwhile is not overwritten by position.
	if _, err := api.Patch(ctx, b.WebhookConfig, types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: "triage-injector"}); err != nil {
		return fmt.Errorf("patching caBundle of MutatingWebhookConfiguration %s: %w", b.WebhookConfig, err)
	}
	b.Log.Info("built-in certificates: caBundle patched", "webhookConfiguration", b.WebhookConfig, "webhooks", changed)
	return nil
}

// parseCA parses the first certificate of certPEM as a CA whose key is keyPEM.
func parseCA(certPEM, keyPEM []byte) (*caPair, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New("missing")
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	first := pem.EncodeToMemory(blk)
	pair, err := tls.X509KeyPair(first, keyPEM)
	if err != nil {
		return nil, err
	}
	if !pair.Leaf.IsCA {
		return nil, errors.New("not a CA certificate")
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("the CA key cannot sign")
	}
	return &caPair{cert: pair.Leaf, key: key, pem: first}, nil
}

func makeCA(name string, now time.Time, validity time.Duration) (*caPair, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"triage"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	certPEM, keyPEM, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := parseCA(certPEM, keyPEM)
	return ca, keyPEM, err
}

func issueServing(ca *caPair, cn string, dnsNames []string, now, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              dnsNames,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	return sign(tmpl, ca.cert, key, ca.key)
}

// sign creates tmpl (with a random serial) for key, signed by parent's key
// signer, and returns both PEM-encoded (the key as PKCS #8).
func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) (certPEM, keyPEM []byte, err error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, nil, fmt.Errorf("creating a certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// OwnNamespace is the built-in mode's namespace: explicit (--triage-namespace
// when given), else getenv("POD_NAMESPACE"), else the in-cluster service
// account's namespace file, else fallback.
func OwnNamespace(explicit, fallback string, getenv func(string) string, readFile func(string) ([]byte, error)) string {
	if explicit != "" {
		return explicit
	}
	if ns := strings.TrimSpace(getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	if b, err := readFile(inClusterNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return fallback
}
