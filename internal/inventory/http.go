package inventory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"commerce/internal/platform/fault"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/idempotency"
)

// maxReconcileIDs bounds the variant_ids of one reconcile request.
const maxReconcileIDs = 10000

// Handler serves the inventory routes of the API contract.
type Handler struct {
	svc  *Service
	idem *idempotency.Store
}

// NewHandler returns the handler of the availability and /admin/inventory routes. Its
// Idempotency-Key records live in the service's Redis with the default bounds until
// WithIdempotency gives the app's shared store.
func NewHandler(svc *Service) *Handler {
	return &Handler{svc: svc, idem: idempotency.New(svc.r.rdb, svc.r.space, nil, idempotency.Options{Logger: svc.log})}
}

// WithIdempotency makes the handler keep its Idempotency-Key records in store.
func (h *Handler) WithIdempotency(store *idempotency.Store) *Handler {
	h.idem = store
	return h
}

// Idempotency scopes of the operator's stock changes.
const (
	scopeAdjust = "inv-adjust"
	scopeSet    = "inv-set"
)

// adminCaller is the caller of the admin routes in Idempotency-Key records (one admin
// token).
const adminCaller = "admin"

// keyed runs a stock change once per Idempotency-Key (see package idempotency), and with
// a key its ledger reference is KeyReference(scope, key): a retry after an answer that was
// lost or a 5xx never applies the change twice, since PostgreSQL holds at most one ledger
// row per key, and a change found applied answers 200 with the current levels.
func (h *Handler) keyed(c echo.Context, scope, fingerprint string, change func(ctx context.Context, reference string) (Levels, error),
	id uuid.UUID) error {
	ref := reference(c)
	if key := c.Request().Header.Get(idempotency.Header); key != "" {
		ref = KeyReference(scope, key)
	}
	return h.idem.Handle(c, idempotency.Handler{Scope: scope, Caller: adminCaller, Fingerprint: fingerprint,
		ToHTTP: mapErr, Run: func(ctx context.Context) (int, any, error) {
			l, err := change(ctx, ref)
			if AlreadyApplied(err) {
				l, err = h.svc.Levels(ctx, id)
			}
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, toLevelsJSON(l), nil
		}})
}

// Register mounts GET /v1/variants/{id}/availability on v1 and the /admin/inventory
// routes on admin (already guarded by the admin token).
func (h *Handler) Register(v1 *echo.Group, admin *echo.Group) {
	v1.GET("/variants/:id/availability", h.availability)
	admin.POST("/inventory/reconcile", h.reconcile)
	admin.POST("/inventory/sweep", h.sweep)
	admin.POST("/inventory/bulk", h.bulk)
	admin.GET("/inventory/:variant_id", h.levels)
	admin.PUT("/inventory/:variant_id", h.set)
	admin.POST("/inventory/:variant_id/adjust", h.adjust)
}

// ---------------------------------------------------------------- response types

type availabilityJSON struct {
	VariantID uuid.UUID `json:"variant_id"`
	Available int64     `json:"available"`
	InStock   bool      `json:"in_stock"`
}

type holdJSON struct {
	Holder    string    `json:"holder"`
	Quantity  int64     `json:"quantity"`
	ExpiresAt time.Time `json:"expires_at"`
}

type levelsJSON struct {
	VariantID  uuid.UUID  `json:"variant_id"`
	OnHand     int64      `json:"on_hand"`
	Available  int64      `json:"available"`
	Held       int64      `json:"held"`
	HoldsCount int64      `json:"holds_count"`
	Holds      []holdJSON `json:"holds"`
	Drift      int64      `json:"drift"`
	// LowStockThreshold is only in GET's answer (0: no low-stock event).
	LowStockThreshold *int64 `json:"low_stock_threshold,omitempty"`
}

