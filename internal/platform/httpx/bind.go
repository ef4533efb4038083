package httpx

import (
	"bytes"
	"encoding"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// MaxBody is the largest request body accepted (API contract: 1 MiB).
const MaxBody = 1 << 20

// Bind decodes the JSON request body into v with DecodeStrict's rules (400 for what is not
// strict JSON, 422 for values PostgreSQL cannot store); a body over 1 MiB is a 413 and a
// content type other than JSON a 415.
// An empty body is a 400 unless allowEmpty, in which case v is left as it is; a body of
// only whitespace is a 400 either way (it is not JSON).
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
	if len(body) == 0 {
		if allowEmpty {
			return nil
		}
		return BadRequest("request body is required")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		// Whitespace is not an empty body, and not JSON either.
		return BadRequest("request body must be a JSON object")
	}
	if bytes.TrimSpace(body)[0] != '{' {
		// Every body of the API is an object; `null` would otherwise decode as "no change".
		return BadRequest("request body must be a JSON object")
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

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

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
