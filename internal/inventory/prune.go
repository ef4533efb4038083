package inventory

import (
	"context"
	"fmt"
	"time"
)

// pruneBatch is how many commit records one DELETE removes, so pruning never holds a
// long transaction or a large lock set.
const pruneBatch = 5000

// PruneCommits deletes the commit-attempt records (inventory_commits) older than
// retention, in batches, and says how many went. A record fences one attempt against
// its recovery, and both are decided within CommitTimeout plus a sweep interval of the
// attempt; after that nothing reads it again, unless Redis is restored from a snapshot
// taken before the attempt was decided, which is why retention is days, not minutes.
// Errors: retention not above CommitTimeout; PostgreSQL errors (what was deleted stays
// deleted).
func (s *Service) PruneCommits(ctx context.Context, retention time.Duration) (int64, error) {
	if retention <= s.opts.CommitTimeout {
		return 0, fmt.Errorf("%w: commit record retention %v must exceed the commit timeout %v",
			ErrInvalid, retention, s.opts.CommitTimeout)
	}
	var total int64
	for {
		tag, err := s.store.pool.Exec(ctx, `DELETE FROM inventory_commits WHERE attempt IN (
	SELECT attempt FROM inventory_commits WHERE created_at < now() - $1 * interval '1 millisecond'
	ORDER BY created_at LIMIT $2)`, retention.Milliseconds(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("inventory: prune commit records: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}