func toLevelsJSON(l Levels) levelsJSON {
	out := levelsJSON{VariantID: l.VariantID, OnHand: l.OnHand, Available: l.Available, Held: l.Held,
		HoldsCount: l.HoldsCount, Holds: make([]holdJSON, 0, len(l.Holds)), Drift: l.Drift}
	for _, h := range l.Holds {
		out.Holds = append(out.Holds, holdJSON{Holder: h.Holder, Quantity: h.Quantity, ExpiresAt: h.ExpiresAt.UTC()})
	}
	return out
}

type reconcileVariantJSON struct {
	VariantID         uuid.UUID `json:"variant_id"`
	OnHand            int64     `json:"on_hand"`
	Held              int64     `json:"held"`
	RedisAvailable    *int64    `json:"redis_available"`
	ExpectedAvailable int64     `json:"expected_available"`
}

type reconcileJSON struct {
	Checked    int                    `json:"checked"`
	Drifted    int                    `json:"drifted"`
	Fixed      int                    `json:"fixed"`
	Variants   []reconcileVariantJSON `json:"variants"`
	DurationMS int64                  `json:"duration_ms"`
}

type sweepJSON struct {
	Reclaimed int64 `json:"reclaimed"`
}

// ---------------------------------------------------------------- request types

type adjustRequest struct {
	Delta  *int64  `json:"delta"`
	Reason *string `json:"reason"`
}

type setRequest struct {
	OnHand *int64  `json:"on_hand"`
	Reason *string `json:"reason"`
}

type reconcileRequest struct {
	VariantIDs []string `json:"variant_ids"`
}

// ---------------------------------------------------------------- handlers

func (h *Handler) availability(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	av, err := h.svc.Available(c.Request().Context(), []uuid.UUID{id})
	if err != nil {
		return mapErr(err)
	}
	n, ok := av[id]
	if !ok {
		return httpx.NotFound("variant")
	}
	return c.JSON(http.StatusOK, availabilityJSON{VariantID: id, Available: n, InStock: n > 0})
}

func (h *Handler) levels(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "variant_id")
	if err != nil {
		return err
	}
	l, err := h.svc.Levels(c.Request().Context(), id)
	if err != nil {
		return mapErr(err)
	}
	thr, err := h.svc.LowStockThreshold(c.Request().Context(), id)
	if err != nil {
		return mapErr(err)
	}
	out := toLevelsJSON(l)
	out.LowStockThreshold = &thr
	return c.JSON(http.StatusOK, out)
}

func checkReason(r *string, fields map[string]string) {
	switch {
	case r == nil:
		fields["reason"] = "is required"
	case !validReason(*r):
		fields["reason"] = "must be between 1 and 200 characters"
	}
}

func (h *Handler) adjust(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "variant_id")
	if err != nil {
		return err
	}
	var req adjustRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	switch {
	case req.Delta == nil:
		fields["delta"] = "is required"
	case *req.Delta == 0 || *req.Delta > MaxAdjust || *req.Delta < -MaxAdjust:
		fields["delta"] = fmt.Sprintf("must be non-zero and between -%d and %d", MaxAdjust, MaxAdjust)
	}
	checkReason(req.Reason, fields)
	if len(fields) > 0 {
		return httpx.Validation(fields)
	}
	fp := fmt.Sprintf("adjust\x00%s\x00%d\x00%s", id, *req.Delta, *req.Reason)
	return h.keyed(c, scopeAdjust, fp, func(ctx context.Context, ref string) (Levels, error) {
		return h.svc.Adjust(ctx, id, *req.Delta, *req.Reason, ref)
	}, id)
}

func (h *Handler) set(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "variant_id")
	if err != nil {
		return err
	}
	var req setRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	switch {
	case req.OnHand == nil:
		fields["on_hand"] = "is required"
	case *req.OnHand < 0 || *req.OnHand > MaxOnHand:
		fields["on_hand"] = fmt.Sprintf("must be between 0 and %d", MaxOnHand)
	}
	checkReason(req.Reason, fields)
	if len(fields) > 0 {
		return httpx.Validation(fields)
	}
	fp := fmt.Sprintf("set\x00%s\x00%d\x00%s", id, *req.OnHand, *req.Reason)
	return h.keyed(c, scopeSet, fp, func(ctx context.Context, ref string) (Levels, error) {
		return h.svc.SetRef(ctx, id, *req.OnHand, *req.Reason, ref)
	}, id)
}

