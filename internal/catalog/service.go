package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// Input limits. The HTTP layer documents them as 422 validation_failed.
const (
	MaxVariants       = 100
	MaxStock          = 1_000_000
	MaxPrice          = 100_000_000_000 // minor units; keeps cart totals far from int64 overflow
	MaxAttributeBytes = 8 << 10         // serialized JSON
	MaxNameRunes      = 200
	MaxCategoryRunes  = 200
	MaxDescRunes      = 10_000
	MaxPerPage        = 100
	MaxPage           = 1_000_000
)

var (
	slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,127}$`)
	skuRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// Service is the catalog's use cases: validated writes to PostgreSQL made visible
// through the L2 cache, and public reads served by the cache.
type Service struct {
	store    *Store
	cache    *Cache
	currency string
	log      *slog.Logger

	kick      chan struct{}
	relayMu   sync.Mutex
	relayStop context.CancelFunc
	relayDone chan struct{}
}

// NewService returns the catalog service. Prices must be in the store's currency. Start
// runs the invalidation relay (and the near-cache subscription); Stop ends them.
func NewService(store *Store, cache *Cache) *Service {
	return &Service{store: store, cache: cache, currency: store.Currency(), log: cache.log,
		kick: make(chan struct{}, 1)}
}

// Currency is the shop currency.
func (s *Service) Currency() string { return s.currency }

// Create validates np, stores the product with its variants and their initial stock in
// one transaction, and caches it. Errors: *ValidationError, *ConflictError (slug or SKU
// taken), or a dependency error.
func (s *Service) Create(ctx context.Context, np NewProduct) (Product, error) {
	if np.Status == "" {
		np.Status = StatusActive
	}
	if err := s.validateNew(np); err != nil {
		return Product{}, err
	}
	p, err := s.store.Create(ctx, np)
	if err != nil {
		return Product{}, err
	}
	s.written(ctx, p)
	return p, nil
}

// Get returns an active product through the cache. Errors: ErrNotFound (unknown or not
// active), or a dependency error (PostgreSQL down and the product not cached).
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Product, error) {
	return s.cache.GetActive(ctx, id)
}

// GetEncoded returns an active product's public representation (JSON body and ETag),
// from the near-cache without a Redis call when it holds the product. Errors as Get.
func (s *Service) GetEncoded(ctx context.Context, id uuid.UUID) (Encoded, error) {
	return s.cache.GetActiveEncoded(ctx, id)
}

// AdminGet returns the product in any status, from PostgreSQL. Errors: ErrNotFound, or a
// dependency error.
func (s *Service) AdminGet(ctx context.Context, id uuid.UUID) (Product, error) {
	return s.store.Get(ctx, id)
}

// List returns a page of active products through the cache. Errors: *ValidationError
// (page, per_page or category out of range), or a dependency error.
func (s *Service) List(ctx context.Context, q ListQuery) (Page, error) {
	f := fields{}
	if q.Page < 1 || q.Page > MaxPage {
		f.set("page", fmt.Sprintf("must be between 1 and %d", MaxPage))
	}
	if q.PerPage < 1 || q.PerPage > MaxPerPage {
		f.set("per_page", fmt.Sprintf("must be between 1 and %d", MaxPerPage))
	}
	if utf8.RuneCountInString(q.Category) > MaxCategoryRunes {
		f.set("category", fmt.Sprintf("must be at most %d characters", MaxCategoryRunes))
	}
	if err := f.err(); err != nil {
		return Page{}, err
	}
	return s.cache.ListActive(ctx, q)
}

// Update applies the patch, bumps the product's version and makes it visible on every
// replica before it returns. Errors: ErrNotFound, *ValidationError, or a dependency error.
func (s *Service) Update(ctx context.Context, id uuid.UUID, p ProductPatch) (Product, error) {
	f := fields{}
	if p.Name != nil {
		checkName(f, "name", *p.Name)
	}
	if p.Description != nil {
		checkDescription(f, "description", *p.Description)
	}
	if p.Category != nil {
		checkCategory(f, "category", *p.Category)
	}
	if p.Status != nil && !p.Status.Valid() {
		f.set("status", "must be one of draft, active, archived")
	}
	if p.Attributes != nil {
		checkAttributes(f, "attributes", p.Attributes)
	}
	if err := f.err(); err != nil {
		return Product{}, err
	}
	out, err := s.store.Update(ctx, id, p)
	if err != nil {
		return Product{}, err
	}
	if !p.empty() {
		s.written(ctx, out)
	}
	return out, nil
}

// UpdateVariant applies the patch to a variant, bumps its product's version and makes
// the product (with the new price) visible everywhere before it returns the product.
// Errors: ErrNotFound, *ValidationError, or a dependency error.
func (s *Service) UpdateVariant(ctx context.Context, id uuid.UUID, p VariantPatch) (Product, error) {
	f := fields{}
	if p.Name != nil {
		checkName(f, "name", *p.Name)
	}
	if p.Price != nil {
		s.checkPrice(f, "price", *p.Price)
	}
	if p.Attributes != nil {
		checkAttributes(f, "attributes", p.Attributes)
	}
	if err := f.err(); err != nil {
		return Product{}, err
	}
	if p.empty() {
		vs, err := s.store.Variants(ctx, []uuid.UUID{id})
		if err != nil {
			return Product{}, err
		}
		vi, ok := vs[id]
		if !ok {
			return Product{}, fmt.Errorf("variant %s: %w", id, ErrNotFound)
		}
		return s.store.Get(ctx, vi.ProductID)
	}
	out, err := s.store.UpdateVariant(ctx, id, p)
	if err != nil {
		return Product{}, err
	}
	s.written(ctx, out)
	return out, nil
}

// Archive archives the product (it leaves the storefront at once on every replica) and
// returns it. Archiving twice is not an error. Errors: ErrNotFound, or a dependency error.
func (s *Service) Archive(ctx context.Context, id uuid.UUID) (Product, error) {
	out, err := s.store.Archive(ctx, id)
	if err != nil {
		return Product{}, err
	}
	s.written(ctx, out)
	return out, nil
}

// Variants returns the variants' current details and prices through the cache; unknown
// ids are absent. Errors: a dependency error.
func (s *Service) Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]VariantInfo, error) {
	return s.cache.Variants(ctx, ids)
}

// Warm writes every active product to the cache and returns how many (for the warmer
// and POST /admin/cache/warm).
func (s *Service) Warm(ctx context.Context) (int, error) { return s.cache.Warm(ctx) }

// written publishes a committed write to the cache, then deletes the write's
// catalog_invalidations row. A failure is logged and not returned (the write is
// committed, and reads fall back to PostgreSQL while Redis is down): the row stays, and
// the relay republishes it until Redis confirms (RelayInvalidations).
func (s *Service) written(ctx context.Context, p Product) {
	ctx = context.WithoutCancel(ctx)
	if err := s.cache.Invalidate(ctx, p); err != nil {
		s.Republish()
		return
	}
	if err := s.store.ClearInvalidations(ctx, []Product{p}); err != nil {
		s.Republish()
	}
}

// --- validation -----------------------------------------------------------------------

type fields map[string]string

func (f fields) set(k, msg string) {
	if _, ok := f[k]; !ok {
		f[k] = msg
	}
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Fields: f}
}

func (s *Service) validateNew(np NewProduct) error {
	f := fields{}
	if !slugRe.MatchString(np.Slug) {
		f.set("slug", "must be 1-128 characters of a-z, 0-9 and '-', starting with a letter or digit")
	}
	checkName(f, "name", np.Name)
	checkDescription(f, "description", np.Description)
	checkCategory(f, "category", np.Category)
	if !np.Status.Valid() {
		f.set("status", "must be one of draft, active, archived")
	}
	checkAttributes(f, "attributes", np.Attributes)
	switch n := len(np.Variants); {
	case n == 0:
		f.set("variants", "must have at least 1 variant")
	case n > MaxVariants:
		f.set("variants", fmt.Sprintf("must have at most %d variants", MaxVariants))
	}
	skus := map[string]int{}
	for i, v := range np.Variants {
		pre := fmt.Sprintf("variants[%d].", i)
		if !skuRe.MatchString(v.SKU) {
			f.set(pre+"sku", "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
		} else if j, dup := skus[v.SKU]; dup {
			f.set(pre+"sku", fmt.Sprintf("duplicates variants[%d].sku", j))
		} else {
			skus[v.SKU] = i
		}
		checkName(f, pre+"name", v.Name)
		s.checkPrice(f, pre+"price", v.Price)
		if v.Stock < 0 || v.Stock > MaxStock {
			f.set(pre+"stock", fmt.Sprintf("must be between 0 and %d", MaxStock))
		}
		checkAttributes(f, pre+"attributes", v.Attributes)
	}
	return f.err()
}

func checkName(f fields, field, name string) {
	if strings.TrimSpace(name) == "" {
		f.set(field, "is required")
	} else if utf8.RuneCountInString(name) > MaxNameRunes {
		f.set(field, fmt.Sprintf("must be at most %d characters", MaxNameRunes))
	} else if !plainText(name) {
		f.set(field, "must be valid UTF-8 without NUL characters")
	}
}

// plainText reports whether s can be stored in a PostgreSQL text column.
func plainText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func checkCategory(f fields, field, c string) {
	if utf8.RuneCountInString(c) > MaxCategoryRunes {
		f.set(field, fmt.Sprintf("must be at most %d characters", MaxCategoryRunes))
	} else if !plainText(c) {
		f.set(field, "must be valid UTF-8 without NUL characters")
	}
}

func checkDescription(f fields, field, d string) {
	if utf8.RuneCountInString(d) > MaxDescRunes {
		f.set(field, fmt.Sprintf("must be at most %d characters", MaxDescRunes))
	} else if !plainText(d) {
		f.set(field, "must be valid UTF-8 without NUL characters")
	}
}

func (s *Service) checkPrice(f fields, field string, m money.Money) {
	if m.Amount < 0 || m.Amount > MaxPrice {
		f.set(field+".amount", fmt.Sprintf("must be between 0 and %d", int64(MaxPrice)))
	}
	if m.Currency != s.currency {
		f.set(field+".currency", "must be "+s.currency)
	}
}

func checkAttributes(f fields, field string, a map[string]any) {
	if a == nil {
		return
	}
	b, err := json.Marshal(a)
	if err != nil {
		f.set(field, "must be a JSON object")
		return
	}
	if len(b) > MaxAttributeBytes {
		f.set(field, fmt.Sprintf("must be at most %d bytes of JSON", MaxAttributeBytes))
	} else if bytes.Contains(b, []byte(`\u0000`)) {
		f.set(field, "must not contain NUL characters")
	}
}
