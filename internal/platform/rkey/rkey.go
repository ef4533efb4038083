// Package rkey validates identifiers before they become part of a Redis key and holds the
// key namespace (prefix) that lets many tests, or many shops, share one Redis.
package rkey

import (
	"regexp"
)

// Space is a key namespace: every key a service writes starts with it. The empty Space is
// the production default. A prefix never contains braces, so hash tags stay intact.
type Space string

// Key returns s followed by the parts, concatenated.
func (s Space) Key(parts ...string) string {
	n := len(s)
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, s...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return string(b)
}

var (
	customerRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	sessionRe  = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

// ValidCustomerID reports whether id is a customer id as the JWT `sub` claim allows:
// 1–64 characters of [A-Za-z0-9_-]. Such an id is safe inside a Redis key.
func ValidCustomerID(id string) bool { return customerRe.MatchString(id) }

// ValidSessionID reports whether id has the shape of a session id minted by this service
// (32 random bytes, base64url without padding).
func ValidSessionID(id string) bool { return sessionRe.MatchString(id) }
