package discount

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/money"
)

// Handler serves the admin discount routes of api/openapi.yaml.
type Handler struct {
	svc *Service
}

// NewHandler returns the HTTP handlers of svc.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Register mounts POST/GET /discounts and GET/PATCH/DELETE /discounts/{id} on admin (the
// /admin group, already guarded by the admin token). v1 is unused: storefronts see
// discounts only through priced carts and checkouts.
func (h *Handler) Register(v1 *echo.Group, admin *echo.Group) {
	admin.POST("/discounts", h.create)
	admin.GET("/discounts", h.list)
	admin.GET("/discounts/:id", h.get)
	admin.PATCH("/discounts/:id", h.patch)
	admin.DELETE("/discounts/:id", h.delete)
}

func (h *Handler) create(c echo.Context) error {
	var in discountBody
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	r := Rule{Stackable: true, Active: true}
	if errs := in.apply(&r, true); errs != nil {
		return httpx.Validation(withRuleErrors(errs, r))
	}
	d, v, err := h.svc.Create(c.Request().Context(), r)
	if err != nil {
		return mapError(err)
	}
	return c.JSON(http.StatusCreated, toDiscountJSON(d, v))
}

// list: GET /admin/discounts?page=&per_page=, in application order, with the paging
// rule of every list (httpx.Paging) and its one shape. The live discounts are few (the
// whole ruleset is loaded at once for pricing), so a page is cut from one snapshot.
func (h *Handler) list(c echo.Context) error {
	page, perPage, err := httpx.Paging(c)
	if err != nil {
		return err
	}
	ds, _, err := h.svc.List(c.Request().Context())
	if err != nil {
		return mapError(err)
	}
	from := min(int64(page-1)*int64(perPage), int64(len(ds)))
	to := min(from+int64(perPage), int64(len(ds)))
	out := httpx.Page[discountJSON]{Items: make([]discountJSON, 0, to-from), Page: page, PerPage: perPage,
		Total: int64(len(ds))}
	for _, d := range ds[from:to] {
		out.Items = append(out.Items, toDiscountJSON(d, 0))
	}
	return c.JSON(http.StatusOK, out)
}

func (h *Handler) get(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	d, err := h.svc.Get(c.Request().Context(), id)
	if err != nil {
		return mapError(err)
	}
	return c.JSON(http.StatusOK, toDiscountJSON(d, 0))
}

func (h *Handler) patch(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	var in discountBody
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	d, v, err := h.svc.Update(c.Request().Context(), id, func(r *Rule) error {
		if errs := in.apply(r, false); errs != nil {
			return &ValidationError{Fields: withRuleErrors(errs, *r)}
		}
		return nil
	})
	if err != nil {
		return mapError(err)
	}
	return c.JSON(http.StatusOK, toDiscountJSON(d, v))
}

