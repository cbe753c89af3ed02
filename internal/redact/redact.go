// Package redact decides which names look secret and withholds their values.
//
// A name looks secret when, split into words at '_', '-', '.', and case
// changes, one of its words is a secret word (token, password, secret, key,
// credential, auth, cookie, session, private, ...). Matching whole words keeps
// names such as MONKEY or KEYBOARD_LAYOUT visible while API_KEY, apiKey and
// X-Auth-Token are withheld.
package redact

import (
	"strings"
	"unicode"
)

// Redacted replaces a withheld value.
const Redacted = "[redacted]"

// secretWords are matched against each word of a name, lower-cased.
var secretWords = map[string]bool{
	"token": true, "tokens": true, "password": true, "passwd": true, "pwd": true,
	"pass": true, "passphrase": true, "secret": true, "secrets": true, "key": true,
	"keys": true, "apikey": true, "credential": true, "credentials": true,
	"creds": true, "auth": true, "authorization": true, "cookie": true,
	"cookies": true, "session": true, "private": true, "privatekey": true,
	"signature": true, "dsn": true, "sas": true,
}

// IsSecretName reports whether name looks like it holds a secret.
func IsSecretName(name string) bool {
	for _, w := range words(name) {
		if secretWords[w] {
			return true
		}
	}
	return false
}

// Value returns value, or Redacted when name looks secret.
func Value(name, value string) (string, bool) {
	if IsSecretName(name) {
		return Redacted, true
	}
	return value, false
}

// words splits name into lower-case words at separators and case changes:
// "X-Auth-Token" -> x auth token; "apiKey" -> api key; "DB_PASSWORD" -> db password.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
		case unicode.IsUpper(r) && i > 0 && i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1]):
			// "HTTPToken" -> http token
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return out
}
