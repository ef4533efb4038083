package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Revocations keeps session revocations where a Redis loss cannot forget them. Sessions
// consult it only when a session's Redis record is missing, before putting it back.
type Revocations interface {
	// Revoke records that session id is revoked until until.
	Revoke(ctx context.Context, id string, until time.Time) error
	// Revoked reports whether session id is revoked now.
	Revoked(ctx context.Context, id string) (bool, error)
}

// PGRevocations keeps revocations in PostgreSQL (table session_revocations), by the
// SHA-256 of the session id. Expired rows are deleted now and then by Revoke.
type PGRevocations struct {
	Pool *pgxpool.Pool

	lastPrune atomic.Int64 // unix seconds of the last prune
}

func sessionHash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// Revoke implements Revocations.
func (r *PGRevocations) Revoke(ctx context.Context, id string, until time.Time) error {
	if _, err := r.Pool.Exec(ctx, `INSERT INTO session_revocations (session_hash, expires_at) VALUES ($1, $2)
ON CONFLICT (session_hash) DO UPDATE SET expires_at = GREATEST(session_revocations.expires_at, EXCLUDED.expires_at)`,
		sessionHash(id), until); err != nil {
		return fmt.Errorf("record session revocation: %w", err)
	}
	now := time.Now().Unix()
	if last := r.lastPrune.Load(); now-last >= 3600 && r.lastPrune.CompareAndSwap(last, now) {
		// Best effort: a row that stays a while longer refuses nothing valid.
		_, _ = r.Pool.Exec(ctx, `DELETE FROM session_revocations WHERE expires_at < now()`)
	}
	return nil
}

// Revoked implements Revocations.
func (r *PGRevocations) Revoked(ctx context.Context, id string) (bool, error) {
	var revoked bool
	if err := r.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM session_revocations WHERE session_hash = $1 AND expires_at > now())`,
		sessionHash(id)).Scan(&revoked); err != nil {
		return false, fmt.Errorf("read session revocation: %w", err)
	}
	return revoked, nil
}
