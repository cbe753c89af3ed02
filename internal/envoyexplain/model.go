package envoyexplain

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/envoyadmin"
)

// Input is what explain reads. Dump is required; the rest is optional and
// adds live health, certificate expiry and counters.
type Input struct {
	// Dump is a decoded /config_dump (include_eds for endpoints).
	Dump *adminv3.ConfigDump
	// Unknown and Legacy come from envoyadmin.ConfigDump, to report.
	Unknown []envoyadmin.UnknownType
	Legacy  []envoyadmin.TypeCount
	// Clusters is /clusters?format=json: live host health.
	Clusters *adminv3.Clusters
	// Certs is /certs.
	Certs *adminv3.Certificates
	// Stats are /stats (text or JSON), for circuit breakers and resets.
	Stats []envoyadmin.Stat
	// Now is the time certificates are judged at; zero means time.Now().
	Now time.Time
}

// FromConfigDump returns an Input for a decoded dump.
func FromConfigDump(d *envoyadmin.ConfigDump) Input {
	return Input{Dump: d.Dump, Unknown: d.Unknown, Legacy: d.Legacy}
}

const typePrefix = "type.googleapis.com/"

// legacyV3 maps v2 types to their v3 successors: envoyadmin decodes a v2
// resource as its v3 type (keeping the v2 type URL), so its bytes are v3.
var legacyV3 = envoyadmin.LegacyV3

// unpack decodes a into m when a holds m's type, or the v2 type m succeeds.
// It returns the v2 type name when it upgraded, and false when a holds
// another type or does not decode.
func unpack(a *anypb.Any, m proto.Message) (legacy string, ok bool) {
	if a == nil {
		return "", false
	}
	name := strings.TrimPrefix(a.GetTypeUrl(), typePrefix)
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	want := string(m.ProtoReflect().Descriptor().FullName())
	if name != want {
		if legacyV3[name] != want {
			return "", false
		}
		legacy = name
	}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(a.GetValue(), m); err != nil {
		return "", false
	}
	return legacy, true
}

