package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
)

// BulkPath is the route of the bulk stock sync. It streams bodies of up to MaxBulkBody
// and runs for up to BulkTimeout, so the service's 1 MiB body limit and request deadline
// do not apply to it (the app exempts it); the handler sets its own.
const BulkPath = "/admin/inventory/bulk"

// BulkTimeout bounds one bulk sync request (reading, applying and answering).
const BulkTimeout = 5 * time.Minute

type bulkResponse struct {
	Summary BulkSummary  `json:"summary"`
	Results []BulkResult `json:"results"`
}

// validBulkKey reports whether an Idempotency-Key has 1–255 printable ASCII characters.
func validBulkKey(key string) bool {
	if len(key) == 0 || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// bulk serves POST /admin/inventory/bulk: a JSON array or a text/csv body of lines,
// answered with one result per line and a summary.
func (h *Handler) bulk(c echo.Context) error {
	r := c.Request()
	key, hasKey := r.Header.Get("Idempotency-Key"), len(r.Header.Values("Idempotency-Key")) > 0
	if hasKey && !validBulkKey(key) {
		return httpx.BadRequest("Idempotency-Key must be 1-255 printable ASCII characters")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || (mt != "application/json" && mt != "text/csv") {
		return httpx.New(http.StatusUnsupportedMediaType, httpx.CodeBadRequest,
			"content type must be application/json (an array of lines) or text/csv")
	}
	if r.ContentLength > MaxBulkBody {
		return bodyReadError(&http.MaxBytesError{Limit: MaxBulkBody})
	}
	// This route is exempt from the service-wide body limit and request deadline: set ours,
	// and let the connection live as long (the server's read/write timeouts are shorter).
	deadline := time.Now().Add(BulkTimeout)
	rc := http.NewResponseController(c.Response())
	// Not every writer supports deadlines (httptest's does not): then the server's apply.
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()

	body := http.MaxBytesReader(c.Response(), r.Body, MaxBulkBody)
	sum := sha256.New()
	sum.Write([]byte(mt + "\x00"))
	in := io.TeeReader(body, sum)
	var lines []BulkLine
	if mt == "text/csv" {
		lines, err = ParseBulkCSV(in)
	} else {
		lines, err = ParseBulkJSON(in)
	}
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return httpx.Validation(map[string]string{"lines": "at least one line is required"})
	}
	results, summary, err := h.svc.ApplyBulk(ctx, lines, key, hex.EncodeToString(sum.Sum(nil)), reference(c))
	switch {
	case errors.Is(err, ErrBulkKeyReused):
		return httpx.Unprocessable(httpx.CodeIdemReused, "this Idempotency-Key was used with a different body")
	case err != nil:
		return mapErr(err)
	}
	return c.JSON(http.StatusOK, bulkResponse{Summary: summary, Results: results})
}
