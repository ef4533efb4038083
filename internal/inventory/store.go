package inventory

import (
	"commerce/internal/platform/db"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Outcomes of a commit attempt in inventory_commits.
const (
	outcomeCommitted = "committed"
	outcomeAborted   = "aborted"
)

var (
	// errAttemptAborted: recovery recorded the attempt as aborted before its transaction
	// could commit (the transaction was rolled back).
	errAttemptAborted = errors.New("inventory: commit attempt was aborted by recovery")
	// errOutcomeUnknown: COMMIT failed in a way that leaves its outcome unknown.
	errOutcomeUnknown = errors.New("inventory: commit outcome unknown")
	// errCASFailed: on_hand was not the expected value (Set's compare-and-set).
	errCASFailed = errors.New("inventory: on_hand changed")
)

// store is the PostgreSQL side. Only this file speaks SQL.
type store struct {
	pool *pgxpool.Pool
}

type stockRow struct {
	OnHand, Version int64
}

// stock reads a variant's on_hand and version; ErrNotFound when it has no row.
func (s store) stock(ctx context.Context, id uuid.UUID) (stockRow, error) {
	var r stockRow
	err := s.pool.QueryRow(ctx, `SELECT on_hand, version FROM inventory WHERE variant_id = $1`, id).
		Scan(&r.OnHand, &r.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("variant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("inventory: read stock: %w", err)
	}
	return r, nil
}

// stockMany reads several variants; unknown ones are absent.
func (s store) stockMany(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]stockRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT variant_id, on_hand, version FROM inventory WHERE variant_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("inventory: read stock: %w", err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]stockRow, len(ids))
	for rows.Next() {
		var id uuid.UUID
		var r stockRow
		if err := rows.Scan(&id, &r.OnHand, &r.Version); err != nil {
			return nil, fmt.Errorf("inventory: read stock: %w", err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inventory: read stock: %w", err)
	}
	return out, nil
}

type pageRow struct {
	ID uuid.UUID
	stockRow
}

// page returns up to limit inventory rows with variant_id > after, in id order.
func (s store) page(ctx context.Context, after uuid.UUID, limit int) ([]pageRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT variant_id, on_hand, version FROM inventory
		WHERE variant_id > $1 ORDER BY variant_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("inventory: page stock: %w", err)
	}
	defer rows.Close()
	var out []pageRow
	for rows.Next() {
		var r pageRow
		if err := rows.Scan(&r.ID, &r.OnHand, &r.Version); err != nil {
			return nil, fmt.Errorf("inventory: page stock: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inventory: page stock: %w", err)
	}
	return out, nil
}

// saleSpec is the PostgreSQL half of a commit attempt: lines leave on_hand in one
// transaction that also runs inTx and records the attempt as committed.
type saleSpec struct {
	attempt, holder   string
	lines             []Line // sorted by variant id (lock order)
	reason, reference string
	expected          *int64 // Set: on_hand must be exactly this (single line)
	inTx              func(ctx context.Context, tx db.Tx) error
}

// sell runs the transaction. It returns the inventory version each line wrote. Errors:
// inTx's error; ErrNotFound; ErrInsufficientStock (on_hand below a line); errCASFailed;
// errAttemptAborted; errOutcomeUnknown (wrapping the cause) when COMMIT itself failed.
// Any other error means the transaction did not commit.
func (s store) sell(ctx context.Context, sp saleSpec) (map[uuid.UUID]int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("inventory: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if sp.inTx != nil {
		if err := sp.inTx(ctx, tx); err != nil {
			return nil, err
		}
	}
	versions := make(map[uuid.UUID]int64, len(sp.lines))
	for _, l := range sp.lines {
		var onHand, version int64
		// One round trip: the guarded decrement and its ledger row (a data-modifying CTE
		// runs whether or not the outer query reads it; no row decremented, no ledger row).
		err := tx.QueryRow(ctx, `WITH u AS (
			UPDATE inventory SET on_hand = on_hand - $2, version = version + 1, updated_at = now()
			WHERE variant_id = $1 AND on_hand >= $2 AND ($3::bigint IS NULL OR on_hand = $3)
			RETURNING variant_id, on_hand, version
		), ledger AS (
			INSERT INTO stock_ledger (variant_id, delta, on_hand_after, version, reason, reference)
			SELECT variant_id, -$2::bigint, on_hand, version, $4, $5 FROM u
		)
		SELECT on_hand, version FROM u`, l.VariantID, l.Quantity, sp.expected, sp.reason, sp.reference).Scan(&onHand, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			var cur int64
			err := tx.QueryRow(ctx, `SELECT on_hand FROM inventory WHERE variant_id = $1`, l.VariantID).Scan(&cur)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				return nil, fmt.Errorf("variant %s: %w", l.VariantID, ErrNotFound)
			case err != nil:
				return nil, fmt.Errorf("inventory: sell: %w", err)
			case sp.expected != nil && cur != *sp.expected:
				return nil, errCASFailed
			}
			return nil, fmt.Errorf("variant %s: on_hand %d below %d held: %w", l.VariantID, cur, l.Quantity,
				ErrInsufficientStock)
		}
		if err != nil {
			return nil, fmt.Errorf("inventory: sell: %w", err)
		}
		versions[l.VariantID] = version
	}
	vj, err := json.Marshal(versions)
	if err != nil {
		return nil, err
	}
	// The fence against recovery: whoever inserts the attempt first decides it. If
	// recovery's 'aborted' row is being inserted, this waits for it, then conflicts.
	tag, err := tx.Exec(ctx, `INSERT INTO inventory_commits (attempt, holder, outcome, versions)
		VALUES ($1, $2, 'committed', $3) ON CONFLICT (attempt) DO NOTHING`, sp.attempt, sp.holder, vj)
	if err != nil {
		return nil, fmt.Errorf("inventory: record attempt: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil, errAttemptAborted
	}
	if err := tx.Commit(ctx); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("inventory: commit: %w", err) // the server refused: rolled back
		}
		return nil, fmt.Errorf("%w: %w", errOutcomeUnknown, err)
	}
	return versions, nil
}

