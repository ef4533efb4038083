package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"commerce/internal/platform/money"
)

// Store is the catalog in PostgreSQL, the source of truth. Every method is safe for
// concurrent use. Every write also records, in its own transaction, a row of
// catalog_invalidations for the product it changed (recordInvalidation): the cache
// invalidation that must follow the commit is then never lost (see Service). A new write
// method must do the same. Driver errors never leave it as such: a unique violation becomes a
// *ConflictError, a missing row ErrNotFound; connection failures are returned wrapped and
// are recognised by fault.IsUnavailable.
type Store struct {
	pool     *pgxpool.Pool
	currency string
}

// NewStore returns a store on pool for a shop selling in currency (ISO 4217, e.g. "USD").
func NewStore(pool *pgxpool.Pool, currency string) *Store {
	return &Store{pool: pool, currency: currency}
}

// Currency is the shop currency every price must be in.
func (s *Store) Currency() string { return s.currency }

// productSelect reads products with their variants in one statement, hence from one
// snapshot: a product's version always matches the variants returned with it.
const productSelect = `
SELECT p.id, p.slug, p.name, p.description, p.category, p.status, p.attributes, p.version,
       p.created_at, p.updated_at,
       COALESCE((SELECT jsonb_agg(jsonb_build_object(
                    'id', v.id, 'sku', v.sku, 'name', v.name, 'amount', v.price_amount,
                    'currency', v.currency, 'attributes', v.attributes, 'position', v.position)
                  ORDER BY v.position, v.id)
                 FROM variants v WHERE v.product_id = p.id), '[]'::jsonb)
FROM products p`

type variantRow struct {
	ID         uuid.UUID      `json:"id"`
	SKU        string         `json:"sku"`
	Name       string         `json:"name"`
	Amount     int64          `json:"amount"`
	Currency   string         `json:"currency"`
	Attributes map[string]any `json:"attributes"`
	Position   int            `json:"position"`
}

func scanProduct(row pgx.Row) (Product, error) {
	var p Product
	var status string
	var vs []variantRow
	if err := row.Scan(&p.ID, &p.Slug, &p.Name, &p.Description, &p.Category, &status, &p.Attributes,
		&p.Version, &p.CreatedAt, &p.UpdatedAt, &vs); err != nil {
		return Product{}, err
	}
	p.Status = Status(status)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if p.Attributes == nil {
		p.Attributes = map[string]any{}
	}
	p.Variants = make([]Variant, len(vs))
	for i, v := range vs {
		attrs := v.Attributes
		if attrs == nil {
			attrs = map[string]any{}
		}
		p.Variants[i] = Variant{ID: v.ID, ProductID: p.ID, SKU: v.SKU, Name: v.Name,
			Price: money.New(v.Amount, v.Currency), Attributes: attrs, Position: v.Position}
	}
	return p, nil
}

