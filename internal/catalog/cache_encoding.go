package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// --- encoding -------------------------------------------------------------------------

type cachedVariant struct {
	ID         uuid.UUID      `json:"id"`
	SKU        string         `json:"sku"`
	Name       string         `json:"name"`
	Amount     int64          `json:"amount"`
	Currency   string         `json:"currency"`
	Attributes map[string]any `json:"attributes"`
	Position   int            `json:"position"`
}

type cachedProduct struct {
	ID          uuid.UUID       `json:"id"`
	Slug        string          `json:"slug"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Category    string          `json:"category"`
	Status      string          `json:"status"`
	Attributes  map[string]any  `json:"attributes"`
	Version     int64           `json:"version"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Variants    []cachedVariant `json:"variants"`
}

type cachedPage struct {
	Total int64           `json:"total"`
	Items []cachedProduct `json:"items"`
}

func toCached(p Product) cachedProduct {
	cp := cachedProduct{ID: p.ID, Slug: p.Slug, Name: p.Name, Description: p.Description, Category: p.Category,
		Status: string(p.Status), Attributes: p.Attributes, Version: p.Version, CreatedAt: p.CreatedAt,
		UpdatedAt: p.UpdatedAt, Variants: make([]cachedVariant, len(p.Variants))}
	for i, v := range p.Variants {
		cp.Variants[i] = cachedVariant{ID: v.ID, SKU: v.SKU, Name: v.Name, Amount: v.Price.Amount,
			Currency: v.Price.Currency, Attributes: v.Attributes, Position: v.Position}
	}
	return cp
}

func fromCached(cp cachedProduct) Product {
	p := Product{ID: cp.ID, Slug: cp.Slug, Name: cp.Name, Description: cp.Description, Category: cp.Category,
		Status: Status(cp.Status), Attributes: nonNil(cp.Attributes), Version: cp.Version,
		CreatedAt: cp.CreatedAt, UpdatedAt: cp.UpdatedAt, Variants: make([]Variant, len(cp.Variants))}
	for i, v := range cp.Variants {
		p.Variants[i] = Variant{ID: v.ID, ProductID: cp.ID, SKU: v.SKU, Name: v.Name,
			Price: money.New(v.Amount, v.Currency), Attributes: nonNil(v.Attributes), Position: v.Position}
	}
	return p
}

// encodeProduct returns the cache value of p: "<version>\n<json>".
func encodeProduct(p Product) ([]byte, error) {
	b := strconv.AppendInt(nil, p.Version, 10)
	b = append(b, '\n')
	j, err := json.Marshal(toCached(p))
	if err != nil {
		return nil, fmt.Errorf("encode product %s: %w", p.ID, err)
	}
	return append(b, j...), nil
}

// decodeProduct parses a cache value; ok is false when the value is unreadable (treated
// as a miss and overwritten by the next fill).
func decodeProduct(b []byte) (e entry, ok bool) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return entry{}, false
	}
	ver, err := strconv.ParseInt(string(b[:nl]), 10, 64)
	if err != nil {
		return entry{}, false
	}
	payload := b[nl+1:]
	if ver == 0 && len(payload) == 0 {
		return entry{missing: true}, true
	}
	var cp cachedProduct
	if err := json.Unmarshal(payload, &cp); err != nil {
		return entry{}, false
	}
	return entry{p: fromCached(cp)}, true
}