// resolve decides a commit attempt for recovery: unless its transaction committed (or
// is committing: the insert waits for it), it is recorded as aborted, which makes that
// transaction fail if it is still running. It returns the outcome and, when committed,
// the version each variant's sale wrote.
func (s store) resolve(ctx context.Context, attempt, holder string) (string, map[uuid.UUID]int64, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO inventory_commits (attempt, holder, outcome)
		VALUES ($1, $2, 'aborted') ON CONFLICT (attempt) DO NOTHING`, attempt, holder); err != nil {
		return "", nil, fmt.Errorf("inventory: resolve attempt: %w", err)
	}
	var outcome string
	var vj []byte
	if err := s.pool.QueryRow(ctx, `SELECT outcome, versions FROM inventory_commits WHERE attempt = $1`, attempt).
		Scan(&outcome, &vj); err != nil {
		return "", nil, fmt.Errorf("inventory: resolve attempt: %w", err)
	}
	var versions map[uuid.UUID]int64
	if err := json.Unmarshal(vj, &versions); err != nil {
		return "", nil, fmt.Errorf("inventory: resolve attempt: %w", err)
	}
	return outcome, versions, nil
}

// add increases on_hand by delta (> 0) and writes the ledger; expected (Set) makes it a
// compare-and-set. Errors: ErrNotFound, errCASFailed.
func (s store) add(ctx context.Context, id uuid.UUID, delta int64, expected *int64, reason, reference string) (stockRow, error) {
	var r stockRow
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE inventory SET on_hand = on_hand + $2, version = version + 1, updated_at = now()
			WHERE variant_id = $1 AND ($3::bigint IS NULL OR on_hand = $3)
			RETURNING on_hand, version`, id, delta, expected).Scan(&r.OnHand, &r.Version)
		if errors.Is(err, pgx.ErrNoRows) {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM inventory WHERE variant_id = $1`, id).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("variant %s: %w", id, ErrNotFound)
			}
			if err != nil {
				return err
			}
			return errCASFailed
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO stock_ledger (variant_id, delta, on_hand_after, version, reason, reference)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, delta, r.OnHand, r.Version, reason, reference)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, errCASFailed) {
			return r, err
		}
		return r, fmt.Errorf("inventory: adjust: %w", err)
	}
	return r, nil
}
