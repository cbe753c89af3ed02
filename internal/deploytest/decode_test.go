package deploytest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
)

// cert-manager.io/v1 has no Go types in this module; these mirror the subset
// of its API the overlays use (field names and JSON tags as in
// github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1), so strict
// decoding also catches a typo there. A field cert-manager has but the
// overlays do not use yet fails too: add it here when you start using it.
var certManagerV1 = schema.GroupVersion{Group: "cert-manager.io", Version: "v1"}

type Issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IssuerSpec `json:"spec"`
}

type IssuerSpec struct {
	SelfSigned *SelfSignedIssuer `json:"selfSigned,omitempty"`
	CA         *CAIssuer         `json:"ca,omitempty"`
}

type SelfSignedIssuer struct {
	CRLDistributionPoints []string `json:"crlDistributionPoints,omitempty"`
}

type CAIssuer struct {
	SecretName string `json:"secretName"`
}

type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              CertificateSpec `json:"spec"`
}

type CertificateSpec struct {
	CommonName  string                 `json:"commonName,omitempty"`
	DNSNames    []string               `json:"dnsNames,omitempty"`
	SecretName  string                 `json:"secretName"`
	IsCA        bool                   `json:"isCA,omitempty"`
	Duration    *metav1.Duration       `json:"duration,omitempty"`
	RenewBefore *metav1.Duration       `json:"renewBefore,omitempty"`
	PrivateKey  *CertificatePrivateKey `json:"privateKey,omitempty"`
	Usages      []string               `json:"usages,omitempty"`
	IssuerRef   IssuerReference        `json:"issuerRef"`
}

type CertificatePrivateKey struct {
	RotationPolicy string `json:"rotationPolicy,omitempty"`
	Encoding       string `json:"encoding,omitempty"`
	Algorithm      string `json:"algorithm,omitempty"`
	Size           int    `json:"size,omitempty"`
}

type IssuerReference struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

func (in *Issuer) DeepCopyObject() runtime.Object      { return deepCopyJSON(in, &Issuer{}) }
func (in *Certificate) DeepCopyObject() runtime.Object { return deepCopyJSON(in, &Certificate{}) }

func deepCopyJSON[T runtime.Object](in, out T) runtime.Object {
	b, err := json.Marshal(in)
	if err != nil {
		panic(err)
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, out); err != nil {
		panic(err)
	}
	return out
}

// codecs decode every kind the manifests may contain, strictly: unknown
// fields, duplicate fields and case-mismatched field names are errors, and
// so is a kind the scheme does not know.
var codecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme,
		networkingv1.AddToScheme, admissionregistrationv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	s.AddKnownTypes(certManagerV1, &Issuer{}, &Certificate{})
	return serializer.NewCodecFactory(s, serializer.EnableStrict)
}()

// object is one decoded document of a rendered file.
type object struct {
	doc int // 1-based position in the file
	gvk schema.GroupVersionKind
	obj runtime.Object
}

func (o object) meta() metav1.Object {
	m, err := metaAccessor(o.obj)
	if err != nil {
		panic(err)
	}
	return m
}

func (o object) String() string {
	m := o.meta()
	name := m.GetName()
	if ns := m.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s (document %d)", o.gvk.Kind, name, o.doc)
}

func metaAccessor(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}

// decodeAll splits a multi-document YAML stream and decodes each document
// strictly into its registered Go type. It returns every error, not just the
// first, each naming the document.
func decodeAll(r io.Reader) ([]object, []error) {
	var (
		objs []object
		errs []error
	)
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for doc := 1; ; doc++ {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", doc, err))
			break
		}
		if isEmptyDocument(raw) {
			doc--
			continue
		}
		obj, gvk, err := codecs.UniversalDeserializer().Decode(raw, nil, nil)
		if err != nil {
			where := fmt.Sprintf("document %d", doc)
			if gvk != nil {
				where += " (" + gvk.Kind + ")"
			}
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if _, err := metaAccessor(obj); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", doc, err))
			continue
		}
		objs = append(objs, object{doc: doc, gvk: *gvk, obj: obj})
	}
	return objs, errs
}

func isEmptyDocument(raw []byte) bool {
	for line := range strings.SplitSeq(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}
