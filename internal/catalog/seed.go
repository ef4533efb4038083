package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// Seed loads the demo catalog when the catalog is empty and returns how many products it
// created (0 when there were products already). It is deterministic: the same slugs,
// SKUs, ids, prices and stock every time, so README examples can name them. Products a
// concurrent seeder created first (same slug) are skipped, so two replicas seeding at
// once end with one catalog.
//
// The demo catalog: 50 products in 6 categories with 150 variants, prices in minor units
// of the shop currency, stock 0–200. 48 products are active; "preview-parka" is a draft
// and "vintage-tote" is archived (both 404 on /v1). Ids are UUIDv7-shaped and fixed:
// SeedProductID("red-runner") and SeedVariantID("RR-42") return them.
//
//	category  products  variants per product
//	shoes     9         3 sizes: <PREFIX>-40, -42, -44     e.g. red-runner: RR-40, RR-42, RR-44
//	shirts    9         3 sizes: <PREFIX>-S, -M, -L         e.g. oxford-shirt: OX-S, OX-M, OX-L
//	hats      8         3 colours: <PREFIX>-BLK, -NVY, -TAN e.g. wool-beanie: WB-BLK, WB-NVY, WB-TAN
//	bags      8         2 colours: <PREFIX>-BLK, -BRN        e.g. canvas-tote: CT-BLK, CT-BRN
//	socks     8         3 sizes: <PREFIX>-S, -M, -L         e.g. merino-crew: MC-S, MC-M, MC-L
//	jackets   8         4 sizes: <PREFIX>-S, -M, -L, -XL    e.g. rain-shell: RS-S … RS-XL
//
// Stock for demos: red-runner RR-40 has 25, RR-42 has 3 (insufficient stock for 4),
// RR-44 has 0 (sold out); oxford-shirt OX-M has 1; canvas-tote CT-BRN has 0; every other
// variant has a deterministic 0–200 (a few more at 0 and at 1–3).
//
// Fixed ids for examples (a test pins them):
//
//	red-runner     01941f29-7fe8-79ac-869c-c946c8a3a711
//	  RR-40        01941f29-7fe9-7720-9b7e-64e5136c29ec   stock 25
//	  RR-42        01941f29-7fea-7a4a-a962-940ee87c799b   stock 3
//	  RR-44        01941f29-7feb-760c-8342-e952694e777f   stock 0
//	oxford-shirt   01941f29-a310-7b42-87ff-5a65dc330ec9
//	  OX-M         01941f29-a312-734c-ab68-c166dbd6d64f   stock 1
//	preview-parka  01941f2a-3f50-70ee-b2ea-654ca188aaed   draft: 404 on /v1
func Seed(ctx context.Context, svc *Service) (int, error) {
	n, err := svc.store.Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("seed catalog: %w", err)
	}
	if n > 0 {
		return 0, nil
	}
	created := 0
	for _, np := range demoCatalog(svc.Currency()) {
		if _, err := svc.Create(ctx, np); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return created, fmt.Errorf("seed catalog: %w", err)
		}
		created++
	}
	return created, nil
}

// SeedProductID is the fixed id Seed gives the demo product with this slug.
func SeedProductID(slug string) uuid.UUID { return seedID("product:"+slug, seedOrdinal(slug, "")) }

// SeedVariantID is the fixed id Seed gives the demo variant with this SKU.
func SeedVariantID(sku string) uuid.UUID { return seedID("variant:"+sku, seedOrdinal("", sku)) }

// seedID is a UUIDv7-shaped id derived from key: the 48-bit time field is a fixed epoch
// (2025-01-01) plus ord, so demo ids sort in seed order; the rest is a hash of key.
func seedID(key string, ord uint64) uuid.UUID {
	h := sha256.Sum256([]byte("commerce-demo:" + key))
	var u uuid.UUID
	copy(u[:], h[:16])
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], 1735689600000+ord)
	copy(u[0:6], ts[2:8])
	u[6] = 0x70 | (u[6] & 0x0f) // version 7
	u[8] = 0x80 | (u[8] & 0x3f) // RFC 4122 variant
	return u
}

type demoCategory struct {
	name     string
	variants []struct{ code, label, attr, value string }
	products []demoProduct
}

