package checkout

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
)

// soldOutFor is how long a replica remembers that a variant's reservation found nothing
// available. During a flash sale most shoppers arrive after the stock is gone; with the
// memory, their checkout is refused after one cart read instead of the lock, the freeze,
// a refused reservation and the undoing of both. A unit that comes back (a release, a
// restock) can thus be answered as sold out for at most this long; the reservation, not
// this memory, decides every sale.
const soldOutFor = 250 * time.Millisecond

// soldOut remembers, per variant, when a reservation last found it sold out. Safe for
// concurrent use; bounded (it forgets everything when full).
type soldOut struct {
	mu   sync.Mutex
	seen map[uuid.UUID]time.Time
	last time.Time // of the latest note, so that an idle memory costs one comparison
}

func (s *soldOut) note(ids []uuid.UUID, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil || len(s.seen) >= 10_000 {
		s.seen = map[uuid.UUID]time.Time{}
	}
	for _, id := range ids {
		s.seen[id] = now
	}
	s.last = now
}

// active reports whether anything was noted within soldOutFor.
func (s *soldOut) active(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.last.IsZero() && now.Sub(s.last) < soldOutFor
}

// recent reports whether id was found sold out within soldOutFor.
func (s *soldOut) recent(id uuid.UUID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.seen[id]
	return ok && now.Sub(at) < soldOutFor
}

// noteSoldOut remembers the lines err (a failed reservation) found with nothing left.
func (s *Service) noteSoldOut(err error) {
	var se *StockError
	if !errors.As(err, &se) {
		return
	}
	var ids []uuid.UUID
	for _, sh := range se.Shortages {
		if sh.Available <= 0 {
			ids = append(ids, sh.VariantID)
		}
	}
	if len(ids) > 0 {
		s.sold.note(ids, time.Now())
	}
}

// knownSoldOut answers a checkout of owner's cart with the lines this replica found sold
// out within soldOutFor, after one read of the cart and nothing else. It answers nothing
// (and the creation goes the whole way) when nothing was sold out lately, when the cart
// cannot be read, or when it is frozen (its active checkout is handed back instead).
func (s *Service) knownSoldOut(ctx context.Context, owner Owner) *StockError {
	now := time.Now()
	if !s.sold.active(now) {
		return nil
	}
	snap, lockedBy, err := s.carts.Peek(ctx, owner)
	if err != nil || lockedBy != "" {
		return nil
	}
	var short []Shortage
	for _, l := range snap.Lines {
		if s.sold.recent(l.VariantID, now) {
			short = append(short, Shortage{VariantID: l.VariantID, Requested: l.Quantity})
		}
	}
	if len(short) == 0 {
		return nil
	}
	return &StockError{Shortages: short}
}
