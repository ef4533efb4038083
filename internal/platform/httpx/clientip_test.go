package httpx

import (
	"net/http/httptest"
	"testing"
)

// TestClientIP: the client is the right-most X-Forwarded-For hop that is not a trusted
// proxy; with no trusted proxies (the default) X-Forwarded-For is never believed.
func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.0.2.10", "2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted bool
		remote  string
		xff     []string
		want    string
	}{
		{"default ignores XFF", false, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer's XFF is ignored", true, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"one proxy", true, "10.1.1.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"spoofed left hops are not believed", true, "10.1.1.1:5000", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"two trusted proxies", true, "192.0.2.10:1", []string{"6.6.6.6, 198.51.100.7, 10.2.2.2"}, "198.51.100.7"},
		{"several headers in order", true, "10.1.1.1:1", []string{"6.6.6.6", "198.51.100.7, 10.3.3.3"}, "198.51.100.7"},
		{"every hop trusted", true, "10.1.1.1:1", []string{"10.9.9.9, 10.2.2.2"}, "10.9.9.9"},
		{"no XFF from a trusted proxy", true, "10.1.1.1:1", nil, "10.1.1.1"},
		{"garbage hop stops at the trusted one", true, "10.1.1.1:1", []string{"198.51.100.7, not-an-ip, 10.2.2.2"}, "10.2.2.2"},
		{"IPv6 client behind IPv6 proxy", true, "[2001:db8:ffff::1]:1", []string{"2001:db8:1::5"}, "2001:db8:1::5"},
		{"IPv4-mapped peer", true, "[::ffff:10.1.1.1]:1", []string{"198.51.100.7"}, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr = trusted
			if !tc.trusted {
				tr = nil
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.remote
			for _, h := range tc.xff {
				req.Header.Add("X-Forwarded-For", h)
			}
			if got := ClientIP(tr)(req); got != tc.want {
				t.Fatalf("client %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/33", "nope", "10.0.0.1/8/2"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted", bad)
		}
	}
}