func (s *Store) queryProducts(ctx context.Context, q pgx.Tx, sql string, args ...any) ([]Product, error) {
	var rows pgx.Rows
	var err error
	if q != nil {
		rows, err = q.Query(ctx, sql, args...)
	} else {
		rows, err = s.pool.Query(ctx, sql, args...)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Product
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// translate maps driver errors that are about the request to the package's sentinels.
func translate(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			field := "slug"
			if pe.TableName == "variants" {
				field = "sku"
			}
			return &ConflictError{Field: field}
		case "23514", "22001", "22P02", "22021", "22P05":
			// check_violation, string too long, bad text representation, bad encoding,
			// unsupported Unicode escape: input the validation should have caught.
			return &ValidationError{Fields: map[string]string{"product": "violates a catalog constraint"}}
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

func (s *Store) checkCurrency(field string, m money.Money) error {
	if m.Currency != s.currency {
		return &ValidationError{Fields: map[string]string{field: "must be " + s.currency}}
	}
	return nil
}

// Create inserts the product, its variants, their inventory rows (on_hand = stock,
// version 1) and one 'initial' stock ledger row per variant, all in one transaction, and
// returns the product as stored (version 1). Zero ids are replaced by new UUIDv7s.
// Errors: *ConflictError (slug or SKU taken), *ValidationError (a price not in the shop
// currency, or a database constraint), or a dependency error.
func (s *Store) Create(ctx context.Context, np NewProduct) (Product, error) {
	if np.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return Product{}, fmt.Errorf("create product: %w", err)
		}
		np.ID = id
	}
	if np.Status == "" {
		np.Status = StatusActive
	}
	for i := range np.Variants {
		if err := s.checkCurrency(fmt.Sprintf("variants[%d].price.currency", i), np.Variants[i].Price); err != nil {
			return Product{}, err
		}
		if np.Variants[i].ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return Product{}, fmt.Errorf("create product: %w", err)
			}
			np.Variants[i].ID = id
		}
	}
	var out Product
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO products (id, slug, name, description, category, status, attributes, version)
		         VALUES ($1, $2, $3, $4, $5, $6, $7, 1)`,
			np.ID, np.Slug, np.Name, np.Description, np.Category, string(np.Status), nonNil(np.Attributes))
		for i, v := range np.Variants {
			b.Queue(`INSERT INTO variants (id, product_id, sku, name, price_amount, currency, attributes, position)
			         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				v.ID, np.ID, v.SKU, v.Name, v.Price.Amount, v.Price.Currency, nonNil(v.Attributes), i)
			b.Queue(`INSERT INTO inventory (variant_id, on_hand, version) VALUES ($1, $2, 1)`, v.ID, v.Stock)
			b.Queue(`INSERT INTO stock_ledger (variant_id, delta, on_hand_after, version, reason)
			         VALUES ($1, $2, $2, 1, 'initial')`, v.ID, v.Stock)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		ps, err := s.queryProducts(ctx, tx, productSelect+` WHERE p.id = $1`, np.ID)
		if err != nil {
			return err
		}
		if len(ps) != 1 {
			return fmt.Errorf("product %s vanished inside its own transaction", np.ID)
		}
		out = ps[0]
		return recordInvalidation(ctx, tx, out)
	})
	if err != nil {
		return Product{}, fmt.Errorf("create product %q: %w", np.Slug, translate(err))
	}
	return out, nil
}

// Get returns the product in any status. Errors: ErrNotFound, or a dependency error.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Product, error) {
	p, err := scanProduct(s.pool.QueryRow(ctx, productSelect+` WHERE p.id = $1`, id))
	if err != nil {
		return Product{}, fmt.Errorf("get product %s: %w", id, translate(err))
	}
	return p, nil
}

// GetActive returns the product when it is active. Errors: ErrNotFound (unknown or not
// active), or a dependency error.
func (s *Store) GetActive(ctx context.Context, id uuid.UUID) (Product, error) {
	p, err := scanProduct(s.pool.QueryRow(ctx, productSelect+` WHERE p.id = $1 AND p.status = 'active'`, id))
	if err != nil {
		return Product{}, fmt.Errorf("get active product %s: %w", id, translate(err))
	}
	return p, nil
}

