package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// MaxBody is the largest request body accepted (API contract: 1 MiB).
const MaxBody = 1 << 20

// Bind decodes the JSON request body into v strictly: unknown fields, trailing data,
// wrong types and malformed JSON are a 400 bad_request, a body over 1 MiB is a 413.
// An empty body is a 400 unless allowEmpty, in which case v is left as it is.
func Bind(c echo.Context, v any) error { return bind(c, v, false) }

// BindOptional is Bind for routes whose body may be empty (treated as {}).
func BindOptional(c echo.Context, v any) error { return bind(c, v, true) }

func bind(c echo.Context, v any, allowEmpty bool) error {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return New(http.StatusUnsupportedMediaType, CodeBadRequest, "content type must be application/json")
		}
	}
	body, err := ReadBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return BadRequest("request body is required")
	}
	return DecodeStrict(body, v)
}

// ReadBody returns the raw body (at most MaxBody bytes), or a 413 when it is larger.
func ReadBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, New(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body exceeds 1 MiB")
		}
		return nil, BadRequest("could not read request body")
	}
	if len(body) > MaxBody {
		return nil, New(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body exceeds 1 MiB")
	}
	return body, nil
}

// DecodeStrict decodes one JSON value from body into v, rejecting unknown fields and
// trailing data, with messages that name the problem but not Go internals.
func DecodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return BadRequest(describeJSONError(err))
	}
	if dec.More() {
		return BadRequest("request body must hold a single JSON value")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return BadRequest("request body must hold a single JSON value")
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q has the wrong type (want %s)", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return "request body has the wrong JSON type"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return k
}

// ParamUUID parses the path parameter name as a UUID, or returns a 400.
func ParamUUID(c echo.Context, name string) (uuid.UUID, error) {
	return ParseUUID(c.Param(name), name)
}

// ParseUUID parses s as a UUID in its canonical 36-character form, or returns a 400
// naming the field.
func ParseUUID(s, field string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, BadRequest(field + " must be a UUID")
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, BadRequest(field + " must be a UUID")
	}
	return id, nil
}
