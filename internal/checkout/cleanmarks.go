package checkout

import (
	"context"
	"log/slog"
	"sync"

	"github.com/google/uuid"
)

// maxMarksPerStatement bounds the ids of one cleaned_at UPDATE.
const maxMarksPerStatement = 500

// cleanMarks writes the cleaned_at marks of many checkouts in few statements. A mark is
// queued; if no other request is writing marks, the caller writes every queued mark
// (its own and those queued meanwhile) until the queue is empty, else it returns at
// once and the request already writing takes its mark along. Under load that is one
// UPDATE (and one commit) per batch instead of one per checkout, and no request waits
// for more than its own mark's statement plus those before it.
//
// A mark is only a record that the checkout's side effects were done: a mark that is
// never written (a failed statement, a crash before it) leaves the checkout to the
// recovery job, which does the same idempotent cleanup again and marks it.
type cleanMarks struct {
	write func(ctx context.Context, ids []uuid.UUID) error // store.markCleaned
	log   *slog.Logger

	mu      sync.Mutex
	pending []uuid.UUID
	writing bool
}

// mark queues id and, unless another request is at it, writes the queue.
func (c *cleanMarks) mark(ctx context.Context, id uuid.UUID) {
	c.mu.Lock()
	c.pending = append(c.pending, id)
	if c.writing {
		c.mu.Unlock()
		return
	}
	c.writing = true
	for len(c.pending) > 0 {
		n := min(len(c.pending), maxMarksPerStatement)
		batch := c.pending[:n:n]
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		c.mu.Unlock()
		if err := c.write(ctx, batch); err != nil {
			c.log.Warn("checkout: cleanup marks not written; the recovery job will clean these checkouts again",
				slog.Int("checkouts", len(batch)), slog.String("error", err.Error()))
		}
		c.mu.Lock()
	}
	c.writing = false
	c.mu.Unlock()
}
