package deploytest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/triage-sh/triage/internal/inject"
)

// EnvDir names the directory scripts/manifests.sh renders into.
const EnvDir = "TRIAGE_MANIFESTS_DIR"

// Rendered files, one per kustomization (scripts/manifests.sh writes them).
const (
	fileCertManager  = "cert-manager.yaml"  // deploy/overlays/cert-manager
	fileBuiltinCerts = "builtin-certs.yaml" // deploy/overlays/builtin-certs
	fileExampleApp   = "example-app.yaml"   // deploy/examples/app
)

// What the installation is called; the webhook, the Service and the
// Deployment share the name.
const (
	injectorName  = "triage-injector"
	injectorPort  = 8443
	webhookPort   = 443
	annotationCA  = "cert-manager.io/inject-ca-from"
	nameLabel     = "kubernetes.io/metadata.name" // set on every namespace by the API server
	hostnameLabel = "kubernetes.io/hostname"
)

var restricted = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

func renderedDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		t.Skipf("%s is not set: the manifest checks need kustomize's output; run `make manifests` (scripts/manifests.sh renders deploy/ and runs this test)", EnvDir)
	}
	return dir
}

// set is one rendered file, decoded.
type set struct {
	file string
	objs []object
}

func load(t *testing.T, file string) *set {
	t.Helper()
	p := filepath.Join(renderedDir(t), file)
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("rendered manifests: %v (scripts/manifests.sh writes one file per kustomization)", err)
	}
	defer f.Close()
	objs, errs := decodeAll(f)
	for _, err := range errs {
		t.Errorf("%s: %v", file, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", file)
	}
	return &set{file: file, objs: objs}
}