func (h *Handler) delete(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	if _, err := h.svc.Delete(c.Request().Context(), id); err != nil {
		return mapError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// mapError turns the package's errors into the contract's.
func mapError(err error) error {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		return httpx.Validation(ve.Fields)
	case errors.Is(err, ErrNotFound):
		return httpx.NotFound("discount")
	case errors.Is(err, ErrConflict):
		return httpx.Conflict(httpx.CodeConflict, "another discount already uses this code")
	}
	return err
}

// withRuleErrors adds r.Validate's findings to the decoding errors errs, so that one 422
// names every problem; a field already reported (or a part of it, like scope.type of a
// missing scope) keeps its first message.
func withRuleErrors(errs map[string]string, r Rule) map[string]string {
	r.Code = NormalizeCode(r.Code)
	out := maps.Clone(errs)
	for k, v := range r.Validate() {
		top, _, _ := strings.Cut(k, ".")
		if _, ok := errs[top]; ok {
			continue
		}
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

// optional is a JSON field that may be absent (Set false), null (Null true) or a value.
// Its value is decoded strictly: unknown fields inside objects are rejected.
type optional[T any] struct {
	Set, Null bool
	V         T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(bytes.TrimSpace(b)) == "null" {
		o.Null = true
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(&o.V)
}

type scopeJSON struct {
	Type string   `json:"type"`
	IDs  []string `json:"ids"`
}

// discountBody is the body of POST (every required field) and PATCH (any subset; null
// clears code, currency, min_subtotal, starts_at and ends_at) of /admin/discounts.
type discountBody struct {
	Name        optional[string]      `json:"name"`
	Code        optional[string]      `json:"code"`
	Kind        optional[string]      `json:"kind"`
	Value       optional[int64]       `json:"value"`
	Currency    optional[string]      `json:"currency"`
	Scope       optional[scopeJSON]   `json:"scope"`
	MinSubtotal optional[httpx.Money] `json:"min_subtotal"`
	StartsAt    optional[string]      `json:"starts_at"`
	EndsAt      optional[string]      `json:"ends_at"`
	Priority    optional[int]         `json:"priority"`
	Stackable   optional[bool]        `json:"stackable"`
	Active      optional[bool]        `json:"active"`
}

// apply copies the fields present in b onto r and returns the problems found while doing
// so (missing required fields when create, null for a field that cannot be null, bad
// timestamps, a blank code), or nil. Rule-level validation is left to Rule.Validate.
func (b discountBody) apply(r *Rule, create bool) map[string]string {
	errs := map[string]string{}
	required := func(name string, set, null bool) bool {
		switch {
		case !set:
			if create {
				errs[name] = "is required"
			}
			return false
		case null:
			errs[name] = "must not be null"
			return false
		}
		return true
	}
	notNull := func(name string, set, null bool) bool {
		if set && null {
			errs[name] = "must not be null"
			return false
		}
		return set
	}
	if required("name", b.Name.Set, b.Name.Null) {
		r.Name = b.Name.V
	}
	if required("kind", b.Kind.Set, b.Kind.Null) {
		r.Kind = Kind(b.Kind.V)
	}
	if required("value", b.Value.Set, b.Value.Null) {
		r.Value = b.Value.V
	}
	if required("scope", b.Scope.Set, b.Scope.Null) {
		r.Scope = Scope{Type: ScopeType(b.Scope.V.Type), IDs: b.Scope.V.IDs}
		if r.Scope.IDs == nil {
			r.Scope.IDs = []string{}
		}
	}
	if notNull("priority", b.Priority.Set, b.Priority.Null) {
		r.Priority = b.Priority.V
	}
	if notNull("stackable", b.Stackable.Set, b.Stackable.Null) {
		r.Stackable = b.Stackable.V
	}
	if notNull("active", b.Active.Set, b.Active.Null) {
		r.Active = b.Active.V
	}
	if b.Code.Set {
		r.Code = ""
		if !b.Code.Null {
			if NormalizeCode(b.Code.V) == "" {
				errs["code"] = "must be 3 to 32 characters of A-Z, 0-9, _ or -, or null"
			}
			r.Code = NormalizeCode(b.Code.V)
		}
	}
	if b.Currency.Set {
		r.Currency = ""
		if !b.Currency.Null {
			r.Currency = b.Currency.V
		}
	}
	if b.MinSubtotal.Set {
		r.MinSubtotal = nil
		if !b.MinSubtotal.Null {
			r.MinSubtotal = &money.Money{Amount: b.MinSubtotal.V.Amount, Currency: b.MinSubtotal.V.Currency}
		}
	}
	setTime := func(name string, o optional[string], dst **time.Time) {
		if !o.Set {
			return
		}
		*dst = nil
		if o.Null {
			return
		}
		t, err := time.Parse(time.RFC3339, o.V)
		if err != nil {
			errs[name] = "must be an RFC 3339 timestamp"
			return
		}
		t = t.UTC()
		*dst = &t
	}
	setTime("starts_at", b.StartsAt, &r.StartsAt)
	setTime("ends_at", b.EndsAt, &r.EndsAt)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

type discountJSON struct {
	ID          uuid.UUID    `json:"id"`
	Name        string       `json:"name"`
	Code        *string      `json:"code"`
	Kind        string       `json:"kind"`
	Value       int64        `json:"value"`
	Currency    *string      `json:"currency"`
	Scope       scopeJSON    `json:"scope"`
	MinSubtotal *httpx.Money `json:"min_subtotal"`
	StartsAt    *time.Time   `json:"starts_at"`
	EndsAt      *time.Time   `json:"ends_at"`
	Priority    int          `json:"priority"`
	Stackable   bool         `json:"stackable"`
	Active      bool         `json:"active"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	// RulesetVersion is the version a write produced (omitted on reads).
	RulesetVersion int64 `json:"ruleset_version,omitempty"`
}

func toDiscountJSON(d Discount, version int64) discountJSON {
	out := discountJSON{ID: d.ID, Name: d.Name, Kind: string(d.Kind), Value: d.Value,
		Scope: scopeJSON{Type: string(d.Scope.Type), IDs: d.Scope.IDs}, Priority: d.Priority,
		Stackable: d.Stackable, Active: d.Active, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		StartsAt: utcPtr(d.StartsAt), EndsAt: utcPtr(d.EndsAt), RulesetVersion: version}
	if out.Scope.IDs == nil {
		out.Scope.IDs = []string{}
	}
	if d.Code != "" {
		out.Code = &d.Code
	}
	if d.Currency != "" {
		out.Currency = &d.Currency
	}
	if d.MinSubtotal != nil {
		out.MinSubtotal = &httpx.Money{Amount: d.MinSubtotal.Amount, Currency: d.MinSubtotal.Currency}
	}
	return out
}