func (h *Handler) reconcile(c echo.Context) error {
	dry := false
	if q := c.QueryParam("dry_run"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			return httpx.BadRequest("dry_run must be true or false")
		}
		dry = b
	}
	var req reconcileRequest
	if err := httpx.BindOptional(c, &req); err != nil {
		return err
	}
	if len(req.VariantIDs) > maxReconcileIDs {
		return httpx.Validation(map[string]string{"variant_ids": fmt.Sprintf("at most %d ids", maxReconcileIDs)})
	}
	ids := make([]uuid.UUID, 0, len(req.VariantIDs))
	for i, s := range req.VariantIDs {
		id, err := httpx.ParseUUID(s, fmt.Sprintf("variant_ids[%d]", i))
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	rep, err := h.svc.Reconcile(c.Request().Context(), ids, dry)
	if err != nil {
		return mapErr(err)
	}
	out := reconcileJSON{Checked: rep.Checked, Drifted: rep.Drifted, Fixed: rep.Fixed,
		Variants: make([]reconcileVariantJSON, 0, len(rep.Variants)), DurationMS: rep.Duration.Milliseconds()}
	for _, v := range rep.Variants {
		out.Variants = append(out.Variants, reconcileVariantJSON{VariantID: v.VariantID, OnHand: v.OnHand, Held: v.Held,
			RedisAvailable: v.RedisAvailable, ExpectedAvailable: v.ExpectedAvailable})
	}
	return c.JSON(http.StatusOK, out)
}

func (h *Handler) sweep(c echo.Context) error {
	if err := httpx.BindOptional(c, &struct{}{}); err != nil {
		return err
	}
	n, err := h.svc.Sweep(c.Request().Context())
	if err != nil {
		return mapErr(err)
	}
	return c.JSON(http.StatusOK, sweepJSON{Reclaimed: n})
}

// reference is the ledger reference of an operator's change: the request id.
func reference(c echo.Context) string {
	id := httpx.RequestID(c)
	if id == "" || !utf8.ValidString(id) {
		return "admin"
	}
	return "admin:" + id
}

// mapErr turns the service's sentinel errors into the contract's errors; anything else
// goes to the funnel as it is (driver and network errors become 503 there).
func mapErr(err error) error {
	var below *BelowHeldError
	var short *InsufficientStockError
	switch {
	case errors.As(err, &below):
		return httpx.Conflict(httpx.CodeConflict, "on_hand cannot go below what is held").WithDetails(map[string]any{
			"variant_id": below.VariantID.String(), "requested": below.Requested, "available": below.Available})
	case errors.As(err, &short):
		vs := make([]map[string]any, 0, len(short.Shortages))
		for _, s := range short.Shortages {
			vs = append(vs, map[string]any{"variant_id": s.VariantID.String(), "requested": s.Requested, "available": s.Available})
		}
		return httpx.Conflict(httpx.CodeInsufficientStock, "not enough stock").WithDetails(map[string]any{"variants": vs})
	case errors.Is(err, ErrNotFound):
		return httpx.NotFound("variant")
	case errors.Is(err, ErrConcurrentChange):
		return httpx.Conflict(httpx.CodeConflict, "the stock changed concurrently, retry")
	case errors.Is(err, ErrBelowHeld):
		return httpx.Conflict(httpx.CodeConflict, "on_hand cannot go below what is held")
	case errors.Is(err, ErrPartial):
		return &httpx.Error{Status: http.StatusServiceUnavailable, Code: httpx.CodeUnavailable,
			Message: "on_hand was changed but live availability was not; it catches up at the next reconcile " +
				"(do not repeat the adjustment)", Err: err}
	case errors.Is(err, ErrInvalid):
		return httpx.Unprocessable(httpx.CodeValidationFailed, "the request is not valid")
	case fault.IsUnavailable(err):
		return httpx.Unavailable(err)
	}
	return err
}
