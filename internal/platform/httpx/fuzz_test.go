package httpx

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// fuzzBody has the shapes storefront and operator bodies use: integers, strings,
// nested objects, arrays, nullable fields, free-form attributes.
type fuzzBody struct {
	VariantID  string          `json:"variant_id"`
	Quantity   int             `json:"quantity"`
	Delta      int64           `json:"delta"`
	Code       *string         `json:"code"`
	Email      string          `json:"email"`
	Price      *fuzzMoney      `json:"price"`
	Variants   []fuzzVariant   `json:"variants"`
	Attributes map[string]any  `json:"attributes"`
	IDs        []string        `json:"variant_ids"`
	Active     *bool           `json:"active"`
	Raw        json.RawMessage `json:"raw"`
}

type fuzzMoney struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type fuzzVariant struct {
	SKU   string    `json:"sku"`
	Price fuzzMoney `json:"price"`
	Stock int       `json:"stock"`
}

// FuzzDecodeStrict: no input makes DecodeStrict panic, and every failure is an *Error with
// a 4xx status and a message that does not leak Go type names.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `null`, `1`, `"x"`, `{`, `}`, `{"quantity":1}`, `{"quantity":"1"}`,
		`{"quantity":1.5}`, `{"quantity":-1}`, `{"quantity":99999999999999999999999}`, `{"quantity":1e400}`,
		`{"delta":-9223372036854775808}`, `{"delta":9223372036854775808}`, `{"unknown":1}`,
		`{"quantity":1}{"quantity":2}`, `{"quantity":1} x`, `{"code":null}`, `{"code":"ÄÖÜ💥\u0000"}`,
		`{"price":{"amount":1999,"currency":"USD"}}`, `{"price":{"amount":"1999"}}`, `{"price":[]}`,
		`{"variants":[{"sku":"a","price":{"amount":1,"currency":"USD"},"stock":10}]}`,
		`{"variants":[{"sku":"a","extra":1}]}`, `{"attributes":{"a":{"b":[1,{"c":null}]}}}`,
		`{"variant_ids":["not-a-uuid", 1]}`, `{"active":"true"}`, `{"raw":{"x":1}}`, "\xff\xfe{}",
		`{"quantity":1,"quantity":2}`, strings.Repeat("[", 10000), `{"email":"` + strings.Repeat("a", 5000) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v fuzzBody
		err := DecodeStrict(body, &v)
		if err == nil {
			return
		}
		var he *Error
		if !errors.As(err, &he) {
			t.Fatalf("error %T %v is not an *httpx.Error", err, err)
		}
		if he.Status < 400 || he.Status > 499 {
			t.Fatalf("status %d for %q, want 4xx", he.Status, body)
		}
		if strings.Contains(he.Message, "httpx.") || strings.Contains(he.Message, "json:") {
			t.Fatalf("message leaks internals: %q", he.Message)
		}
		if c := Classify(err); c.Status != he.Status {
			t.Fatalf("Classify changed status %d to %d", he.Status, c.Status)
		}
	})
}

// FuzzParseUUID: no panic; accepted input is exactly a canonical 36-character UUID
// (any case), everything else is a 400 naming the field.
func FuzzParseUUID(f *testing.F) {
	for _, s := range []string{
		"", "x", "00000000-0000-0000-0000-000000000000", "0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1f",
		"0190A6F2-7C1E-7B4E-9D1A-3F2B8C9D0E1F", "{0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1f}",
		"urn:uuid:0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1f", "0190a6f27c1e7b4e9d1a3f2b8c9d0e1f",
		"0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1g", "0190a6f2+7c1e-7b4e-9d1a-3f2b8c9d0e1f",
		"../../admin/products", "0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1\u00e9", "%00", "💥💥💥💥💥💥💥💥💥",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseUUID(s, "variant_id")
		if err != nil {
			var he *Error
			if !errors.As(err, &he) || he.Status != 400 || he.Code != CodeBadRequest || !strings.Contains(he.Message, "variant_id") {
				t.Fatalf("ParseUUID(%q): %v, want a 400 bad_request naming the field", s, err)
			}
			if id != uuid.Nil {
				t.Fatalf("ParseUUID(%q) returned %v with an error", s, id)
			}
			return
		}
		if id.String() != strings.ToLower(s) {
			t.Fatalf("ParseUUID(%q) accepted a non-canonical form (got %s)", s, id)
		}
	})
}
