package inventory

import (
	"commerce/internal/platform/db"
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// RestockInTx adds delta (> 0) units of the variant to on_hand inside tx, the caller's
// PostgreSQL transaction (with a ledger row and a version bump, as Adjust writes them),
// and returns the version it wrote. It lets a caller record a restock in the same
// transaction as the decision that causes it (a refund, a cancelled order). Once tx has
// committed, RaiseCounter brings the Redis counter up; until it runs the counter is
// low, the safe direction, and reconcile repairs it if it never runs.
func (s *Service) RestockInTx(ctx context.Context, tx db.Tx, variantID uuid.UUID, delta int64, reason, reference string) (int64, error) {
	if delta <= 0 || delta > MaxAdjust {
		return 0, fmt.Errorf("restock must be between 1 and %d units: %w", MaxAdjust, ErrInvalid)
	}
	if !validReason(reason) {
		return 0, fmt.Errorf("reason must be 1-200 characters: %w", ErrInvalid)
	}
	var onHand, version int64
	err := tx.QueryRow(ctx, `UPDATE inventory SET on_hand = on_hand + $2, version = version + 1, updated_at = now()
		WHERE variant_id = $1 RETURNING on_hand, version`, variantID, delta).Scan(&onHand, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("variant %s: %w", variantID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("inventory: restock: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO stock_ledger (variant_id, delta, on_hand_after, version, reason, reference)
		VALUES ($1, $2, $3, $4, $5, $6)`, variantID, delta, onHand, version, reason, reference); err != nil {
		return 0, fmt.Errorf("inventory: restock ledger: %w", err)
	}
	return version, nil
}

// RaiseCounter adds delta units, committed in PostgreSQL at version by RestockInTx, to
// the variant's Redis counter (skipped when the counter was built from that version or
// a newer one). Call it once per restock: it is not idempotent.
func (s *Service) RaiseCounter(ctx context.Context, variantID uuid.UUID, delta, version int64) error {
	if _, err := s.r.adjustOne(ctx, variantID, delta, version); err != nil {
		return fmt.Errorf("inventory: raise counter of %s by %d: %w", variantID, delta, err)
	}
	return nil
}
