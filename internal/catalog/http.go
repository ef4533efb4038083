package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/money"
)

// Handler serves the catalog routes of api/openapi.yaml (storefront and admin).
type Handler struct {
	svc      *Service
	lowStock func(ctx context.Context, variant uuid.UUID, threshold int64) error
}

// NewHandler returns the catalog's HTTP handlers.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// WithLowStock lets PATCH /admin/variants/{id} set the variant's low-stock threshold
// through set (the inventory owns it); set returns ErrNotFound for an unknown variant.
func (h *Handler) WithLowStock(set func(ctx context.Context, variant uuid.UUID, threshold int64) error) *Handler {
	h.lowStock = set
	return h
}

// maxLowStockThreshold bounds low_stock_threshold (the inventory's largest on_hand).
const maxLowStockThreshold = 1_000_000_000

// Register mounts the public routes on v1 (/v1) and the operator routes on admin
// (/admin, already guarded by the admin token).
func (h *Handler) Register(v1, admin *echo.Group) {
	v1.GET("/products", h.list)
	v1.GET("/products/:id", h.get)
	admin.POST("/products", h.create)
	admin.GET("/products/:id", h.adminGet)
	admin.PATCH("/products/:id", h.patch)
	admin.DELETE("/products/:id", h.archive)
	admin.PATCH("/variants/:id", h.patchVariant)
}

// --- wire types -----------------------------------------------------------------------

// moneyInput has pointer fields so a missing amount or currency is reported as such.
type moneyInput struct {
	Amount   *int64  `json:"amount"`
	Currency *string `json:"currency"`
}

type variantJSON struct {
	ID         uuid.UUID      `json:"id"`
	SKU        string         `json:"sku"`
	Name       string         `json:"name"`
	Price      httpx.Money    `json:"price"`
	Attributes map[string]any `json:"attributes"`
}

