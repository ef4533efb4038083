package discount

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ValidationError lists the fields of a rule that the admin API rejects, keyed by their
// JSON names (see Rule.Validate).
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	keys := slices.Sorted(maps.Keys(e.Fields))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "discount: invalid rule: " + strings.Join(parts, "; ")
}

// Service is the discount domain: the rules in PostgreSQL, kept current in the versioned
// ruleset cache, and pricing of carts with the current ruleset.
type Service struct {
	store *Store
	cache *Cache
	now   func() time.Time
	log   *slog.Logger
}

// NewService returns a Service. now is the clock used for rule windows (nil: time.Now);
// log receives the failures that do not fail a request (a publish after a committed write).
func NewService(store *Store, cache *Cache, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, cache: cache, now: now, log: log}
}

// Create validates r, stores it with a new id (unless r.ID is set) and its code
// normalised, and publishes the new ruleset. It returns the stored discount and the
// ruleset version the write produced.
// Errors: *ValidationError, ErrConflict (code in use), store errors.
func (s *Service) Create(ctx context.Context, r Rule) (Discount, int64, error) {
	if r.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return Discount{}, 0, fmt.Errorf("create discount: %w", err)
		}
		r.ID = id
	}
	if err := prepare(&r); err != nil {
		return Discount{}, 0, err
	}
	d, v, err := s.store.Create(ctx, r)
	if err != nil {
		return Discount{}, 0, err
	}
	s.publishAfterWrite(ctx, v)
	return d, v, nil
}

// Get returns a live discount. Errors: ErrNotFound.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Discount, error) {
	return s.store.Get(ctx, id)
}

// List returns every live discount (priority descending, then id) and the ruleset version
// they make up, read from PostgreSQL.
func (s *Service) List(ctx context.Context) ([]Discount, int64, error) {
	return s.store.List(ctx)
}

// Update changes a live discount: fn edits a copy of the stored rule under a row lock, the
// result is validated (after fn, the code is normalised) and stored, and the new ruleset
// is published. fn may return an error (e.g. *ValidationError) to abort.
// Errors: ErrNotFound, *ValidationError, ErrConflict, fn's error, store errors.
func (s *Service) Update(ctx context.Context, id uuid.UUID, fn func(*Rule) error) (Discount, int64, error) {
	d, v, err := s.store.Update(ctx, id, func(r *Rule) error {
		if err := fn(r); err != nil {
			return err
		}
		return prepare(r)
	})
	if err != nil {
		return Discount{}, 0, err
	}
	s.publishAfterWrite(ctx, v)
	return d, v, nil
}

// Delete soft-deletes a live discount and publishes the new ruleset; it returns the
// ruleset version the write produced. Errors: ErrNotFound.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) (int64, error) {
	v, err := s.store.Delete(ctx, id)
	if err != nil {
		return 0, err
	}
	s.publishAfterWrite(ctx, v)
	return v, nil
}

// prepare normalises r's code and validates it.
func prepare(r *Rule) error {
	r.Code = NormalizeCode(r.Code)
	if r.Scope.IDs == nil {
		r.Scope.IDs = []string{}
	}
	if errs := r.Validate(); errs != nil {
		return &ValidationError{Fields: errs}
	}
	return nil
}

// publishAfterWrite makes the ruleset of version v (or newer) the cached one. The write
// has committed, so a failure here does not fail the request: it retries briefly, then
// deletes the version pointer so that replicas reload from PostgreSQL; if Redis cannot be
// reached at all, replicas whose Redis works keep the previous version until the pointer
// expires or the next warm (the error is logged).
func (s *Service) publishAfterWrite(ctx context.Context, v int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	var err error
	for attempt := range 3 {
		var got int64
		if got, err = s.cache.Warm(ctx); err == nil && got >= v {
			return
		}
		if err == nil {
			err = fmt.Errorf("warm returned version %d, older than the write's %d", got, v)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		}
	}
	ferr := s.cache.forget(ctx)
	s.log.Error("discount ruleset not published after a write", slog.Int64("version", v),
		slog.String("error", err.Error()), slog.Bool("pointer_dropped", ferr == nil))
}

// Current returns the ruleset in force (see Cache for staleness). The Ruleset is shared:
// do not modify it. Errors: when neither Redis nor PostgreSQL can provide it.
func (s *Service) Current(ctx context.Context) (Ruleset, error) { return s.cache.Load(ctx) }

// Warm loads the ruleset from PostgreSQL and publishes it to Redis (the cron warmer and
// POST /admin/cache/warm). It returns the version now cached.
func (s *Service) Warm(ctx context.Context) (int64, error) { return s.cache.Warm(ctx) }

// Price prices lines in currency with the current ruleset at the service clock's now (see
// the package function Price). A coupon that is unknown or does not apply is ignored
// (Priced.CouponApplied is false). Priced.RulesetVersion names the ruleset used.
// Errors: ErrInvalidLine, or the ruleset could not be read.
func (s *Service) Price(ctx context.Context, lines []Line, coupon, currency string) (Priced, error) {
	rs, err := s.Current(ctx)
	if err != nil {
		return Priced{}, err
	}
	return Price(rs, lines, coupon, currency, s.now())
}

// CheckCoupon reports whether code can discount these lines now (PUT /v1/cart/coupon).
// Errors: ErrCouponNotFound (→ 404), ErrCouponNotApplicable wrapped with the reason
// (→ 422 coupon_not_applicable), ErrInvalidLine, or the ruleset could not be read.
func (s *Service) CheckCoupon(ctx context.Context, lines []Line, code, currency string) error {
	rs, err := s.Current(ctx)
	if err != nil {
		return err
	}
	return CouponApplicable(rs, lines, code, currency, s.now())
}
