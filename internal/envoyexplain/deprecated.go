package envoyexplain

//lint:file-ignore SA1019 older Envoys and control planes still send the deprecated header matchers, and Envoy still honours them, so explain must read them

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// legacyHeaderMatch returns the StringMatcher equivalent of a header
// matcher's deprecated exact, safe_regex, prefix, suffix or contains form.
func legacyHeaderMatch(h *routev3.HeaderMatcher) (*matcherv3.StringMatcher, bool) {
	switch hm := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: hm.ExactMatch}}, true
	case *routev3.HeaderMatcher_SafeRegexMatch:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: hm.SafeRegexMatch}}, true
	case *routev3.HeaderMatcher_PrefixMatch:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: hm.PrefixMatch}}, true
	case *routev3.HeaderMatcher_SuffixMatch:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: hm.SuffixMatch}}, true
	case *routev3.HeaderMatcher_ContainsMatch:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: hm.ContainsMatch}}, true
	}
	return nil, false
}