// all returns the objects of type T.
func all[T any](s *set) []T {
	var out []T
	for _, o := range s.objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the object of type T named name, failing the test when there
// is not exactly one.
func one[T interface{ GetName() string }](t *testing.T, s *set, name string) T {
	t.Helper()
	var found []T
	for _, v := range all[T](s) {
		if v.GetName() == name {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%s: want exactly one %T named %q, found %d", s.file, zero, name, len(found))
	}
	return found[0]
}

func has[T interface{ GetName() string }](s *set, name string) bool {
	return slices.ContainsFunc(all[T](s), func(v T) bool { return v.GetName() == name })
}

// TestStrictDecoding proves the decoder rejects what a typo produces; it
// needs no rendered files.
func TestStrictDecoding(t *testing.T) {
	good := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  replicas: 2
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i}]
`
	if objs, errs := decodeAll(strings.NewReader("---\n# comment\n---\n" + good)); len(errs) != 0 || len(objs) != 1 {
		t.Fatalf("valid Deployment: %d objects, errors %v", len(objs), errs)
	}
	for name, doc := range map[string]string{
		"unknown field":        strings.Replace(good, "replicas: 2", "replicaz: 2", 1),
		"misplaced field":      strings.Replace(good, "containers:", "replicas: 3\n      containers:", 1),
		"duplicate field":      strings.Replace(good, "replicas: 2", "replicas: 2\n  replicas: 3", 1),
		"wrong case":           strings.Replace(good, "replicas: 2", "Replicas: 2", 1),
		"wrong type":           strings.Replace(good, "replicas: 2", "replicas: two", 1),
		"unknown kind":         strings.Replace(good, "kind: Deployment", "kind: Deploymnet", 1),
		"unknown cert-manager": "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: s, dnsName: [a], issuerRef: {name: i}}\n",
		"bad yaml":             good + "  : :\n",
	} {
		if _, errs := decodeAll(strings.NewReader(doc)); len(errs) == 0 {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if objs, errs := decodeAll(strings.NewReader("apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: x}\nspec: {selfSigned: {}}\n")); len(errs) != 0 || len(objs) != 1 {
		t.Errorf("valid Issuer: %d objects, errors %v", len(objs), errs)
	}
}

func TestCertManagerOverlay(t *testing.T) {
	s := load(t, fileCertManager)
	checkInjector(t, s)
	checkNoSecretAccess(t, s)

	wh := one[*admissionregistrationv1.MutatingWebhookConfiguration](t, s, injectorName)
	from := wh.Annotations[annotationCA]
	ns, name, ok := strings.Cut(from, "/")
	if !ok {
		t.Fatalf("webhook annotation %s=%q: want NAMESPACE/CERTIFICATE", annotationCA, from)
	}
	cert := one[*Certificate](t, s, name)
	if cert.Namespace != ns {
		t.Errorf("%s names namespace %q, Certificate %s is in %q", annotationCA, ns, name, cert.Namespace)
	}
	if got := tlsSecretName(t, s); cert.Spec.SecretName != got {
		t.Errorf("Certificate %s writes Secret %q, the injector mounts %q", name, cert.Spec.SecretName, got)
	}
	svc := one[*corev1.Service](t, s, injectorName)
	for _, dns := range []string{svc.Name + "." + svc.Namespace + ".svc", svc.Name + "." + svc.Namespace + ".svc.cluster.local"} {
		if !slices.Contains(cert.Spec.DNSNames, dns) {
			t.Errorf("Certificate %s dnsNames %v lack %q (the API server dials the Service by that name)", name, cert.Spec.DNSNames, dns)
		}
	}
	if cert.Spec.IsCA {
		t.Errorf("Certificate %s is the serving certificate, yet isCA", name)
	}
	for _, wh := range wh.Webhooks {
		if len(wh.ClientConfig.CABundle) != 0 {
			t.Errorf("webhook %s has a caBundle in the manifest; cainjector fills it", wh.Name)
		}
	}
	// Follow the issuer chain up to a self-signed root: serving certificate
	// -> CA issuer -> CA certificate (isCA) -> self-signed issuer.
	issuer := issuerOf(t, s, cert)
	if issuer.Spec.CA == nil {
		t.Fatalf("Issuer %s of the serving certificate is not a CA issuer", issuer.Name)
	}
	var caCert *Certificate
	for _, c := range all[*Certificate](s) {
		if c.Spec.SecretName == issuer.Spec.CA.SecretName {
			caCert = c
		}
	}
	if caCert == nil {
		t.Fatalf("no Certificate writes Secret %q, the CA of Issuer %s", issuer.Spec.CA.SecretName, issuer.Name)
	}
	if !caCert.Spec.IsCA {
		t.Errorf("Certificate %s backs CA Issuer %s but is not isCA", caCert.Name, issuer.Name)
	}
	if root := issuerOf(t, s, caCert); root.Spec.SelfSigned == nil {
		t.Errorf("CA Certificate %s is issued by %s, which is not self-signed", caCert.Name, root.Name)
	}
	for _, c := range all[*Certificate](s) {
		if c.Spec.Duration != nil && c.Spec.RenewBefore != nil && c.Spec.RenewBefore.Duration >= c.Spec.Duration.Duration {
			t.Errorf("Certificate %s renews before %v but lives only %v", c.Name, c.Spec.RenewBefore.Duration, c.Spec.Duration.Duration)
		}
	}
}

func issuerOf(t *testing.T, s *set, c *Certificate) *Issuer {
	t.Helper()
	ref := c.Spec.IssuerRef
	if ref.Kind != "" && ref.Kind != "Issuer" || ref.Group != "" && ref.Group != certManagerV1.Group {
		t.Fatalf("Certificate %s: issuerRef %+v is not a namespaced cert-manager Issuer of this installation", c.Name, ref)
	}
	is := one[*Issuer](t, s, ref.Name)
	if is.Namespace != c.Namespace {
		t.Fatalf("Certificate %s (namespace %s) refers to Issuer %s in %s", c.Name, c.Namespace, is.Name, is.Namespace)
	}
	return is
}

func TestBuiltinCertsOverlay(t *testing.T) {
	s := load(t, fileBuiltinCerts)
	checkInjector(t, s)

	wh := one[*admissionregistrationv1.MutatingWebhookConfiguration](t, s, injectorName)
	if v, ok := wh.Annotations[annotationCA]; ok {
		t.Errorf("builtin-certs: webhook carries %s=%q; the injector patches caBundle itself", annotationCA, v)
	}
	if len(all[*Certificate](s))+len(all[*Issuer](s)) != 0 {
		t.Errorf("builtin-certs: cert-manager objects present")
	}

	dep := one[*appsv1.Deployment](t, s, injectorName)
	c := injectorContainer(t, dep)
	secretName := flagValue(c.Args, "--cert-secret")
	webhookName := flagValue(c.Args, "--webhook-config")
	if !slices.Contains(c.Args, "--builtin-certs") || secretName == "" || webhookName == "" {
		t.Fatalf("builtin-certs: injector args %q lack --builtin-certs, --cert-secret=NAME or --webhook-config=NAME", c.Args)
	}
	if webhookName != wh.Name {
		t.Errorf("--webhook-config=%s, the webhook is %s", webhookName, wh.Name)
	}
	sec := one[*corev1.Secret](t, s, secretName)
	if len(sec.Data)+len(sec.StringData) != 0 {
		t.Errorf("Secret %s ships with data; the injector fills it (re-applying must not reset it)", sec.Name)
	}
	// The injector fills the Secret; the Deployment mounts that same Secret
	// where --tls-cert and --tls-key point.
	if got := tlsSecretName(t, s); got != secretName {
		t.Errorf("builtin-certs: --cert-secret=%s, but the certificate directory is Secret %q", secretName, got)
	}

	sa := dep.Spec.Template.Spec.ServiceAccountName
	// Secret: read and update this one Secret only.
	if !granted(s, sa, dep.Namespace, "", "secrets", secretName, "get", "update") {
		t.Errorf("builtin-certs: ServiceAccount %s may not get and update Secret %s", sa, secretName)
	}
	// Webhook: patch caBundle of this one configuration only.
	if !granted(s, sa, dep.Namespace, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", wh.Name, "get", "patch") {
		t.Errorf("builtin-certs: ServiceAccount %s may not get and patch MutatingWebhookConfiguration %s", sa, wh.Name)
	}
}

// TestExampleApp checks the example workload opts in, reaches the webhook,
// and is still admitted by its namespace's Pod Security level once injected
// (by internal/inject itself, with the default configuration).
func TestExampleApp(t *testing.T) {
	s := load(t, fileExampleApp)
	nss := all[*corev1.Namespace](s)
	deps := all[*appsv1.Deployment](s)
	if len(nss) != 1 || len(deps) != 1 {
		t.Fatalf("example: want one Namespace and one Deployment, got %d and %d", len(nss), len(deps))
	}
	ns, dep := nss[0], deps[0]
	if dep.Namespace != ns.Name {
		t.Fatalf("example: Deployment %s is in %q, the Namespace is %q", dep.Name, dep.Namespace, ns.Name)
	}
	if ns.Labels[inject.LabelNamespaceInjection] != "enabled" {
		t.Errorf("example: namespace %s lacks %s=enabled", ns.Name, inject.LabelNamespaceInjection)
	}
	tmpl := dep.Spec.Template
	if tmpl.Labels[inject.LabelPodInject] != "true" {
		t.Errorf("example: pod template lacks %s=true", inject.LabelPodInject)
	}
	checkSelectorMatches(t, "example Deployment", dep.Spec.Selector, tmpl.Labels)
	known := []string{
		inject.AnnotationSidecarMode, inject.AnnotationCapture, inject.AnnotationShareProcessNamespace,
		inject.AnnotationCPURequest, inject.AnnotationMemoryRequest, inject.AnnotationCPULimit, inject.AnnotationMemoryLimit,
	}
	for k := range tmpl.Annotations {
		if strings.HasPrefix(k, "triage.dev/") && !slices.Contains(known, k) {
			t.Errorf("example: annotation %s is not one the injector reads (%v)", k, known)
		}
	}

	// The webhook as the cert-manager overlay renders it calls for this pod.
	nsLabels := withNameLabel(ns)
	if dir := os.Getenv(EnvDir); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, fileCertManager)); err == nil {
			cfg := one[*admissionregistrationv1.MutatingWebhookConfiguration](t, load(t, fileCertManager), injectorName)
			if reaches(t, cfg, nsLabels, tmpl.Labels) != 1 {
				t.Errorf("example: the webhook's selectors do not select the example pod (namespace labels %v, pod labels %v)", nsLabels, tmpl.Labels)
			}
		}
	}

	level := enforceLevel(t, ns)
	pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	pod.Namespace = ns.Name
	if why := evaluate(t, level, &pod.ObjectMeta, &pod.Spec); why != "" {
		t.Errorf("example: pod rejected by Pod Security %s before injection: %s", level.String(), why)
	}
	res, err := inject.Mutate(pod, inject.Namespace{Name: ns.Name, Labels: nsLabels}, inject.DefaultConfig())
	if err != nil {
		t.Fatalf("inject.Mutate: %v", err)
	}
	if !res.Injected {
		t.Fatalf("example: not injected: %s", res.Decision.Reason)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("example: injection warnings: %q", res.Warnings)
	}
	if why := evaluate(t, level, &res.Pod.ObjectMeta, &res.Pod.Spec); why != "" {
		t.Errorf("example: injected pod rejected by Pod Security %s: %s", level.String(), why)
	}
}

// checkInjector checks what both overlays share.
func checkInjector(t *testing.T, s *set) {
	t.Helper()
	nss := all[*corev1.Namespace](s)
	if len(nss) != 1 {
		t.Fatalf("%s: want one Namespace, got %d", s.file, len(nss))
	}
	ns := nss[0]
	if ns.Name != inject.DefaultConfig().OwnNamespace {
		t.Errorf("%s: namespace %q, internal/inject's Config.OwnNamespace default is %q", s.file, ns.Name, inject.DefaultConfig().OwnNamespace)
	}
	checkNamespaces(t, s, ns.Name)
	dep := one[*appsv1.Deployment](t, s, injectorName)
	checkDeployment(t, s, dep, ns)
	checkPDB(t, s, dep)
	checkService(t, s, dep)
	checkNetworkPolicy(t, s, dep)
	checkRBAC(t, s, dep)
	checkWebhook(t, s, ns)
}

var clusterScoped = []string{"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}

func checkNamespaces(t *testing.T, s *set, want string) {
	t.Helper()
	for _, o := range s.objs {
		got := o.meta().GetNamespace()
		switch {
		case slices.Contains(clusterScoped, o.gvk.Kind) && got != "":
			t.Errorf("%s: %v is cluster-scoped but has a namespace", s.file, o)
		case !slices.Contains(clusterScoped, o.gvk.Kind) && got != want:
			t.Errorf("%s: %v: namespace %q, want %q", s.file, o, got, want)
		}
	}
}

func checkDeployment(t *testing.T, s *set, dep *appsv1.Deployment, ns *corev1.Namespace) {
	t.Helper()
	if r := dep.Spec.Replicas; r == nil || *r != 2 {
		t.Errorf("injector Deployment: replicas %v, want 2", deref(r))
	}
	tmpl := dep.Spec.Template
	checkSelectorMatches(t, "injector Deployment", dep.Spec.Selector, tmpl.Labels)
	if v := tmpl.Labels[inject.LabelPodInject]; v != "false" {
		t.Errorf("injector pods: label %s=%q, want \"false\" (never inject the injector)", inject.LabelPodInject, v)
	}
	spec := tmpl.Spec
	if spec.ServiceAccountName == "" || !has[*corev1.ServiceAccount](s, spec.ServiceAccountName) {
		t.Errorf("injector pods: ServiceAccount %q is not part of the installation", spec.ServiceAccountName)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("injector pods: host namespaces in use")
	}

	// Restricted Pod Security Standard, by the upstream evaluator, and the
	// namespace enforces it.
	if why := evaluate(t, restricted, &tmpl.ObjectMeta, &spec); why != "" {
		t.Errorf("injector pods fail the restricted Pod Security Standard: %s", why)
	}
	if lvl := enforceLevel(t, ns); lvl.Level != psaapi.LevelRestricted {
		t.Errorf("namespace %s enforces %s, want restricted", ns.Name, lvl.String())
	}

	c := injectorContainer(t, dep)
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Errorf("injector pods: %d containers and %d init containers, want one container", len(spec.Containers), len(spec.InitContainers))
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("injector container: no securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("injector container: root filesystem not read-only")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("injector container: allowPrivilegeEscalation not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("injector container: capabilities %+v, want drop [ALL] and nothing added", sc.Capabilities)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("injector container: privileged")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("injector container: no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok && r == corev1.ResourceMemory {
			t.Errorf("injector container: no %s limit", r)
		}
	}
	if port, ok := containerPort(c, intstr.FromInt32(injectorPort)); !ok || port.Protocol != corev1.ProtocolTCP {
		t.Errorf("injector container: does not declare TCP port %d", injectorPort)
	}

	// Probes: HTTPS on the webhook port, /healthz for liveness, /readyz for
	// readiness.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"startup", c.StartupProbe, ""},
	} {
		if p.probe == nil {
			if p.path != "" {
				t.Errorf("injector container: no %s probe", p.name)
			}
			continue
		}
		g := p.probe.HTTPGet
		if g == nil {
			t.Errorf("injector %s probe: not httpGet", p.name)
			continue
		}
		if p.path != "" && g.Path != p.path {
			t.Errorf("injector %s probe: path %q, want %q", p.name, g.Path, p.path)
		}
		if g.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("injector %s probe: scheme %q, want HTTPS", p.name, g.Scheme)
		}
		if port, ok := containerPort(c, g.Port); !ok || port.ContainerPort != injectorPort {
			t.Errorf("injector %s probe: port %s is not the container's %d", p.name, g.Port.String(), injectorPort)
		}
	}

	// Serving certificate files come from a mounted volume.
	for _, flag := range []string{"--tls-cert", "--tls-key"} {
		v := flagValue(c.Args, flag)
		if v == "" || !path.IsAbs(v) {
			t.Errorf("injector container: args %q lack %s=/ABSOLUTE/PATH", c.Args, flag)
			continue
		}
		mountFor(t, dep, c, path.Dir(v))
	}
	if flagValue(c.Args, "--kubeconfig") != "" {
		t.Errorf("injector container: --kubeconfig set; in the cluster the injector uses its ServiceAccount")
	}
	if got := tlsSecretName(t, s); got != "" && !has[*corev1.Secret](s, got) && len(all[*Certificate](s)) == 0 {
		t.Errorf("injector mounts Secret %s, which nothing in the installation provides", got)
	}

	// Spread over nodes: a topology spread constraint or pod anti-affinity
	// on the hostname that selects the injector's own pods.
	spread := false
	for _, tsc := range spec.TopologySpreadConstraints {
		if tsc.TopologyKey == hostnameLabel && selectorMatches(tsc.LabelSelector, tmpl.Labels) {
			spread = true
		}
	}
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if w.PodAffinityTerm.TopologyKey == hostnameLabel && selectorMatches(w.PodAffinityTerm.LabelSelector, tmpl.Labels) {
				spread = true
			}
		}
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == hostnameLabel && selectorMatches(term.LabelSelector, tmpl.Labels) {
				spread = true
			}
		}
	}
	if !spread {
		t.Errorf("injector pods: no topology spread or anti-affinity over %s", hostnameLabel)
	}
	if st := dep.Spec.Strategy; st.RollingUpdate != nil && st.RollingUpdate.MaxUnavailable != nil && st.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("injector Deployment: maxUnavailable %s; a rollout should never drop below two ready replicas", st.RollingUpdate.MaxUnavailable.String())
	}
}

func checkPDB(t *testing.T, s *set, dep *appsv1.Deployment) {
	t.Helper()
	pdbs := all[*policyv1.PodDisruptionBudget](s)
	if len(pdbs) != 1 {
		t.Fatalf("%s: want one PodDisruptionBudget, got %d", s.file, len(pdbs))
	}
	pdb := pdbs[0]
	if m := pdb.Spec.MinAvailable; m == nil || m.Type != intstr.Int || m.IntVal != 1 {
		t.Errorf("PodDisruptionBudget %s: minAvailable %v, want 1", pdb.Name, m)
	}
	if pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget %s: both minAvailable and maxUnavailable", pdb.Name)
	}
	checkSelectorMatches(t, "PodDisruptionBudget "+pdb.Name, pdb.Spec.Selector, dep.Spec.Template.Labels)
}

func checkService(t *testing.T, s *set, dep *appsv1.Deployment) {
	t.Helper()
	svc := one[*corev1.Service](t, s, injectorName)
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service %s: selector %v does not select the injector pods %v", svc.Name, svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	c := injectorContainer(t, dep)
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service %s: %d ports, want 1", svc.Name, len(svc.Spec.Ports))
	}
	p := svc.Spec.Ports[0]
	if p.Port != webhookPort || (p.Protocol != "" && p.Protocol != corev1.ProtocolTCP) {
		t.Errorf("Service %s: port %d/%s, want %d/TCP", svc.Name, p.Port, p.Protocol, webhookPort)
	}
	if cp, ok := containerPort(c, p.TargetPort); !ok || cp.ContainerPort != injectorPort {
		t.Errorf("Service %s: targetPort %s is not the injector's %d", svc.Name, p.TargetPort.String(), injectorPort)
	}
}

func checkNetworkPolicy(t *testing.T, s *set, dep *appsv1.Deployment) {
	t.Helper()
	var nps []*networkingv1.NetworkPolicy
	for _, np := range all[*networkingv1.NetworkPolicy](s) {
		if selectorMatches(&np.Spec.PodSelector, dep.Spec.Template.Labels) {
			nps = append(nps, np)
		}
	}
	if len(nps) != 1 {
		t.Fatalf("%s: want one NetworkPolicy selecting the injector pods, got %d", s.file, len(nps))
	}
	np := nps[0]
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("NetworkPolicy %s: policyTypes %v lack Ingress", np.Name, np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) == 0 {
		t.Errorf("NetworkPolicy %s: no ingress rule (the API server could not reach the webhook)", np.Name)
	}
	c := injectorContainer(t, dep)
	for i, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 {
			t.Errorf("NetworkPolicy %s: ingress rule %d opens every port", np.Name, i)
		}
		for _, p := range r.Ports {
			if p.Port == nil || p.EndPort != nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
				t.Errorf("NetworkPolicy %s: ingress rule %d port %+v, want TCP %d only", np.Name, i, p, injectorPort)
				continue
			}
			if cp, ok := containerPort(c, *p.Port); !ok || cp.ContainerPort != injectorPort {
				t.Errorf("NetworkPolicy %s: ingress rule %d opens port %s, want only %d", np.Name, i, p.Port.String(), injectorPort)
			}
		}
	}
}

func checkRBAC(t *testing.T, s *set, dep *appsv1.Deployment) {
	t.Helper()
	sa := dep.Spec.Template.Spec.ServiceAccountName
	if !granted(s, sa, dep.Namespace, "", "namespaces", "", "get", "list", "watch") {
		t.Errorf("ServiceAccount %s may not get, list and watch namespaces (the injector reads their labels)", sa)
	}
	check := func(kind, name string, rules []rbacv1.PolicyRule) {
		for _, r := range rules {
			for _, list := range [][]string{r.Verbs, r.Resources, r.APIGroups, r.ResourceNames} {
				if slices.Contains(list, "*") {
					t.Errorf("%s %s: wildcard in rule %+v", kind, name, r)
				}
			}
			for _, v := range r.Verbs {
				if slices.Contains([]string{"create", "delete", "deletecollection", "escalate", "bind", "impersonate"}, v) {
					t.Errorf("%s %s: verb %s in rule %+v; the injector needs none", kind, name, v, r)
				}
			}
			for _, res := range r.Resources {
				if (res == "secrets" || res == "mutatingwebhookconfigurations") && len(r.ResourceNames) == 0 {
					t.Errorf("%s %s: %s without resourceNames (only triage's own may be touched)", kind, name, res)
				}
			}
			if len(r.NonResourceURLs) != 0 {
				t.Errorf("%s %s: nonResourceURLs %v", kind, name, r.NonResourceURLs)
			}
		}
	}
	for _, r := range all[*rbacv1.ClusterRole](s) {
		if !isAccess(r) {
			check("ClusterRole", r.Name, r.Rules)
		}
	}
	for _, r := range all[*rbacv1.Role](s) {
		if !isAccess(r) {
			check("Role", r.Name, r.Rules)
		}
	}
	for _, b := range all[*rbacv1.ClusterRoleBinding](s) {
		checkBinding(t, s, "ClusterRoleBinding "+b.Name, b.RoleRef, b.Subjects, dep.Namespace, sa)
	}
	for _, b := range all[*rbacv1.RoleBinding](s) {
		if !isAccess(b) {
			checkBinding(t, s, "RoleBinding "+b.Name, b.RoleRef, b.Subjects, dep.Namespace, sa)
		}
	}
	checkAccess(t, s, dep.Namespace)
}

// isAccess reports whether o is one of the access objects (tier
// ServiceAccounts and who may mint their tokens), which are for people, not
// for the injector.
func isAccess(o metav1.Object) bool {
	return o.GetLabels()["app.kubernetes.io/component"] == "access"
}

// checkAccess: the four tier ServiceAccounts exist with no token mounted
// anywhere, each tier's minter Role grants create on exactly the tokens of
// its tier and the tiers below (cumulative, nothing else), is bound to its
// group only, and the triage-user ClusterRole grants finding pods and
// port-forwarding and nothing that writes.
func checkAccess(t *testing.T, s *set, ns string) {
	t.Helper()
	tiers := []string{"viewer", "profiler", "capturer", "operator"}
	for i, tier := range tiers {
		sa := one[*corev1.ServiceAccount](t, s, "triage-"+tier)
		if sa.Namespace != ns || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount triage-%s: namespace %q, automountServiceAccountToken %v; want %s and false", tier, sa.Namespace, sa.AutomountServiceAccountToken, ns)
		}
		role := one[*rbacv1.Role](t, s, "triage-"+tier+"-minter")
		var want []string
		for _, lower := range tiers[:i+1] {
			want = append(want, "triage-"+lower)
		}
		if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"serviceaccounts/token"}) ||
			!slices.Equal(role.Rules[0].Verbs, []string{"create"}) || !slices.Equal(role.Rules[0].ResourceNames, want) {
			t.Errorf("Role %s: rules %+v; want create on serviceaccounts/token named %v", role.Name, role.Rules, want)
		}
		b := one[*rbacv1.RoleBinding](t, s, "triage-"+tier+"-minter")
		if b.RoleRef.Kind != "Role" || b.RoleRef.Name != role.Name || len(b.Subjects) != 1 || b.Subjects[0].Kind != rbacv1.GroupKind || b.Subjects[0].Name != "triage:"+tier+"s" {
			t.Errorf("RoleBinding %s: roleRef %+v subjects %+v; want Role %s to group triage:%ss", b.Name, b.RoleRef, b.Subjects, role.Name, tier)
		}
	}
	user := one[*rbacv1.ClusterRole](t, s, "triage-user")
	for _, r := range user.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && !(v == "create" && slices.Equal(r.Resources, []string{"pods/portforward"})) {
				t.Errorf("ClusterRole triage-user: verb %s on %v; it should only read and port-forward", v, r.Resources)
			}
		}
	}
}

func checkBinding(t *testing.T, s *set, what string, ref rbacv1.RoleRef, subjects []rbacv1.Subject, ns, sa string) {
	t.Helper()
	switch {
	case ref.APIGroup != rbacv1.GroupName:
		t.Errorf("%s: roleRef apiGroup %q", what, ref.APIGroup)
	case ref.Kind == "ClusterRole" && !has[*rbacv1.ClusterRole](s, ref.Name),
		ref.Kind == "Role" && !has[*rbacv1.Role](s, ref.Name):
		t.Errorf("%s: roleRef %s %s is not part of the installation", what, ref.Kind, ref.Name)
	}
	for _, sub := range subjects {
		if sub.Kind != rbacv1.ServiceAccountKind || sub.Name != sa || sub.Namespace != ns {
			t.Errorf("%s: subject %+v, want only ServiceAccount %s/%s", what, sub, ns, sa)
		}
	}
}

// granted reports whether ServiceAccount ns/sa gets every verb on resource
// (in group; name "" means any object) through the installation's bindings.
func granted(s *set, sa, ns, group, resource, name string, verbs ...string) bool {
	isSA := func(subs []rbacv1.Subject) bool {
		return slices.ContainsFunc(subs, func(sub rbacv1.Subject) bool {
			return sub.Kind == rbacv1.ServiceAccountKind && sub.Name == sa && sub.Namespace == ns
		})
	}
	var rules []rbacv1.PolicyRule
	rulesOf := func(ref rbacv1.RoleRef) {
		switch ref.Kind {
		case "ClusterRole":
			for _, r := range all[*rbacv1.ClusterRole](s) {
				if r.Name == ref.Name {
					rules = append(rules, r.Rules...)
				}
			}
		case "Role":
			for _, r := range all[*rbacv1.Role](s) {
				if r.Name == ref.Name && r.Namespace == ns {
					rules = append(rules, r.Rules...)
				}
			}
		}
	}
	for _, b := range all[*rbacv1.ClusterRoleBinding](s) {
		if isSA(b.Subjects) {
			rulesOf(b.RoleRef)
		}
	}
	for _, b := range all[*rbacv1.RoleBinding](s) {
		if b.Namespace == ns && isSA(b.Subjects) {
			rulesOf(b.RoleRef)
		}
	}
	for _, v := range verbs {
		if !slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, v) &&
				(len(r.ResourceNames) == 0 || name != "" && slices.Contains(r.ResourceNames, name))
		}) {
			return false
		}
	}
	return true
}

func checkNoSecretAccess(t *testing.T, s *set) {
	t.Helper()
	for _, r := range all[*rbacv1.Role](s) {
		for _, rule := range r.Rules {
			if slices.Contains(rule.Resources, "secrets") {
				t.Errorf("%s: Role %s grants access to Secrets; with cert-manager the injector needs none", s.file, r.Name)
			}
		}
	}
	for _, r := range all[*rbacv1.ClusterRole](s) {
		for _, rule := range r.Rules {
			if slices.Contains(rule.Resources, "secrets") || slices.Contains(rule.Resources, "mutatingwebhookconfigurations") {
				t.Errorf("%s: ClusterRole %s grants %v; with cert-manager the injector needs neither", s.file, r.Name, rule.Resources)
			}
		}
	}
}

func checkWebhook(t *testing.T, s *set, ns *corev1.Namespace) {
	t.Helper()
	cfgs := all[*admissionregistrationv1.MutatingWebhookConfiguration](s)
	if len(cfgs) != 1 || len(all[*admissionregistrationv1.ValidatingWebhookConfiguration](s)) != 0 {
		t.Fatalf("%s: want exactly one MutatingWebhookConfiguration and no validating one", s.file)
	}
	cfg := cfgs[0]
	if cfg.Name != injectorName || len(cfg.Webhooks) != 2 {
		t.Fatalf("MutatingWebhookConfiguration %s: %d webhooks, want two in %s (namespace opt-in, pod opt-in)", cfg.Name, len(cfg.Webhooks), injectorName)
	}
	for i := range cfg.Webhooks {
		checkWebhookEntry(t, s, &cfg.Webhooks[i])
	}

	// The selectors, evaluated together: a pod reaches the webhook through
	// exactly one entry when it opted in (its namespace's label, or its own
	// triage.dev/inject=true, the pod's word winning), never twice, and never
	// in the system namespaces or triage's own.
	enabled := map[string]string{inject.LabelNamespaceInjection: "enabled"}
	podTrue := map[string]string{inject.LabelPodInject: "true"}
	podFalse := map[string]string{inject.LabelPodInject: "false"}
	shop := map[string]string{nameLabel: "shop"}
	cases := []struct {
		ns, pod map[string]string
		want    int
	}{
		{merge(enabled, shop), nil, 1},
		{merge(enabled, shop), map[string]string{"app": "shop"}, 1},
		{merge(enabled, shop), podTrue, 1},
		{merge(enabled, shop), podFalse, 0},
		{shop, nil, 0},
		{shop, podTrue, 1},
		{shop, podFalse, 0},
		{merge(map[string]string{inject.LabelNamespaceInjection: "disabled"}, shop), podTrue, 1},
		{merge(map[string]string{inject.LabelNamespaceInjection: "disabled"}, shop), nil, 0},
		{withNameLabel(ns), podTrue, 0},
		{merge(ns.Labels, enabled, map[string]string{nameLabel: ns.Name}), nil, 0},
	}
	for _, excluded := range append(slices.Clone(inject.SystemNamespaces), inject.DefaultConfig().OwnNamespace) {
		for _, pod := range []map[string]string{nil, podTrue} {
			cases = append(cases, struct {
				ns, pod map[string]string
				want    int
			}{merge(enabled, map[string]string{nameLabel: excluded}), pod, 0}, struct {
				ns, pod map[string]string
				want    int
			}{map[string]string{nameLabel: excluded}, pod, 0})
		}
	}
	for _, c := range cases {
		if got := reaches(t, cfg, c.ns, c.pod); got != c.want {
			t.Errorf("namespace labels %v, pod labels %v: reaches %d webhook entries, want %d", c.ns, c.pod, got, c.want)
		}
	}
}

// reaches counts the webhook entries whose selectors both match.
func reaches(t *testing.T, cfg *admissionregistrationv1.MutatingWebhookConfiguration, nsLabels, podLabels map[string]string) int {
	t.Helper()
	n := 0
	for _, wh := range cfg.Webhooks {
		if selects(t, wh.NamespaceSelector, nsLabels) && selects(t, wh.ObjectSelector, podLabels) {
			n++
		}
	}
	return n
}

// checkWebhookEntry checks one webhook entry's settings.
func checkWebhookEntry(t *testing.T, s *set, wh *admissionregistrationv1.MutatingWebhook) {
	t.Helper()
	eq := func(field string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("webhook %s: %s = %v, want %v", wh.Name, field, got, want)
		}
	}
	eq("failurePolicy", deref(wh.FailurePolicy), admissionregistrationv1.Ignore)
	eq("timeoutSeconds", deref(wh.TimeoutSeconds), 3)
	eq("reinvocationPolicy", deref(wh.ReinvocationPolicy), admissionregistrationv1.IfNeededReinvocationPolicy)
	eq("sideEffects", deref(wh.SideEffects), admissionregistrationv1.SideEffectClassNone)
	eq("matchPolicy", deref(wh.MatchPolicy), admissionregistrationv1.Equivalent)
	eq("admissionReviewVersions", wh.AdmissionReviewVersions, []string{"v1"})

	svc := one[*corev1.Service](t, s, injectorName)
	switch ref := wh.ClientConfig.Service; {
	case wh.ClientConfig.URL != nil:
		t.Errorf("webhook %s: clientConfig.url set; want the Service", wh.Name)
	case ref == nil:
		t.Errorf("webhook %s: no clientConfig.service", wh.Name)
	default:
		eq("clientConfig.service", ref.Namespace+"/"+ref.Name, svc.Namespace+"/"+svc.Name)
		eq("clientConfig.service.path", deref(ref.Path), "/mutate")
		eq("clientConfig.service.port", deref(ref.Port), webhookPort)
	}

	if len(wh.Rules) != 1 {
		t.Fatalf("webhook %s: %d rules, want one (pods CREATE)", wh.Name, len(wh.Rules))
	}
	r := wh.Rules[0]
	eq("rules[0].operations", r.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create})
	eq("rules[0].apiGroups", r.APIGroups, []string{""})
	eq("rules[0].apiVersions", r.APIVersions, []string{"v1"})
	eq("rules[0].resources", r.Resources, []string{"pods"})
	if r.Scope != nil && *r.Scope != admissionregistrationv1.NamespacedScope {
		t.Errorf("webhook %s: scope %s, want Namespaced", wh.Name, *r.Scope)
	}
}

// deref is *p, or "<unset>" for nil (for messages and comparisons).
func deref[T any](p *T) any {
	if p == nil {
		return "<unset>"
	}
	return *p
}

// --- helpers ---

func injectorContainer(t *testing.T, dep *appsv1.Deployment) *corev1.Container {
	t.Helper()
	cs := dep.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		t.Fatalf("Deployment %s: no containers", dep.Name)
	}
	return &cs[0]
}

// containerPort resolves a port given by number or name on c.
func containerPort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// flagValue returns the value of --name=value in args ("" when absent).
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// mountFor returns c's mount at dir and its volume, failing when absent.
func mountFor(t *testing.T, dep *appsv1.Deployment, c *corev1.Container, dir string) (corev1.VolumeMount, corev1.Volume) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(dir) {
			for _, v := range dep.Spec.Template.Spec.Volumes {
				if v.Name == m.Name {
					return m, v
				}
			}
			t.Fatalf("Deployment %s: mount %s uses volume %q, which is not defined", dep.Name, dir, m.Name)
		}
	}
	t.Fatalf("Deployment %s: container %s mounts nothing at %s", dep.Name, c.Name, dir)
	return corev1.VolumeMount{}, corev1.Volume{}
}

// tlsSecretName is the Secret behind the injector's certificate directory
// ("" when that directory is not a Secret volume).
func tlsSecretName(t *testing.T, s *set) string {
	t.Helper()
	dep := one[*appsv1.Deployment](t, s, injectorName)
	c := injectorContainer(t, dep)
	_, v := mountFor(t, dep, c, path.Dir(flagValue(c.Args, "--tls-cert")))
	if v.Secret == nil {
		return ""
	}
	return v.Secret.SecretName
}

func selectorMatches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(lbls))
}

func checkSelectorMatches(t *testing.T, what string, sel *metav1.LabelSelector, lbls map[string]string) {
	t.Helper()
	if !selectorMatches(sel, lbls) {
		t.Errorf("%s: selector %v does not select the pod template labels %v", what, sel, lbls)
	}
}

// selects evaluates a webhook selector as the API server does (nil selects
// everything).
func selects(t *testing.T, sel *metav1.LabelSelector, lbls map[string]string) bool {
	t.Helper()
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(lbls))
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// withNameLabel is ns's labels as the API server stores them.
func withNameLabel(ns *corev1.Namespace) map[string]string {
	return merge(ns.Labels, map[string]string{nameLabel: ns.Name})
}

func enforceLevel(t *testing.T, ns *corev1.Namespace) psaapi.LevelVersion {
	t.Helper()
	p, errs := psaapi.PolicyToEvaluate(ns.Labels, inject.DefaultConfig().PodSecurityDefaults)
	if len(errs) != 0 {
		t.Fatalf("namespace %s: pod-security labels: %v", ns.Name, errs)
	}
	return p.Enforce
}

var evaluator = func() policy.Evaluator {
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return ev
}()

// evaluate returns why Pod Security admission at lv rejects the pod, or "".
func evaluate(t *testing.T, lv psaapi.LevelVersion, meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
	t.Helper()
	agg := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, meta, spec))
	if agg.Allowed {
		return ""
	}
	return agg.ForbiddenReason() + ": " + agg.ForbiddenDetail()
}