type demoProduct struct {
	slug, name, prefix, brand, material string
	price                               int64
}

func dims(attr string, pairs ...string) []struct{ code, label, attr, value string } {
	out := make([]struct{ code, label, attr, value string }, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, struct{ code, label, attr, value string }{pairs[i], pairs[i+1], attr, pairs[i+1]})
	}
	return out
}

var (
	sizesShoes  = dims("size", "40", "40", "42", "42", "44", "44")
	sizesSML    = dims("size", "S", "S", "M", "M", "L", "L")
	sizesSMLXL  = dims("size", "S", "S", "M", "M", "L", "L", "XL", "XL")
	coloursHats = dims("color", "BLK", "Black", "NVY", "Navy", "TAN", "Tan")
	coloursBags = dims("color", "BLK", "Black", "BRN", "Brown")
)

func demoCategories() []demoCategory {
	return []demoCategory{
		{"shoes", sizesShoes, []demoProduct{
			{"red-runner", "Red Runner", "RR", "Stride", "mesh", 8999},
			{"trail-blazer", "Trail Blazer", "TB", "Summit", "nylon", 12999},
			{"city-loafer", "City Loafer", "CL", "Marlow", "leather", 10999},
			{"canvas-sneaker", "Canvas Sneaker", "CS", "Stride", "canvas", 5499},
			{"leather-boot", "Leather Boot", "LB", "Marlow", "leather", 17999},
			{"court-classic", "Court Classic", "CC", "Baseline", "leather", 7999},
			{"summer-sandal", "Summer Sandal", "SS", "Coast", "rubber", 3999},
			{"hiking-boot", "Hiking Boot", "HB", "Summit", "suede", 15999},
			{"slip-on-comfort", "Slip-On Comfort", "SO", "Coast", "knit", 4999},
		}},
		{"shirts", sizesSML, []demoProduct{
			{"oxford-shirt", "Oxford Shirt", "OX", "Marlow", "cotton", 5999},
			{"linen-shirt", "Linen Shirt", "LS", "Coast", "linen", 6999},
			{"flannel-shirt", "Flannel Shirt", "FS", "Summit", "cotton flannel", 5499},
			{"basic-tee", "Basic Tee", "BT", "Baseline", "cotton", 1999},
			{"striped-tee", "Striped Tee", "ST", "Coast", "cotton", 2499},
			{"polo-shirt", "Polo Shirt", "PS", "Baseline", "pique cotton", 3999},
			{"denim-shirt", "Denim Shirt", "DS", "Marlow", "denim", 6499},
			{"henley-shirt", "Henley Shirt", "HS", "Stride", "cotton", 3499},
			{"performance-tee", "Performance Tee", "PT", "Stride", "polyester", 2999},
		}},
		{"hats", coloursHats, []demoProduct{
			{"wool-beanie", "Wool Beanie", "WB", "Summit", "wool", 2499},
			{"baseball-cap", "Baseball Cap", "BC", "Baseline", "cotton twill", 2199},
			{"bucket-hat", "Bucket Hat", "BH", "Coast", "cotton", 2799},
			{"sun-hat", "Sun Hat", "SH", "Coast", "straw", 3499},
			{"trucker-cap", "Trucker Cap", "TC", "Stride", "mesh", 1999},
			{"felt-fedora", "Felt Fedora", "FF", "Marlow", "wool felt", 6999},
			{"knit-headband", "Knit Headband", "KH", "Summit", "acrylic", 1499},
			{"running-visor", "Running Visor", "RV", "Stride", "polyester", 1799},
		}},
		{"bags", coloursBags, []demoProduct{
			{"canvas-tote", "Canvas Tote", "CT", "Coast", "canvas", 2999},
			{"leather-backpack", "Leather Backpack", "LP", "Marlow", "leather", 18999},
			{"daypack", "Daypack", "DP", "Summit", "nylon", 7999},
			{"messenger-bag", "Messenger Bag", "MB", "Marlow", "waxed canvas", 11999},
			{"gym-duffel", "Gym Duffel", "GD", "Stride", "polyester", 5999},
			{"crossbody-bag", "Crossbody Bag", "CB", "Coast", "leather", 8999},
			{"laptop-sleeve", "Laptop Sleeve", "LV", "Baseline", "neoprene", 3499},
			{"vintage-tote", "Vintage Tote", "VT", "Marlow", "suede", 9999},
		}},
		{"socks", sizesSML, []demoProduct{
			{"merino-crew", "Merino Crew Socks", "MC", "Summit", "merino wool", 1899},
			{"ankle-socks", "Ankle Socks", "AS", "Baseline", "cotton", 999},
			{"hiking-socks", "Hiking Socks", "HK", "Summit", "wool blend", 2199},
			{"dress-socks", "Dress Socks", "DR", "Marlow", "cotton", 1299},
			{"running-socks", "Running Socks", "RN", "Stride", "polyester", 1499},
			{"cozy-socks", "Cozy Socks", "CZ", "Coast", "fleece", 1199},
			{"compression-socks", "Compression Socks", "CP", "Stride", "nylon", 2499},
			{"striped-socks", "Striped Socks", "SK", "Coast", "cotton", 899},
		}},
		{"jackets", sizesSMLXL, []demoProduct{
			{"rain-shell", "Rain Shell", "RS", "Summit", "nylon", 14999},
			{"denim-jacket", "Denim Jacket", "DJ", "Marlow", "denim", 9999},
			{"puffer-jacket", "Puffer Jacket", "PJ", "Summit", "down", 19999},
			{"fleece-jacket", "Fleece Jacket", "FJ", "Coast", "fleece", 7999},
			{"bomber-jacket", "Bomber Jacket", "BJ", "Baseline", "nylon", 11999},
			{"windbreaker", "Windbreaker", "WN", "Stride", "polyester", 6999},
			{"wool-coat", "Wool Coat", "WC", "Marlow", "wool", 24999},
			{"preview-parka", "Preview Parka", "PP", "Summit", "down", 29999},
		}},
	}
}

