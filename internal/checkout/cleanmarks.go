package checkout

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
)

// maxMarksPerStatement bounds the ids of one cleaned_at UPDATE.
const maxMarksPerStatement = 500

// cleanMarks writes the cleaned_at marks of many checkouts in few statements. A mark is
// queued; if no other request is writing marks, the caller writes the queue (its own mark
// and those queued meanwhile), else it returns at once and the writer takes its mark
// along. Under load that is one UPDATE (and one commit) per batch instead of one per
// checkout. A request writes at most writerRounds statements: if marks keep arriving, a
// goroutine goes on writing them until the queue is empty, so no request waits on a
// queue that other requests keep filling.
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

// writerRounds bounds the statements one request writes before handing over.
const writerRounds = 2

// mark queues id and, unless another request is at it, writes the queue.
func (c *cleanMarks) mark(ctx context.Context, id uuid.UUID) {
	c.mu.Lock()
	c.pending = append(c.pending, id)
	if c.writing {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	if !c.drain(ctx, writerRounds) {
		go c.handedOver()
	}
}

// handedOver drains the queue for a request that stopped writing: on its own context
// (nothing of that request's), each statement bounded by markTimeout.
func (c *cleanMarks) handedOver() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), markTimeout)
		done := c.drain(ctx, 1)
		cancel()
		if done {
			return
		}
	}
}

// markTimeout bounds one statement of a handed-over queue.
const markTimeout = 30 * time.Second

// drain writes queued marks, at most rounds statements.
// The caller is the writer; drain reports whether it emptied the queue, in which case it
// is no longer the writer.
func (c *cleanMarks) drain(ctx context.Context, rounds int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ; len(c.pending) > 0; rounds-- {
		if rounds == 0 {
			return false
		}
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
	return true
}