// Products returns the products with the given ids, in any status, ordered by id; unknown
// ids are absent.
func (s *Store) Products(ctx context.Context, ids []uuid.UUID) ([]Product, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ps, err := s.queryProducts(ctx, nil, productSelect+` WHERE p.id = ANY($1) ORDER BY p.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("get %d products: %w", len(ids), translate(err))
	}
	return ps, nil
}

// ProductsOfVariants returns, in any status, every product that has one of the variants;
// unknown variant ids contribute nothing.
func (s *Store) ProductsOfVariants(ctx context.Context, variantIDs []uuid.UUID) ([]Product, error) {
	if len(variantIDs) == 0 {
		return nil, nil
	}
	ps, err := s.queryProducts(ctx, nil, productSelect+
		` WHERE p.id IN (SELECT product_id FROM variants WHERE id = ANY($1)) ORDER BY p.id`, variantIDs)
	if err != nil {
		return nil, fmt.Errorf("get products of %d variants: %w", len(variantIDs), translate(err))
	}
	return ps, nil
}

// ListActive returns one page of active products (of q.Category when it is not empty),
// ordered by created_at then id, and how many match in total. q must be valid (Page ≥ 1,
// PerPage ≥ 1); a page past the end is empty.
func (s *Store) ListActive(ctx context.Context, q ListQuery) (Page, error) {
	// The page's ids come from the listing index alone (OFFSET walks index entries, not
	// products); only the PerPage products of the page are built with their variants.
	var (
		countSQL = `SELECT count(*) FROM products WHERE status = 'active'`
		pageSQL  = productSelect + ` WHERE p.id IN (SELECT id FROM products WHERE status = 'active'
		          ORDER BY created_at, id LIMIT $1 OFFSET $2) ORDER BY p.created_at, p.id`
		args = []any{}
	)
	if q.Category != "" {
		countSQL += ` AND category = $1`
		pageSQL = productSelect + ` WHERE p.id IN (SELECT id FROM products WHERE status = 'active' AND category = $3
		          ORDER BY created_at, id LIMIT $1 OFFSET $2) ORDER BY p.created_at, p.id`
		args = append(args, q.Category)
	}
	var pg Page
	if err := s.pool.QueryRow(ctx, countSQL, args...).Scan(&pg.Total); err != nil {
		return Page{}, fmt.Errorf("count products: %w", translate(err))
	}
	items, err := s.queryProducts(ctx, nil, pageSQL, append([]any{q.PerPage, q.offset()}, args...)...)
	if err != nil {
		return Page{}, fmt.Errorf("list products: %w", translate(err))
	}
	pg.Items = items
	if pg.Items == nil {
		pg.Items = []Product{}
	}
	return pg, nil
}

// AllActiveIDs returns the ids of every active product, ordered by id (for cache warming).
func (s *Store) AllActiveIDs(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM products WHERE status = 'active' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("active product ids: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("active product ids: %w", translate(err))
	}
	return ids, nil
}

// Count returns how many products exist in any status.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM products`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count products: %w", translate(err))
	}
	return n, nil
}

// Variants returns what carts need to know about each variant, read from PostgreSQL;
// unknown ids are absent from the map.
func (s *Store) Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]VariantInfo, error) {
	out := make(map[uuid.UUID]VariantInfo, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT v.id, v.product_id, v.sku, p.name, v.name, p.category, v.price_amount, v.currency, p.status
		FROM variants v JOIN products p ON p.id = v.product_id
		WHERE v.id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("variants: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var vi VariantInfo
		var status string
		if err := rows.Scan(&vi.ID, &vi.ProductID, &vi.SKU, &vi.ProductName, &vi.VariantName, &vi.Category,
			&vi.Price.Amount, &vi.Price.Currency, &status); err != nil {
			return nil, fmt.Errorf("variants: %w", err)
		}
		vi.Active = Status(status) == StatusActive
		out[vi.ID] = vi
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("variants: %w", translate(err))
	}
	return out, nil
}

// Update changes the fields of p that are set, bumps the product's version and
// updated_at, and returns the product after the change. An empty patch changes nothing
// and returns the product as it is. Errors: ErrNotFound, *ValidationError (a database
// constraint), or a dependency error.
func (s *Store) Update(ctx context.Context, id uuid.UUID, p ProductPatch) (Product, error) {
	if p.empty() {
		return s.Get(ctx, id)
	}
	var status *string
	if p.Status != nil {
		st := string(*p.Status)
		status = &st
	}
	var attrs any
	if p.Attributes != nil {
		attrs = p.Attributes
	}
	var out Product
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE products SET name = COALESCE($2, name), description = COALESCE($3, description),
			       category = COALESCE($4, category), status = COALESCE($5, status),
			       attributes = COALESCE($6::jsonb, attributes), version = version + 1, updated_at = now()
			WHERE id = $1`, id, p.Name, p.Description, p.Category, status, attrs)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		if out, err = scanProduct(tx.QueryRow(ctx, productSelect+` WHERE p.id = $1`, id)); err != nil {
			return err
		}
		return recordInvalidation(ctx, tx, out)
	})
	if err != nil {
		return Product{}, fmt.Errorf("update product %s: %w", id, translate(err))
	}
	return out, nil
}

// UpdateVariant changes the fields of the variant that are set, bumps its PRODUCT's
// version and updated_at (a product's cache entry holds its variants), and returns the
// product after the change. Errors: ErrNotFound (no such variant), *ValidationError (a
// price not in the shop currency, a database constraint), or a dependency error.
func (s *Store) UpdateVariant(ctx context.Context, id uuid.UUID, p VariantPatch) (Product, error) {
	var amount *int64
	var currency *string
	if p.Price != nil {
		if err := s.checkCurrency("price.currency", *p.Price); err != nil {
			return Product{}, err
		}
		amount, currency = &p.Price.Amount, &p.Price.Currency
	}
	var attrs any
	if p.Attributes != nil {
		attrs = p.Attributes
	}
	var out Product
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var productID uuid.UUID
		// Lock order everywhere: the variant row, then its product row.
		if err := tx.QueryRow(ctx, `
			UPDATE variants SET name = COALESCE($2, name), price_amount = COALESCE($3, price_amount),
			       currency = COALESCE($4, currency), attributes = COALESCE($5::jsonb, attributes),
			       updated_at = now()
			WHERE id = $1 RETURNING product_id`, id, p.Name, amount, currency, attrs).Scan(&productID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE products SET version = version + 1, updated_at = now() WHERE id = $1`,
			productID); err != nil {
			return err
		}
		var err error
		if out, err = scanProduct(tx.QueryRow(ctx, productSelect+` WHERE p.id = $1`, productID)); err != nil {
			return err
		}
		return recordInvalidation(ctx, tx, out)
	})
	if err != nil {
		return Product{}, fmt.Errorf("update variant %s: %w", id, translate(err))
	}
	return out, nil
}

