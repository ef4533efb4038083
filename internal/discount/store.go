package discount

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"commerce/internal/platform/money"
)

var (
	// ErrNotFound is returned for a discount id that does not exist or is deleted.
	ErrNotFound = errors.New("discount: not found")
	// ErrConflict is returned when a write would give two live discounts the same code.
	ErrConflict = errors.New("discount: code already in use")
)

// Discount is a stored rule with its bookkeeping timestamps.
type Discount struct {
	Rule
	CreatedAt, UpdatedAt time.Time
}

// Store keeps discounts in PostgreSQL, the source of truth. Every write bumps the single
// ruleset version (table discount_ruleset) in the same transaction, so a version names
// exactly one set of rules and versions are ordered like the commits that made them.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const discountColumns = `id, name, code, kind, value, currency, scope_type, scope_ids,
	min_subtotal_amount, min_subtotal_currency, starts_at, ends_at, priority, stackable, active,
	created_at, updated_at`

// Create inserts d (its ID must be set) and returns it as stored with the new ruleset
// version. The code is stored as given (callers pass NormalizeCode output); "" is NULL.
// Errors: ErrConflict when a live discount already has the code.
func (s *Store) Create(ctx context.Context, r Rule) (Discount, int64, error) {
	var d Discount
	var version int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `INSERT INTO discounts (id, name, code, kind, value, currency, scope_type,
				scope_ids, min_subtotal_amount, min_subtotal_currency, starts_at, ends_at, priority,
				stackable, active)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			RETURNING `+discountColumns, ruleArgs(r)...)
		var err error
		if d, err = scanDiscount(row); err != nil {
			return err
		}
		version, err = bumpVersion(ctx, tx)
		return err
	})
	if err != nil {
		return Discount{}, 0, fmt.Errorf("create discount %s: %w", r.ID, translate(err))
	}
	return d, version, nil
}

// Get returns the live discount id.
// Errors: ErrNotFound.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Discount, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+discountColumns+` FROM discounts
		WHERE id = $1 AND deleted_at IS NULL`, id)
	d, err := scanDiscount(row)
	if err != nil {
		return Discount{}, fmt.Errorf("get discount %s: %w", id, translate(err))
	}
	return d, nil
}

// List returns every live discount in application order (priority descending, then id)
// and the ruleset version they make up, read in one snapshot.
func (s *Store) List(ctx context.Context) ([]Discount, int64, error) {
	var out []Discount
	var version int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT version FROM discount_ruleset WHERE id = 1`).Scan(&version); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT `+discountColumns+` FROM discounts
				WHERE deleted_at IS NULL ORDER BY priority DESC, id`)
			if err != nil {
				return err
			}
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Discount, error) { return scanDiscount(row) })
			return err
		})
	if err != nil {
		return nil, 0, fmt.Errorf("list discounts: %w", translate(err))
	}
	return out, version, nil
}

// Load returns the current ruleset: the version and every live rule, read in one
// REPEATABLE READ transaction so the rules are exactly those of that version.
func (s *Store) Load(ctx context.Context) (Ruleset, error) {
	ds, version, err := s.List(ctx)
	if err != nil {
		return Ruleset{}, err
	}
	rs := Ruleset{Version: version, Rules: make([]Rule, len(ds))}
	for i, d := range ds {
		rs.Rules[i] = d.Rule
	}
	return rs, nil
}

// Update applies fn to the live discount id under a row lock (SELECT … FOR UPDATE) and
// stores the result, bumping the ruleset version. fn may return an error to abort (it is
// returned as is, wrapped). The ID and timestamps are not taken from fn's result.
// Errors: ErrNotFound, ErrConflict, or fn's error.
func (s *Store) Update(ctx context.Context, id uuid.UUID, fn func(*Rule) error) (Discount, int64, error) {
	var d Discount
	var version int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := scanDiscount(tx.QueryRow(ctx, `SELECT `+discountColumns+` FROM discounts
			WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, id))
		if err != nil {
			return err
		}
		r := cur.Rule
		if err := fn(&r); err != nil {
			return err
		}
		r.ID = id
		args := ruleArgs(r)
		d, err = scanDiscount(tx.QueryRow(ctx, `UPDATE discounts SET name = $2, code = $3, kind = $4,
				value = $5, currency = $6, scope_type = $7, scope_ids = $8, min_subtotal_amount = $9,
				min_subtotal_currency = $10, starts_at = $11, ends_at = $12, priority = $13,
				stackable = $14, active = $15, updated_at = now()
			WHERE id = $1 RETURNING `+discountColumns, args...))
		if err != nil {
			return err
		}
		version, err = bumpVersion(ctx, tx)
		return err
	})
	if err != nil {
		return Discount{}, 0, fmt.Errorf("update discount %s: %w", id, translate(err))
	}
	return d, version, nil
}

// Delete soft-deletes the live discount id (its code becomes free) and returns the new
// ruleset version.
// Errors: ErrNotFound.
func (s *Store) Delete(ctx context.Context, id uuid.UUID) (int64, error) {
	var version int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE discounts SET deleted_at = now(), updated_at = now()
			WHERE id = $1 AND deleted_at IS NULL`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		version, err = bumpVersion(ctx, tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete discount %s: %w", id, translate(err))
	}
	return version, nil
}

// bumpVersion increments the ruleset version inside tx. The row lock it takes serialises
// discount writers, so version order is commit order.
func bumpVersion(ctx context.Context, tx pgx.Tx) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `UPDATE discount_ruleset SET version = version + 1 WHERE id = 1 RETURNING version`).Scan(&v)
	return v, err
}

func ruleArgs(r Rule) []any {
	var code, cur, msCur *string
	var msAmount *int64
	if r.Code != "" {
		code = &r.Code
	}
	if r.Currency != "" {
		cur = &r.Currency
	}
	if r.MinSubtotal != nil {
		msAmount, msCur = &r.MinSubtotal.Amount, &r.MinSubtotal.Currency
	}
	ids := r.Scope.IDs
	if ids == nil {
		ids = []string{}
	}
	return []any{r.ID, r.Name, code, string(r.Kind), r.Value, cur, string(r.Scope.Type), ids,
		msAmount, msCur, utcPtr(r.StartsAt), utcPtr(r.EndsAt), r.Priority, r.Stackable, r.Active}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func scanDiscount(row pgx.Row) (Discount, error) {
	var d Discount
	var code, cur, msCur *string
	var msAmount *int64
	var kind, scopeType string
	err := row.Scan(&d.ID, &d.Name, &code, &kind, &d.Value, &cur, &scopeType, &d.Scope.IDs,
		&msAmount, &msCur, &d.StartsAt, &d.EndsAt, &d.Priority, &d.Stackable, &d.Active,
		&d.CreatedAt, &d.UpdatedAt)
	if err != nil {
		return Discount{}, err
	}
	d.Kind, d.Scope.Type = Kind(kind), ScopeType(scopeType)
	if code != nil {
		d.Code = *code
	}
	if cur != nil {
		d.Currency = *cur
	}
	if msAmount != nil && msCur != nil {
		d.MinSubtotal = &money.Money{Amount: *msAmount, Currency: *msCur}
	}
	if d.Scope.IDs == nil {
		d.Scope.IDs = []string{}
	}
	d.StartsAt, d.EndsAt = utcPtr(d.StartsAt), utcPtr(d.EndsAt)
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, nil
}

// translate turns driver errors into the package's sentinels; others pass through.
func translate(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return ErrConflict
	}
	return err
}