func typeName(a *anypb.Any) string {
	name := strings.TrimPrefix(a.GetTypeUrl(), typePrefix)
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// Model indexes a dump for Explain and Match. Build it once with NewModel
// and ask it many questions.
type Model struct {
	in  Input
	now time.Time

	node *Node

	listeners []*listenerEntry
	routes    []*routeEntry            // static, dynamic, then inline
	routeByNm map[string][]*routeEntry // by name (inline names may repeat)
	clusters  []*clusterEntry
	clusterBy map[string]*clusterEntry
	// endpoints by cluster name (EDS section), in dump order of names.
	eds      map[string]*endpointv3.ClusterLoadAssignment
	edsOrder []string
	secrets  []*secretEntry
	// rejected resources outside the listener/cluster/route lists (EDS,
	// secrets, ECDS, scoped routes).
	otherRejected []rejected
	live          map[string]*adminv3.ClusterStatus

	hasListeners, hasClusters, hasRoutes, hasEDS bool
	scopedRoutes                                 int
}

type rejected struct {
	kind, name string
	state      *adminv3.UpdateFailureState
	status     adminv3.ClientResourceStatus
}

type listenerEntry struct {
	name    string
	res     Resource
	l       *listenerv3.Listener // active (or warming/draining when alone)
	warming bool
	status  adminv3.ClientResourceStatus
	errSt   *adminv3.UpdateFailureState
	hcms    []hcmRef
	tcps    []tcpRef
}

type hcmRef struct {
	chain int
	hcm   *hcmv3.HttpConnectionManager
	route *routeEntry // inline one, or nil
}

type tcpRef struct {
	chain int
	tcp   *tcpproxyv3.TcpProxy
}

type routeEntry struct {
	name   string
	res    Resource
	rc     *routev3.RouteConfiguration
	usedBy []string
	errSt  *adminv3.UpdateFailureState
	status adminv3.ClientResourceStatus
	// paired: a static entry matched to a listener's inline route config.
	paired bool
	// hcm is the (first) HCM that uses it, for its host port handling.
	hcm          *hcmv3.HttpConnectionManager
	listenerPort uint32
}

type clusterEntry struct {
	name    string
	res     Resource
	c       *clusterv3.Cluster
	warming bool
	errSt   *adminv3.UpdateFailureState
	status  adminv3.ClientResourceStatus
	refs    int
}

type secretEntry struct {
	name   string
	res    Resource
	s      *tlsv3.Secret
	errSt  *adminv3.UpdateFailureState
	status adminv3.ClientResourceStatus
}

// NewModel indexes in.
func NewModel(in Input) *Model {
	m := &Model{
		in: in, now: in.Now,
		routeByNm: map[string][]*routeEntry{},
		clusterBy: map[string]*clusterEntry{},
		eds:       map[string]*endpointv3.ClusterLoadAssignment{},
	}
	if m.now.IsZero() {
		m.now = time.Now()
	}
	for _, a := range in.Dump.GetConfigs() {
		m.addConfig(a)
	}
	// Inline route configs, in listener order, after static and RDS.
	for _, l := range m.listeners {
		m.indexListener(l)
	}
	for _, r := range m.routes {
		for _, ref := range routeClusters(r.rc) {
			if c := m.clusterBy[ref]; c != nil {
				c.refs++
			}
		}
	}
	for _, l := range m.listeners {
		for _, t := range l.tcps {
			for _, ref := range tcpClusters(t.tcp) {
				if c := m.clusterBy[ref]; c != nil {
					c.refs++
				}
			}
		}
	}
	if in.Clusters != nil {
		m.live = make(map[string]*adminv3.ClusterStatus, len(in.Clusters.GetClusterStatuses()))
		for _, cs := range in.Clusters.GetClusterStatuses() {
			m.live[cs.GetName()] = cs
		}
	}
	return m
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func rejection(st *adminv3.UpdateFailureState) *Rejection {
	if st == nil {
		return nil
	}
	return &Rejection{Details: st.GetDetails(), Version: st.GetVersionInfo(), LastAttempt: ts(st.GetLastUpdateAttempt())}
}

func (m *Model) addConfig(a *anypb.Any) {
	switch typeName(a) {
	case "envoy.admin.v3.BootstrapConfigDump":
		d := &adminv3.BootstrapConfigDump{}
		if _, ok := unpack(a, d); ok {
			m.node = nodeOf(d.GetBootstrap())
		}
	case "envoy.admin.v3.ListenersConfigDump":
		d := &adminv3.ListenersConfigDump{}
		if _, ok := unpack(a, d); ok {
			m.hasListeners = true
			for _, s := range d.GetStaticListeners() {
				m.addStaticListener(s)
			}
			for _, dl := range d.GetDynamicListeners() {
				m.addDynamicListener(dl)
			}
		}
	case "envoy.admin.v3.ListenersConfigDump.StaticListener":
		s := &adminv3.ListenersConfigDump_StaticListener{}
		if _, ok := unpack(a, s); ok {
			m.hasListeners = true
			m.addStaticListener(s)
		}
	case "envoy.admin.v3.ListenersConfigDump.DynamicListener":
		dl := &adminv3.ListenersConfigDump_DynamicListener{}
		if _, ok := unpack(a, dl); ok {
			m.hasListeners = true
			m.addDynamicListener(dl)
		}
	case "envoy.admin.v3.ClustersConfigDump":
		d := &adminv3.ClustersConfigDump{}
		if _, ok := unpack(a, d); ok {
			m.hasClusters = true
			for _, s := range d.GetStaticClusters() {
				m.addCluster(s.GetCluster(), Resource{Source: "static", State: "active", LastUpdated: ts(s.GetLastUpdated())}, nil, 0, false)
			}
			for _, c := range d.GetDynamicActiveClusters() {
				m.addDynamicCluster(c, false)
			}
			for _, c := range d.GetDynamicWarmingClusters() {
				m.addDynamicCluster(c, true)
			}
		}
	case "envoy.admin.v3.ClustersConfigDump.StaticCluster":
		s := &adminv3.ClustersConfigDump_StaticCluster{}
		if _, ok := unpack(a, s); ok {
			m.hasClusters = true
			m.addCluster(s.GetCluster(), Resource{Source: "static", State: "active", LastUpdated: ts(s.GetLastUpdated())}, nil, 0, false)
		}
	case "envoy.admin.v3.ClustersConfigDump.DynamicCluster":
		c := &adminv3.ClustersConfigDump_DynamicCluster{}
		if _, ok := unpack(a, c); ok {
			m.hasClusters = true
			m.addDynamicCluster(c, false)
		}
	case "envoy.admin.v3.RoutesConfigDump":
		d := &adminv3.RoutesConfigDump{}
		if _, ok := unpack(a, d); ok {
			m.hasRoutes = true
			for _, s := range d.GetStaticRouteConfigs() {
				m.addRoute(s.GetRouteConfig(), Resource{Source: "static", State: "active", LastUpdated: ts(s.GetLastUpdated())}, nil, 0)
			}
			for _, r := range d.GetDynamicRouteConfigs() {
				m.addRoute(r.GetRouteConfig(), Resource{Source: "dynamic", State: "active", Version: r.GetVersionInfo(), LastUpdated: ts(r.GetLastUpdated())}, r.GetErrorState(), r.GetClientStatus())
			}
		}
	case "envoy.admin.v3.RoutesConfigDump.StaticRouteConfig":
		s := &adminv3.RoutesConfigDump_StaticRouteConfig{}
		if _, ok := unpack(a, s); ok {
			m.hasRoutes = true
			m.addRoute(s.GetRouteConfig(), Resource{Source: "static", State: "active", LastUpdated: ts(s.GetLastUpdated())}, nil, 0)
		}
	case "envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig":
		r := &adminv3.RoutesConfigDump_DynamicRouteConfig{}
		if _, ok := unpack(a, r); ok {
			m.hasRoutes = true
			m.addRoute(r.GetRouteConfig(), Resource{Source: "dynamic", State: "active", Version: r.GetVersionInfo(), LastUpdated: ts(r.GetLastUpdated())}, r.GetErrorState(), r.GetClientStatus())
		}
	case "envoy.admin.v3.EndpointsConfigDump":
		d := &adminv3.EndpointsConfigDump{}
		if _, ok := unpack(a, d); ok {
			m.hasEDS = true
			for _, s := range d.GetStaticEndpointConfigs() {
				m.addEDS(s.GetEndpointConfig(), nil, 0)
			}
			for _, e := range d.GetDynamicEndpointConfigs() {
				m.addEDS(e.GetEndpointConfig(), e.GetErrorState(), e.GetClientStatus())
			}
		}
	case "envoy.admin.v3.EndpointsConfigDump.StaticEndpointConfig":
		s := &adminv3.EndpointsConfigDump_StaticEndpointConfig{}
		if _, ok := unpack(a, s); ok {
			m.hasEDS = true
			m.addEDS(s.GetEndpointConfig(), nil, 0)
		}
	case "envoy.admin.v3.EndpointsConfigDump.DynamicEndpointConfig":
		e := &adminv3.EndpointsConfigDump_DynamicEndpointConfig{}
		if _, ok := unpack(a, e); ok {
			m.hasEDS = true
			m.addEDS(e.GetEndpointConfig(), e.GetErrorState(), e.GetClientStatus())
		}
	case "envoy.admin.v3.SecretsConfigDump":
		d := &adminv3.SecretsConfigDump{}
		if _, ok := unpack(a, d); ok {
			for _, s := range d.GetStaticSecrets() {
				m.addSecret(s.GetName(), s.GetSecret(), Resource{Source: "static", State: "active", LastUpdated: ts(s.GetLastUpdated())}, nil, 0)
			}
			for _, s := range d.GetDynamicActiveSecrets() {
				m.addDynamicSecret(s, "active")
			}
			for _, s := range d.GetDynamicWarmingSecrets() {
				m.addDynamicSecret(s, "warming")
			}
		}
	case "envoy.admin.v3.SecretsConfigDump.DynamicSecret":
		s := &adminv3.SecretsConfigDump_DynamicSecret{}
		if _, ok := unpack(a, s); ok {
			m.addDynamicSecret(s, "active")
		}
	case "envoy.admin.v3.ScopedRoutesConfigDump":
		d := &adminv3.ScopedRoutesConfigDump{}
		if _, ok := unpack(a, d); ok {
			for _, s := range d.GetInlineScopedRouteConfigs() {
				m.scopedRoutes += len(s.GetScopedRouteConfigs())
			}
			for _, s := range d.GetDynamicScopedRouteConfigs() {
				m.scopedRoutes += len(s.GetScopedRouteConfigs())
				if s.GetErrorState() != nil || s.GetClientStatus() == adminv3.ClientResourceStatus_NACKED {
					m.otherRejected = append(m.otherRejected, rejected{"scoped route config", s.GetName(), s.GetErrorState(), s.GetClientStatus()})
				}
			}
		}
	case "envoy.admin.v3.EcdsConfigDump":
		d := &adminv3.EcdsConfigDump{}
		if _, ok := unpack(a, d); ok {
			for _, f := range d.GetEcdsFilters() {
				if f.GetErrorState() != nil || f.GetClientStatus() == adminv3.ClientResourceStatus_NACKED {
					name := ""
					tc := &corev3.TypedExtensionConfig{}
					if _, ok := unpack(f.GetEcdsFilter(), tc); ok {
						name = tc.GetName()
					}
					m.otherRejected = append(m.otherRejected, rejected{"extension config (ECDS)", name, f.GetErrorState(), f.GetClientStatus()})
				}
			}
		}
	}
}

func nodeOf(b *bootstrapv3.Bootstrap) *Node {
	n := b.GetNode()
	if n == nil {
		return nil
	}
	out := &Node{ID: n.GetId(), Cluster: n.GetCluster()}
	if v := n.GetUserAgentBuildVersion().GetVersion(); v != nil {
		out.EnvoyVersion = fmt.Sprintf("%d.%d.%d", v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
	}
	if md := n.GetMetadata().GetFields(); md != nil {
		if v, ok := md["ISTIO_VERSION"]; ok {
			out.IstioVersion = v.GetStringValue()
		}
	}
	return out
}

func (m *Model) addStaticListener(s *adminv3.ListenersConfigDump_StaticListener) {
	l := &listenerv3.Listener{}
	legacy, ok := unpack(s.GetListener(), l)
	if !ok {
		return
	}
	m.listeners = append(m.listeners, &listenerEntry{name: l.GetName(), l: l,
		res: Resource{Source: "static", State: "active", LastUpdated: ts(s.GetLastUpdated()), Legacy: legacy}})
}

func (m *Model) addDynamicListener(dl *adminv3.ListenersConfigDump_DynamicListener) {
	e := &listenerEntry{name: dl.GetName(), errSt: dl.GetErrorState(), status: dl.GetClientStatus(),
		res: Resource{Source: "dynamic"}}
	var st *adminv3.ListenersConfigDump_DynamicListenerState
	switch {
	case dl.GetActiveState() != nil:
		st, e.res.State = dl.GetActiveState(), "active"
		e.warming = dl.GetWarmingState() != nil
	case dl.GetWarmingState() != nil:
		st, e.res.State = dl.GetWarmingState(), "warming"
	case dl.GetDrainingState() != nil:
		st, e.res.State = dl.GetDrainingState(), "draining"
	default:
		e.res.State = "rejected"
	}
	if st != nil {
		l := &listenerv3.Listener{}
		if legacy, ok := unpack(st.GetListener(), l); ok {
			e.l = l
			e.res.Legacy = legacy
			if e.name == "" {
				e.name = l.GetName()
			}
		}
		e.res.Version, e.res.LastUpdated = st.GetVersionInfo(), ts(st.GetLastUpdated())
	}
	e.res.Rejected = rejection(e.errSt)
	m.listeners = append(m.listeners, e)
}

func (m *Model) addDynamicCluster(c *adminv3.ClustersConfigDump_DynamicCluster, warming bool) {
	state := "active"
	if warming {
		state = "warming"
	}
	m.addCluster(c.GetCluster(), Resource{Source: "dynamic", State: state, Version: c.GetVersionInfo(), LastUpdated: ts(c.GetLastUpdated())}, c.GetErrorState(), c.GetClientStatus(), warming)
}

func (m *Model) addCluster(a *anypb.Any, res Resource, errSt *adminv3.UpdateFailureState, status adminv3.ClientResourceStatus, warming bool) {
	c := &clusterv3.Cluster{}
	legacy, ok := unpack(a, c)
	if !ok {
		if errSt == nil {
			return
		}
		// Only a rejection: the cluster Envoy refused.
		c = nil
		if f := errSt.GetFailedConfiguration(); f != nil {
			fc := &clusterv3.Cluster{}
			if _, ok := unpack(f, fc); ok {
				c = fc
			}
		}
		res.State = "rejected"
	}
	res.Legacy = legacy
	res.Rejected = rejection(errSt)
	name := c.GetName()
	if prev := m.clusterBy[name]; prev != nil && name != "" {
		// The warming version of an active cluster: one cluster, updating.
		if warming {
			prev.warming = true
		}
		if errSt != nil && prev.errSt == nil {
			prev.errSt, prev.res.Rejected = errSt, res.Rejected
		}
		return
	}
	e := &clusterEntry{name: name, res: res, c: c, warming: warming, errSt: errSt, status: status}
	m.clusters = append(m.clusters, e)
	if name != "" {
		m.clusterBy[name] = e
	}
}

func (m *Model) addRoute(a *anypb.Any, res Resource, errSt *adminv3.UpdateFailureState, status adminv3.ClientResourceStatus) {
	rc := &routev3.RouteConfiguration{}
	legacy, ok := unpack(a, rc)
	if !ok {
		if errSt == nil {
			return
		}
		rc = nil
		res.State = "rejected"
	}
	res.Legacy = legacy
	res.Rejected = rejection(errSt)
	e := &routeEntry{name: rc.GetName(), rc: rc, res: res, errSt: errSt, status: status}
	m.routes = append(m.routes, e)
	m.routeByNm[e.name] = append(m.routeByNm[e.name], e)
}

func (m *Model) addEDS(a *anypb.Any, errSt *adminv3.UpdateFailureState, status adminv3.ClientResourceStatus) {
	cla := &endpointv3.ClusterLoadAssignment{}
	if _, ok := unpack(a, cla); !ok {
		if errSt != nil || status == adminv3.ClientResourceStatus_NACKED {
			m.otherRejected = append(m.otherRejected, rejected{"endpoints (EDS)", "", errSt, status})
		}
		return
	}
	if errSt != nil || status == adminv3.ClientResourceStatus_NACKED {
		m.otherRejected = append(m.otherRejected, rejected{"endpoints (EDS)", cla.GetClusterName(), errSt, status})
	}
	name := cla.GetClusterName()
	if _, dup := m.eds[name]; !dup {
		m.edsOrder = append(m.edsOrder, name)
	}
	m.eds[name] = cla
}

func (m *Model) addDynamicSecret(s *adminv3.SecretsConfigDump_DynamicSecret, state string) {
	m.addSecret(s.GetName(), s.GetSecret(), Resource{Source: "dynamic", State: state, Version: s.GetVersionInfo(), LastUpdated: ts(s.GetLastUpdated())}, s.GetErrorState(), s.GetClientStatus())
}

func (m *Model) addSecret(name string, a *anypb.Any, res Resource, errSt *adminv3.UpdateFailureState, status adminv3.ClientResourceStatus) {
	sec := &tlsv3.Secret{}
	legacy, ok := unpack(a, sec)
	if !ok {
		sec = nil
	}
	if name == "" {
		name = sec.GetName()
	}
	res.Legacy = legacy
	res.Rejected = rejection(errSt)
	if sec == nil && errSt != nil {
		res.State = "rejected"
	}
	m.secrets = append(m.secrets, &secretEntry{name: name, res: res, s: sec, errSt: errSt, status: status})
}

// indexListener finds the listener's HCMs and TCP proxies, and registers its
// inline route configurations.
func (m *Model) indexListener(e *listenerEntry) {
	l := e.l
	if l == nil {
		return
	}
	port := l.GetAddress().GetSocketAddress().GetPortValue()
	who := e.name // names the listener in UsedBy
	if who == "" {
		who = addressString(l.GetAddress())
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains[:len(chains):len(chains)], d)
	}
	for ci, fc := range chains {
		for _, f := range fc.GetFilters() {
			switch typeName(f.GetTypedConfig()) {
			case "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
				"envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager":
				h := &hcmv3.HttpConnectionManager{}
				if _, ok := unpack(f.GetTypedConfig(), h); !ok {
					continue
				}
				ref := hcmRef{chain: ci, hcm: h}
				switch {
				case h.GetRouteConfig() != nil:
					// Envoy lists inline route configurations among the
					// static ones too: pair them, each static entry once.
					rc := h.GetRouteConfig()
					var r *routeEntry
					for _, s := range m.routeByNm[rc.GetName()] {
						if s.res.Source == "static" && !s.paired && proto.Equal(s.rc, rc) {
							r = s
							break
						}
					}
					if r == nil {
						r = &routeEntry{name: rc.GetName(), rc: rc, res: Resource{Source: "inline", State: e.res.State, Version: e.res.Version}}
						m.routes = append(m.routes, r)
						m.routeByNm[r.name] = append(m.routeByNm[r.name], r)
					}
					r.paired = true
					r.usedBy = append(r.usedBy, who)
					r.hcm, r.listenerPort = h, port
					ref.route = r
				case h.GetRds() != nil:
					for _, r := range m.routeByNm[h.GetRds().GetRouteConfigName()] {
						if r.res.Source == "inline" {
							continue
						}
						if !contains(r.usedBy, who) {
							r.usedBy = append(r.usedBy, who)
						}
						if r.hcm == nil {
							r.hcm, r.listenerPort = h, port
						}
					}
				}
				e.hcms = append(e.hcms, ref)
			case "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
				"envoy.config.filter.network.tcp_proxy.v2.TcpProxy":
				t := &tcpproxyv3.TcpProxy{}
				if _, ok := unpack(f.GetTypedConfig(), t); ok {
					e.tcps = append(e.tcps, tcpRef{chain: ci, tcp: t})
				}
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// routeClusters returns the clusters a route configuration's routes target.
func routeClusters(rc *routev3.RouteConfiguration) []string {
	var out []string
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			out = append(out, actionClusters(r.GetRoute())...)
		}
	}
	return out
}

func actionClusters(a *routev3.RouteAction) []string {
	if a == nil {
		return nil
	}
	if c := a.GetCluster(); c != "" {
		return []string{c}
	}
	var out []string
	for _, w := range a.GetWeightedClusters().GetClusters() {
		out = append(out, w.GetName())
	}
	return out
}

func tcpClusters(t *tcpproxyv3.TcpProxy) []string {
	if c := t.GetCluster(); c != "" {
		return []string{c}
	}
	var out []string
	for _, w := range t.GetWeightedClusters().GetClusters() {
		out = append(out, w.GetName())
	}
	return out
}

func addressString(a *corev3.Address) string {
	switch {
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		port := ""
		switch {
		case sa.GetNamedPort() != "":
			port = sa.GetNamedPort()
		default:
			port = strconv.FormatUint(uint64(sa.GetPortValue()), 10)
		}
		return net.JoinHostPort(sa.GetAddress(), port)
	case a.GetPipe() != nil:
		return "unix:" + a.GetPipe().GetPath()
	case a.GetEnvoyInternalAddress() != nil:
		ia := a.GetEnvoyInternalAddress()
		s := "internal:" + ia.GetServerListenerName()
		if ia.GetEndpointId() != "" {
			s += "#" + ia.GetEndpointId()
		}
		return s
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
