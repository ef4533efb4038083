package httpx

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestJSONSerializerWritesOneSizedBody: a JSON answer larger than net/http's own buffer
// goes out with its Content-Length (not chunked), byte for byte what encoding/json writes;
// a value that cannot be encoded writes nothing of itself, and the error handler answers
// a whole error body instead of half a document.
func TestJSONSerializerWritesOneSizedBody(t *testing.T) {
	e := echo.New()
	e.JSONSerializer = JSONSerializer{}
	e.HTTPErrorHandler = ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	big := map[string]string{"text": strings.Repeat("x", 10_000)}
	e.GET("/big", func(c echo.Context) error { return c.JSON(http.StatusOK, big) })
	e.GET("/bad", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"ok": strings.Repeat("y", 5000), "bad": make(chan int)})
	})
	srv := httptest.NewServer(e)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"text":"` + strings.Repeat("x", 10_000) + "\"}\n"
	if resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("GET /big: %d, %d bytes, want 200 and %d bytes", resp.StatusCode, len(body), len(want))
	}
	if len(resp.TransferEncoding) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Fatalf("GET /big: transfer encoding %v, Content-Length %q, want none and %d",
			resp.TransferEncoding, resp.Header.Get("Content-Length"), len(want))
	}

	resp, err = http.Get(srv.URL + "/bad")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "yyy") ||
		!strings.HasPrefix(string(body), `{"error":`) {
		t.Fatalf("GET /bad: %d %q, want 500 with an error body and nothing of the value", resp.StatusCode, body)
	}
}
