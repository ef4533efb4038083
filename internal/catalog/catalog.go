// Package catalog holds the shop's products and their variants: PostgreSQL is the truth
// (store.go), Redis the L2 cache every public read goes through (cache.go), and Service
// (service.go) the one place that validates input, writes and makes the write visible.
//
// Consistency: a committed write overwrites the product's cache entry with a versioned
// fill and bumps the catalog generation, so every replica (they all share Redis) serves
// it on its next read. The write records the invalidation in its own transaction
// (catalog_invalidations) and a relay republishes it until Redis confirms, so a Redis
// failure during the write delays the new version, never loses it (invalidation.go).
//
// In front of Redis, each replica may keep an in-process near-cache of encoded product
// bodies (near.go): bounded, versioned, invalidated across replicas over Redis pub/sub,
// and held to a short TTL counted from the read, because pub/sub is at-most-once. A warm
// product read then makes no Redis call, and is never older than that TTL after a write.
package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// Status is a product's lifecycle state. Only active products are visible on /v1.
type Status string

// Product statuses.
const (
	StatusDraft    Status = "draft"
	StatusActive   Status = "active"
	StatusArchived Status = "archived"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool {
	return s == StatusDraft || s == StatusActive || s == StatusArchived
}

// Product is a sellable item with its variants (ordered by Position). Version grows by one
// on every write to the product or one of its variants; caches use it to order fills.
type Product struct {
	ID          uuid.UUID
	Slug        string
	Name        string
	Description string
	Category    string
	Status      Status
	Attributes  map[string]any
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Variants    []Variant
}

// Variant is one purchasable form of a product (a size, a colour) with its own SKU and price.
type Variant struct {
	ID         uuid.UUID
	ProductID  uuid.UUID
	SKU        string
	Name       string
	Price      money.Money
	Attributes map[string]any
	Position   int
}

// VariantInfo is what carts and checkout need to know about a variant, with its current
// price. Active is true when the variant's product is active.
type VariantInfo struct {
	ID, ProductID                           uuid.UUID
	SKU, ProductName, VariantName, Category string
	Price                                   money.Money
	Active                                  bool
}

func (p Product) variantInfos() []VariantInfo {
	out := make([]VariantInfo, len(p.Variants))
	for i, v := range p.Variants {
		out[i] = VariantInfo{ID: v.ID, ProductID: p.ID, SKU: v.SKU, ProductName: p.Name,
			VariantName: v.Name, Category: p.Category, Price: v.Price, Active: p.Status == StatusActive}
	}
	return out
}

// NewProduct is the input of Service.Create. A zero ID is replaced by a new UUIDv7; only
// trusted callers (Seed) set one. An empty Status means active.
type NewProduct struct {
	ID          uuid.UUID
	Slug        string
	Name        string
	Description string
	Category    string
	Status      Status
	Attributes  map[string]any
	Variants    []NewVariant
}

// NewVariant is one variant of a NewProduct with its initial stock on hand.
type NewVariant struct {
	ID         uuid.UUID
	SKU        string
	Name       string
	Price      money.Money
	Attributes map[string]any
	Stock      int64
}

// ProductPatch changes the fields that are set (nil: unchanged). A non-nil Attributes
// replaces the attributes (an empty map clears them).
type ProductPatch struct {
	Name        *string
	Description *string
	Category    *string
	Status      *Status
	Attributes  map[string]any
}

func (p ProductPatch) empty() bool {
	return p.Name == nil && p.Description == nil && p.Category == nil && p.Status == nil && p.Attributes == nil
}

// VariantPatch changes the fields of a variant that are set (nil: unchanged).
type VariantPatch struct {
	Name       *string
	Price      *money.Money
	Attributes map[string]any
}

func (p VariantPatch) empty() bool { return p.Name == nil && p.Price == nil && p.Attributes == nil }

// ListQuery selects a page of active products, optionally of one category.
type ListQuery struct {
	Category string
	Page     int // 1-based
	PerPage  int
}

func (q ListQuery) offset() int64 { return int64(q.Page-1) * int64(q.PerPage) }

// hash is the hex SHA-256 of the normalized query: the listing cache key's suffix.
func (q ListQuery) hash() string {
	h := sha256.Sum256([]byte("category=" + q.Category + "\npage=" + strconv.Itoa(q.Page) +
		"\nper_page=" + strconv.Itoa(q.PerPage)))
	return hex.EncodeToString(h[:])
}

// Page is one page of a listing and the number of products the query matches in total.
type Page struct {
	Items []Product
	Total int64
}

// Sentinel errors of the catalog. Errors returned by this package wrap one of them when
// they are about the request rather than a dependency.
var (
	// ErrNotFound: no such product or variant (or, for public reads, not active).
	ErrNotFound = errors.New("catalog: not found")
	// ErrConflict: the slug or a SKU is already taken (see *ConflictError).
	ErrConflict = errors.New("catalog: conflict")
	// ErrInvalid: the input is not valid (see *ValidationError).
	ErrInvalid = errors.New("catalog: invalid input")
)

// ConflictError says which unique field was taken ("slug" or "sku"). It matches ErrConflict.
type ConflictError struct{ Field string }

func (e *ConflictError) Error() string { return "catalog: " + e.Field + " already exists" }

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ValidationError names each invalid field with a message safe to show to the caller.
// It matches ErrInvalid.
type ValidationError struct{ Fields map[string]string }

func (e *ValidationError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %s", k, e.Fields[k])
	}
	return "catalog: invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }
