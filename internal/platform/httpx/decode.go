package httpx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv1 "encoding/json"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxNumberLen is the longest JSON number accepted anywhere in a body. Together with the
// float64 range check it keeps every number inside what PostgreSQL's numeric (and so
// jsonb) can store.
const MaxNumberLen = 100

// DecodeStrict decodes one JSON value from body into v. It is the one decode boundary of
// the service, so every handler (and every webhook) gets the same rules:
//
//   - exact-case field names, unknown fields, duplicate keys, trailing data, wrong types
//     and malformed JSON are a 400 bad_request (a gateway or WAF in front of the service
//     must read the same body the service reads);
//   - a value PostgreSQL cannot store (a NUL character, a lone UTF-16 surrogate or invalid
//     UTF-8 in a string or a key, a number outside float64's range or longer than
//     MaxNumberLen) is a 422 validation_failed naming the field.
//
// Numbers decoded into an untyped destination (any) keep their text (encoding/json's
// Number), so free-form attributes round-trip exactly.
func DecodeStrict(body []byte, v any) error {
	if err := CheckStorable(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v, decodeOptions); err != nil {
		return BadRequest(describeDecodeError(err))
	}
	return nil
}

var decodeOptions = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
	json.WithUnmarshalers(json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *any) error {
		if dec.PeekKind() != '0' {
			return errors.ErrUnsupported
		}
		raw, err := dec.ReadValue()
		if err != nil {
			return err
		}
		*v = jsonv1.Number(string(raw))
		return nil
	})),
)

// CheckStorable scans body as JSON and reports the first value PostgreSQL could not
// store (422 validation_failed naming the field), a duplicate key, or malformed JSON (400).
// It does not decode anything.
func CheckStorable(body []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowInvalidUTF8(true),
		jsontext.AllowDuplicateNames(false))
	values := 0
	for {
		switch dec.PeekKind() {
		case '"':
			raw, err := dec.ReadValue()
			if err != nil {
				return BadRequest(describeDecodeError(err))
			}
			if msg := unstorableString(raw); msg != "" {
				return Validation(map[string]string{fieldOf(dec.StackPointer()): msg})
			}
		case '0':
			raw, err := dec.ReadValue()
			if err != nil {
				return BadRequest(describeDecodeError(err))
			}
			if msg := unstorableNumber(raw); msg != "" {
				return Validation(map[string]string{fieldOf(dec.StackPointer()): msg})
			}
		default:
			if _, err := dec.ReadToken(); err != nil {
				if errors.Is(err, io.EOF) {
					if values == 0 {
						return BadRequest("malformed JSON: unexpected end of input")
					}
					return nil
				}
				return BadRequest(describeDecodeError(err))
			}
		}
		if dec.StackDepth() == 0 {
			values++
			if values > 1 {
				return BadRequest("request body must hold a single JSON value")
			}
		}
	}
}

// unstorableString checks a raw JSON string (quotes and escapes included).
func unstorableString(raw []byte) string {
	if !utf8.Valid(raw) {
		return "must be valid UTF-8"
	}
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i >= len(s) || s[i] != 'u' {
			continue
		}
		r := hex4(s[i+1:])
		i += 4
		switch {
		case r == 0:
			return "must not contain NUL characters"
		case r >= 0xDC00 && r <= 0xDFFF:
			return "must not contain a lone UTF-16 surrogate"
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return "must not contain a lone UTF-16 surrogate"
			}
			if lo := hex4(s[i+3:]); lo < 0xDC00 || lo > 0xDFFF {
				return "must not contain a lone UTF-16 surrogate"
			}
			i += 6
		}
	}
	return ""
}

// hex4 decodes the 4 hex digits at the start of b (the syntax was checked already).
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 32)
	if err != nil {
		return -1
	}
	return rune(n)
}

func unstorableNumber(raw []byte) string {
	if len(raw) > MaxNumberLen {
		return fmt.Sprintf("must be a number of at most %d characters", MaxNumberLen)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return "is a number out of range"
	}
	if f == 0 {
		mant := raw
		if i := bytes.IndexAny(raw, "eE"); i >= 0 {
			mant = raw[:i]
		}
		if bytes.ContainsAny(mant, "123456789") {
			return "is a number out of range"
		}
	}
	return ""
}

// fieldOf renders a JSON Pointer as the field name used in validation details
// ("lines.0.quantity"); the root is "body". Unprintable characters are escaped so the
// name itself is safe to show and store.
func fieldOf(p jsontext.Pointer) string {
	if p == "" {
		return "body"
	}
	var b strings.Builder
	for tok := range p.Tokens() {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		q := strconv.QuoteToASCII(tok)
		b.WriteString(q[1 : len(q)-1])
	}
	s := b.String()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func describeDecodeError(err error) string {
	var se *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		if errors.As(err, &se) {
			return fmt.Sprintf("duplicate field %q", fieldOf(se.JSONPointer))
		}
		return "duplicate field"
	case errors.Is(err, json.ErrUnknownName):
		if errors.As(err, &sem) {
			return fmt.Sprintf("unknown field %q", fieldOf(sem.JSONPointer))
		}
		return "unknown field"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: unexpected end of input"
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at offset %d", se.ByteOffset)
	case errors.As(err, &sem):
		if sem.GoType != nil && sem.JSONPointer != "" {
			return fmt.Sprintf("field %q has the wrong type (want %s)", fieldOf(sem.JSONPointer), jsonKind(sem.GoType))
		}
		if sem.GoType != nil {
			return fmt.Sprintf("request body has the wrong JSON type (want %s)", jsonKind(sem.GoType))
		}
	}
	return "malformed JSON"
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.Map, reflect.Struct:
		if t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
			return "string"
		}
		return "object"
	case reflect.Slice, reflect.Array:
		if t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
			return "string"
		}
		return "array"
	case reflect.String:
		return "string"
	}
	return "value"
}
