package inventory

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/idempotency"
	"commerce/internal/platform/testenv"
)

// TestKeyedAdjustKilledAfterCommitAppliesOnce: the process running POST
// /admin/inventory/{id}/adjust with an Idempotency-Key dies right after the stock
// transaction committed (its key in flight, no response stored, the hold not finalized).
// Once the key's in-flight time is over, the operator's retry with the key answers 200
// and does not apply the change again; recovery finishes the interrupted one.
func TestKeyedAdjustKilledAfterCommitAppliesOnce(t *testing.T) {
	const inFlight = 500 * time.Millisecond
	e := newEnv(t)
	handler := func(s *Service) *echo.Echo {
		ec := echo.New()
		ec.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
		NewHandler(s).WithIdempotency(idempotency.New(e.rdb, e.space, nil, idempotency.Options{InFlightTTL: inFlight})).
			Register(ec.Group("/v1"), ec.Group("/admin"))
		return ec
	}
	adjust := func(ec *echo.Echo, variant string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/admin/inventory/"+variant+"/adjust",
			strings.NewReader(`{"delta":-4,"reason":"shrinkage"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(idempotency.Header, "count-2026-12-04")
		rec := httptest.NewRecorder()
		ec.ServeHTTP(rec, req)
		return rec
	}
	if testenv.CrashChild() {
		adjust(handler(dyingService(e)), testenv.CrashVar("v0"))
		t.Fatal("the adjustment did not reach its crash point")
	}
	id := e.variant(10)
	s := e.service(Options{CommitTimeout: 50 * time.Millisecond})
	testenv.RunCrash(t, crashAfterTx, variantVars(id))
	if n := e.onHand(id); n != 6 {
		t.Fatalf("on_hand %d after the crash; want 6 (the transaction committed)", n)
	}
	ec := handler(s)
	if r := adjust(ec, id.String()); r.Code != http.StatusConflict {
		t.Fatalf("retry while the key is in flight: %d %s", r.Code, r.Body)
	}
	time.Sleep(inFlight + 100*time.Millisecond)
	r := adjust(ec, id.String())
	if r.Code != http.StatusOK {
		t.Fatalf("retry with the key: %d %s", r.Code, r.Body)
	}
	if n := e.onHand(id); n != 6 {
		t.Fatalf("on_hand %d after the retry; want 6: applied once", n)
	}
	if again := adjust(ec, id.String()); again.Code != http.StatusOK || again.Body.String() != r.Body.String() {
		t.Fatalf("second retry: %d %s", again.Code, again.Body)
	}
	recoverAll(t, s, 1)
	wantLevels(t, s, id, 6, 6, 0)
	var rows int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM stock_ledger WHERE variant_id = $1 AND reason = 'shrinkage'`,
		id).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d ledger rows, %v", rows, err)
	}
}