type productJSON struct {
	ID          uuid.UUID      `json:"id"`
	Slug        string         `json:"slug"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Category    string         `json:"category"`
	Status      string         `json:"status"`
	Attributes  map[string]any `json:"attributes"`
	Version     int64          `json:"version"`
	UpdatedAt   string         `json:"updated_at"`
	Variants    []variantJSON  `json:"variants"`
}

type pageJSON struct {
	Items   []productJSON `json:"items"`
	Page    int           `json:"page"`
	PerPage int           `json:"per_page"`
	Total   int64         `json:"total"`
}

type createVariantRequest struct {
	SKU        string         `json:"sku"`
	Name       string         `json:"name"`
	Price      *moneyInput    `json:"price"`
	Attributes map[string]any `json:"attributes"`
	Stock      *int64         `json:"stock"`
}

type createProductRequest struct {
	Slug        string                 `json:"slug"`
	Name        string                 `json:"name"`
	Description string                 `json:"description"`
	Category    string                 `json:"category"`
	Status      string                 `json:"status"`
	Attributes  map[string]any         `json:"attributes"`
	Variants    []createVariantRequest `json:"variants"`
}

type patchProductRequest struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Category    *string         `json:"category"`
	Status      *string         `json:"status"`
	Attributes  *map[string]any `json:"attributes"`
}

type patchVariantRequest struct {
	Name              *string         `json:"name"`
	Price             *moneyInput     `json:"price"`
	Attributes        *map[string]any `json:"attributes"`
	LowStockThreshold *int64          `json:"low_stock_threshold"`
}

func toJSON(p Product) productJSON {
	out := productJSON{ID: p.ID, Slug: p.Slug, Name: p.Name, Description: p.Description, Category: p.Category,
		Status: string(p.Status), Attributes: nonNil(p.Attributes), Version: p.Version,
		UpdatedAt: p.UpdatedAt.UTC().Format(time.RFC3339), Variants: make([]variantJSON, len(p.Variants))}
	for i, v := range p.Variants {
		out.Variants[i] = variantJSON{ID: v.ID, SKU: v.SKU, Name: v.Name,
			Price: httpx.Money{Amount: v.Price.Amount, Currency: v.Price.Currency}, Attributes: nonNil(v.Attributes)}
	}
	return out
}

// money converts a price input, naming missing parts in f under field.
func (m *moneyInput) money(f fields, field string) money.Money {
	var out money.Money
	if m.Amount == nil {
		f.set(field+".amount", "is required")
	} else {
		out.Amount = *m.Amount
	}
	if m.Currency == nil {
		f.set(field+".currency", "is required")
	} else {
		out.Currency = *m.Currency
	}
	return out
}

// httpError maps the catalog's errors to the contract's; anything else goes to the
// error funnel as it is (dependency errors become 503, the rest 500).
func httpError(err error, what string) error {
	var ve *ValidationError
	var ce *ConflictError
	switch {
	case errors.As(err, &ve):
		return httpx.Validation(ve.Fields)
	case errors.As(err, &ce):
		e := httpx.Conflict(httpx.CodeConflict, ce.Field+" already exists")
		e.Err = err
		return e
	case errors.Is(err, ErrNotFound):
		return httpx.NotFound(what)
	}
	return err
}

// --- public ---------------------------------------------------------------------------

func intParam(c echo.Context, name string, def int) (int, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) {
		return 0, httpx.Validation(map[string]string{name: "is out of range"})
	}
	if err != nil {
		return 0, httpx.BadRequest(name + " must be an integer")
	}
	return n, nil
}

// list: GET /v1/products?category=&page=1&per_page=20. Non-integer page or per_page is a
// 400; out of range a 422.
func (h *Handler) list(c echo.Context) error {
	page, err := intParam(c, "page", 1)
	if err != nil {
		return err
	}
	perPage, err := intParam(c, "per_page", 20)
	if err != nil {
		return err
	}
	category, err := httpx.QueryText(c, "category")
	if err != nil {
		return err
	}
	q := ListQuery{Category: category, Page: page, PerPage: perPage}
	pg, err := h.svc.List(c.Request().Context(), q)
	if err != nil {
		return httpError(err, "product")
	}
	out := pageJSON{Items: make([]productJSON, len(pg.Items)), Page: page, PerPage: perPage, Total: pg.Total}
	for i, p := range pg.Items {
		out.Items[i] = toJSON(p)
	}
	c.Response().Header().Set("Cache-Control", PublicCacheControl)
	return c.JSON(http.StatusOK, out)
}

// PublicCacheControl is the Cache-Control of public catalog reads: a shared cache (a
// CDN) may keep them for one second, the catalog's visibility promise for a write.
const PublicCacheControl = "public, max-age=1"

// get: GET /v1/products/{id}, active products only. The body is served as the cache
// holds it, with a strong ETag (the product's version): If-None-Match with that tag is a
// 304 without a body.
func (h *Handler) get(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	enc, err := h.svc.GetEncoded(c.Request().Context(), id)
	if err != nil {
		return httpError(err, "product")
	}
	hdr := c.Response().Header()
	hdr.Set("ETag", enc.ETag)
	hdr.Set("Cache-Control", PublicCacheControl)
	if etagMatches(c.Request().Header.Get("If-None-Match"), enc.ETag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, enc.Body)
}

// etagMatches reports whether an If-None-Match header names etag (weak comparison, as
// RFC 9110 asks for If-None-Match; "*" matches any current representation).
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// --- admin ----------------------------------------------------------------------------

// create: POST /admin/products → 201 Product.
func (h *Handler) create(c echo.Context) error {
	var req createProductRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	f := fields{}
	np := NewProduct{Slug: req.Slug, Name: req.Name, Description: req.Description, Category: req.Category,
		Status: Status(req.Status), Attributes: req.Attributes, Variants: make([]NewVariant, len(req.Variants))}
	for i, v := range req.Variants {
		nv := NewVariant{SKU: v.SKU, Name: v.Name, Attributes: v.Attributes}
		if v.Price == nil {
			f.set(fmt.Sprintf("variants[%d].price", i), "is required")
		} else {
			nv.Price = v.Price.money(f, fmt.Sprintf("variants[%d].price", i))
		}
		if v.Stock != nil {
			nv.Stock = *v.Stock
		}
		np.Variants[i] = nv
	}
	if len(f) > 0 {
		// Report every problem at once: the missing parts and whatever else is wrong.
		if np.Status == "" {
			np.Status = StatusActive
		}
		var ve *ValidationError
		if errors.As(h.svc.validateNew(np), &ve) {
			for k, v := range ve.Fields {
				if _, taken := f[k]; !taken && !covered(f, k) {
					f[k] = v
				}
			}
		}
		return httpx.Validation(f)
	}
	p, err := h.svc.Create(c.Request().Context(), np)
	if err != nil {
		return httpError(err, "product")
	}
	return c.JSON(http.StatusCreated, toJSON(p))
}

// covered reports whether f already reports a missing part of field (so a zero-value
// complaint about it would be noise): "variants[0].price.currency" is covered by
// "variants[0].price".
func covered(f fields, field string) bool {
	for k := range f {
		if len(field) > len(k) && field[:len(k)] == k && field[len(k)] == '.' {
			return true
		}
	}
	return false
}

// adminGet: GET /admin/products/{id}, any status, from PostgreSQL.
func (h *Handler) adminGet(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	p, err := h.svc.AdminGet(c.Request().Context(), id)
	if err != nil {
		return httpError(err, "product")
	}
	return c.JSON(http.StatusOK, toJSON(p))
}

// patch: PATCH /admin/products/{id} → 200 Product. Absent (or null) fields are unchanged.
func (h *Handler) patch(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	var req patchProductRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	p := ProductPatch{Name: req.Name, Description: req.Description, Category: req.Category}
	if req.Status != nil {
		st := Status(*req.Status)
		p.Status = &st
	}
	if req.Attributes != nil {
		p.Attributes = nonNil(*req.Attributes)
	}
	out, err := h.svc.Update(c.Request().Context(), id, p)
	if err != nil {
		return httpError(err, "product")
	}
	return c.JSON(http.StatusOK, toJSON(out))
}

// patchVariant: PATCH /admin/variants/{id} → 200 with the variant's Product.
func (h *Handler) patchVariant(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	var req patchVariantRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	p := VariantPatch{Name: req.Name}
	if req.Price != nil {
		f := fields{}
		m := req.Price.money(f, "price")
		if len(f) > 0 {
			return httpx.Validation(f)
		}
		p.Price = &m
	}
	if req.Attributes != nil {
		p.Attributes = nonNil(*req.Attributes)
	}
	if t := req.LowStockThreshold; t != nil && (*t < 0 || *t > maxLowStockThreshold || h.lowStock == nil) {
		return httpx.Validation(map[string]string{"low_stock_threshold": fmt.Sprintf("must be between 0 and %d (0: no alert)", maxLowStockThreshold)})
	}
	out, err := h.svc.UpdateVariant(c.Request().Context(), id, p)
	if err != nil {
		return httpError(err, "variant")
	}
	if t := req.LowStockThreshold; t != nil {
		if err := h.lowStock(c.Request().Context(), id, *t); err != nil {
			return httpError(err, "variant")
		}
	}
	return c.JSON(http.StatusOK, toJSON(out))
}

// archive: DELETE /admin/products/{id} → 204 (also when already archived), as
// api/openapi.yaml says.
func (h *Handler) archive(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	if _, err := h.svc.Archive(c.Request().Context(), id); err != nil {
		return httpError(err, "product")
	}
	return c.NoContent(http.StatusNoContent)
}