// Archive sets the product's status to archived, bumping its version, and returns it.
// Archiving an archived product changes nothing. Errors: ErrNotFound, or a dependency error.
func (s *Store) Archive(ctx context.Context, id uuid.UUID) (Product, error) {
	var out Product
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			UPDATE products SET status = 'archived', version = version + 1, updated_at = now()
			WHERE id = $1 AND status <> 'archived'`, id); err != nil {
			return err
		}
		var err error
		if out, err = scanProduct(tx.QueryRow(ctx, productSelect+` WHERE p.id = $1`, id)); err != nil {
			return err
		}
		return recordInvalidation(ctx, tx, out)
	})
	if err != nil {
		return Product{}, fmt.Errorf("archive product %s: %w", id, translate(err))
	}
	return out, nil
}

// recordInvalidation records, inside the write's transaction tx, that p's cache entries
// must be invalidated at version p.Version.
func recordInvalidation(ctx context.Context, tx pgx.Tx, p Product) error {
	_, err := tx.Exec(ctx, `INSERT INTO catalog_invalidations (product_id, version) VALUES ($1, $2)`, p.ID, p.Version)
	return err
}

// PendingInvalidations returns up to limit products with invalidations not yet confirmed,
// the oldest first.
func (s *Store) PendingInvalidations(ctx context.Context, limit int) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT product_id FROM catalog_invalidations
		GROUP BY product_id ORDER BY min(id) LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending invalidations: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("pending invalidations: %w", translate(err))
	}
	return ids, nil
}

// ClearInvalidations deletes the invalidation rows that the publication of ps confirmed:
// those of each product up to the version published.
func (s *Store) ClearInvalidations(ctx context.Context, ps []Product) error {
	if len(ps) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(ps))
	vers := make([]int64, len(ps))
	for i, p := range ps {
		ids[i], vers[i] = p.ID, p.Version
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM catalog_invalidations c
		USING unnest($1::uuid[], $2::bigint[]) AS d(product_id, version)
		WHERE c.product_id = d.product_id AND c.version <= d.version`, ids, vers); err != nil {
		return fmt.Errorf("clear invalidations: %w", translate(err))
	}
	return nil
}