// demoStockOverrides pins the stock of the variants README examples rely on.
var demoStockOverrides = map[string]int64{"RR-40": 25, "RR-42": 3, "RR-44": 0, "OX-M": 1, "CT-BRN": 0}

// seedOrdinal is the position of a demo product (or variant) in the seed order, so ids
// sort like the catalog; 0 for names that are not in the demo catalog.
func seedOrdinal(slug, sku string) uint64 {
	pi := 0
	for _, cat := range demoCategories() {
		for _, dp := range cat.products {
			pi++
			if slug != "" && dp.slug == slug {
				return uint64(pi) * 1000
			}
			for j, d := range cat.variants {
				if sku != "" && dp.prefix+"-"+d.code == sku {
					return uint64(pi)*1000 + uint64(j) + 1
				}
			}
		}
	}
	return 0
}

func demoCatalog(currency string) []NewProduct {
	var out []NewProduct
	k := 0 // variant counter over the whole catalog, for deterministic stock
	pi := 0
	for _, cat := range demoCategories() {
		for _, dp := range cat.products {
			pi++
			status := StatusActive
			switch dp.slug {
			case "preview-parka":
				status = StatusDraft
			case "vintage-tote":
				status = StatusArchived
			}
			np := NewProduct{
				ID: seedID("product:"+dp.slug, uint64(pi)*1000), Slug: dp.slug, Name: dp.name,
				Description: fmt.Sprintf("The %s by %s, made of %s. Part of the demo catalog.", dp.name, dp.brand, dp.material),
				Category:    cat.name, Status: status,
				Attributes: map[string]any{"brand": dp.brand, "material": dp.material},
			}
			for j, d := range cat.variants {
				k++
				sku := dp.prefix + "-" + d.code
				stock := int64(10 + (k*37)%191)
				switch {
				case k%13 == 5:
					stock = 0
				case k%17 == 3:
					stock = int64(1 + k%3)
				}
				if s, ok := demoStockOverrides[sku]; ok {
					stock = s
				}
				price := dp.price
				if d.code == "XL" || d.code == "44" {
					price += 500 // the biggest sizes cost a little more
				}
				np.Variants = append(np.Variants, NewVariant{
					ID: seedID("variant:"+sku, uint64(pi)*1000+uint64(j)+1), SKU: sku, Name: d.label,
					Price: money.New(price, currency), Attributes: map[string]any{d.attr: d.value}, Stock: stock,
				})
			}
			out = append(out, np)
		}
	}
	return out
}
