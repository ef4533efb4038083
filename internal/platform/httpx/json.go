package httpx

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/labstack/echo/v4"
)

// JSONSerializer is echo's JSON serializer (encoding/json, the same output) with one
// difference: it encodes the whole value into a pooled buffer first and then writes it
// with its Content-Length in one Write. echo's default encodes straight into the
// response, so an answer over net/http's 2 KiB buffer went out chunked, in several
// socket writes, and an encoding error left half a body on the wire. Here an encoding
// error writes nothing, and the error handler answers it as any other error.
type JSONSerializer struct{ echo.DefaultJSONSerializer }

// maxPooledJSON bounds the buffers kept for reuse, so that one large answer does not pin
// its memory in the pool.
const maxPooledJSON = 64 << 10

var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Serialize implements echo.JSONSerializer.
func (JSONSerializer) Serialize(c echo.Context, i any, indent string) error {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledJSON {
			jsonBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(i); err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentLength, strconv.Itoa(buf.Len()))
	_, err := w.Write(buf.Bytes())
	return err
}
