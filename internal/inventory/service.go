package inventory

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/resilience"
	"commerce/internal/platform/rkey"
)

// cleanupTimeout bounds the compensating steps (release, unmark) that run even when the
// caller's context has ended.
const cleanupTimeout = 5 * time.Second

// Service is the L1 inventory: available counters and holds in Redis (one Lua script per
// change), on_hand in PostgreSQL (the truth). See the package documentation for the
// protocol and its invariant. Errors that mean Redis or PostgreSQL is unreachable are
// returned wrapped as they are (httpx turns them into 503). Safe for concurrent use.
type Service struct {
	r     *redisSide
	store store
	m     *metrics
	opts  Options
	log   *slog.Logger
	thr   thresholds
}

// NewService returns an inventory service over pool and rdb (standalone or Cluster),
// with every Redis key under space, and its metrics registered on reg (nil: a private
// registry). It does not touch the network; call LoadScripts at start.
func NewService(pool *pgxpool.Pool, rdb redis.UniversalClient, space rkey.Space, reg prometheus.Registerer,
	opts Options) (*Service, error) {
	if pool == nil || rdb == nil {
		return nil, errors.New("inventory: pool and redis are required")
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("inventory: metrics: %w", err)
	}
	opts = opts.withDefaults()
	return &Service{r: newRedisSide(rdb, space, m), store: store{pool: pool}, m: m, opts: opts, log: opts.Logger}, nil
}

// LoadScripts loads the Lua scripts into Redis (every master in Cluster), so that a
// broken script or an unreachable Redis shows at start. Calls work without it: scripts
// are sent again when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
func (s *Service) LoadScripts(ctx context.Context) error { return s.r.loadScripts(ctx) }

func token() string { return rand.Text() }

func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// normalize validates lines and returns them merged per variant (quantities summed) and
// sorted by variant id.
func normalize(lines []Line) ([]Line, error) {
	if len(lines) == 0 {
		return nil, fmt.Errorf("no lines: %w", ErrInvalid)
	}
	sum := make(map[uuid.UUID]int64, len(lines))
	for _, l := range lines {
		if l.Quantity < 1 {
			return nil, fmt.Errorf("variant %s: quantity %d < 1: %w", l.VariantID, l.Quantity, ErrInvalid)
		}
		if sum[l.VariantID] > MaxOnHand-l.Quantity {
			return nil, fmt.Errorf("variant %s: quantity too large: %w", l.VariantID, ErrInvalid)
		}
		sum[l.VariantID] += l.Quantity
	}
	out := make([]Line, 0, len(sum))
	for id, q := range sum {
		out = append(out, Line{VariantID: id, Quantity: q})
	}
	slices.SortFunc(out, func(a, b Line) int { return bytes.Compare(a.VariantID[:], b.VariantID[:]) })
	return out, nil
}

func checkHolder(holder string) error {
	if !ValidHolder(holder) {
		return fmt.Errorf("holder %q: %w", holder, ErrInvalid)
	}
	return nil
}

// ---------------------------------------------------------------------------- loading

// load creates id's missing counter from PostgreSQL (SET NX semantics: a counter someone
// else created first is kept). row, when given, is a fresh read to try first. Errors:
// ErrNotFound; an error when PostgreSQL kept being older than the counter's version.
func (s *Service) load(ctx context.Context, id uuid.UUID, row *stockRow) (int64, error) {
	for i := 0; i < s.opts.LoadRetries; i++ {
		if row == nil || i > 0 {
			r, err := s.store.stock(ctx, id)
			if err != nil {
				return 0, err
			}
			row = &r
		}
		code, v, err := s.r.loadOne(ctx, id, row.OnHand, row.Version, token())
		if err != nil {
			return 0, err
		}
		if code == codeOK || code == codeExists {
			return v, nil
		}
		// STALE: an operation newer than our read reached Redis; read again.
	}
	return 0, fmt.Errorf("inventory: load counter of %s: PostgreSQL read stayed older than Redis", id)
}

// ---------------------------------------------------------------------------- reserve

// Reserve holds every line for holder for ttl (Options.HoldTTL when ttl <= 0), all or
// nothing. Lines are merged per variant and taken in variant-id order. A hold the holder
// already has on a variant is REPLACED (quantity and expiry), so a retried Reserve never
// holds twice. When it fails, the holder holds nothing on any of the lines' variants
// (holds taken by this call are released, and so are replaced ones).
//
// Errors: *InsufficientStockError (ErrInsufficientStock) listing the failing line and
// every later line short at that moment; ErrNotFound (unknown variant); ErrHoldBusy (the
// holder is committing one of the variants); ErrInvalid; Redis/PostgreSQL errors.
func (s *Service) Reserve(ctx context.Context, holder string, lines []Line, ttl time.Duration) error {
	if err := checkHolder(holder); err != nil {
		return err
	}
	lines, err := normalize(lines)
	if err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = s.opts.HoldTTL
	}
	ttlMs := max(ttl.Milliseconds(), 1)
	for i, l := range lines {
		rep, err := s.reserveLine(ctx, holder, l, ttlMs)
		if err == nil && rep.code == codeOK {
			continue
		}
		s.releaseAll(ctx, holder, lines)
		if err != nil {
			s.m.reservations.WithLabelValues("error").Inc()
			return err
		}
		s.m.reservations.WithLabelValues("insufficient").Inc()
		short := []Shortage{{VariantID: l.VariantID, Requested: l.Quantity, Available: max(rep.available, 0)}}
		if rest := lines[i+1:]; len(rest) > 0 {
			ids := make([]uuid.UUID, len(rest))
			for j, r := range rest {
				ids[j] = r.VariantID
			}
			if av, err := s.Available(ctx, ids); err == nil {
				for _, r := range rest {
					if a, ok := av[r.VariantID]; ok && a < r.Quantity {
						short = append(short, Shortage{VariantID: r.VariantID, Requested: r.Quantity, Available: a})
					}
				}
			}
		}
		return &InsufficientStockError{Shortages: short}
	}
	s.m.reservations.WithLabelValues("ok").Inc()
	return nil
}

// reserveLine runs the reserve script, loading the counter when it is missing, and
// registers the hold in the sweep index. An error means the hold may or may not exist.
func (s *Service) reserveLine(ctx context.Context, holder string, l Line, ttlMs int64) (reserveReply, error) {
	for i := 0; ; i++ {
		rep, err := s.r.reserveOne(ctx, l.VariantID, holder, l.Quantity, ttlMs, s.opts.ReclaimBatch)
		if err != nil {
			return rep, err
		}
		if rep.reclaimed > 0 {
			s.m.reclaimed.Add(float64(rep.reclaimed))
		}
		switch rep.code {
		case codeOK:
			if rep.first < 0 || rep.expiry < rep.first {
				if err := s.r.indexLower(ctx, l.VariantID, rep.expiry); err != nil {
					return rep, err
				}
			}
			s.noteReserved(ctx, l.VariantID, holder, rep)
			return rep, nil
		case codeInsufficient:
			return rep, nil
		case codeBusy:
			return rep, fmt.Errorf("reserve %s for %s: %w", l.VariantID, holder, ErrHoldBusy)
		case codeLoadRequired:
			if i >= s.opts.LoadRetries {
				return rep, fmt.Errorf("reserve %s: counter still missing after %d loads", l.VariantID, i)
			}
			if _, err := s.load(ctx, l.VariantID, nil); err != nil {
				return rep, fmt.Errorf("reserve %s: %w", l.VariantID, err)
			}
		default:
			return rep, fmt.Errorf("reserve %s: unexpected reply %q", l.VariantID, rep.code)
		}
	}
}

func (s *Service) releaseAll(ctx context.Context, holder string, lines []Line) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, l := range lines {
		if _, _, err := s.r.releaseOne(cctx, l.VariantID, holder); err != nil {
			// the hold expires on its own
			s.log.Warn("inventory: release after a failed reserve", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
}

// Release returns holder's held holds of variantIDs to available and says how many units
// came back. Holds that are gone (released, expired and reclaimed, sold) and holds being
// committed return nothing. Errors: ErrInvalid; Redis errors (some holds may have been
// released: the call is safe to repeat).
func (s *Service) Release(ctx context.Context, holder string, variantIDs []uuid.UUID) (int64, error) {
	if err := checkHolder(holder); err != nil {
		return 0, err
	}
	var total int64
	for _, id := range variantIDs {
		n, _, err := s.r.releaseOne(ctx, id, holder)
		if err != nil {
			return total, fmt.Errorf("release %s for %s: %w", id, holder, err)
		}
		total += n
	}
	return total, nil
}

// ---------------------------------------------------------------------------- commit

// Commit sells holder's holds of lines (merged per variant), in three steps:
//  1. each hold is marked committing (it keeps counting as held; nothing returns it);
//  2. one PostgreSQL transaction runs inTx (the checkout's order insert), decrements each
//     on_hand WHERE on_hand >= quantity, bumps its version, writes a ledger row (reason,
//     reference = holder) and records the attempt as committed;
//  3. the holds are deleted without returning their units.
//
// If step 1 fails nothing is changed (marked holds are unmarked). If step 2 fails the
// transaction is rolled back and the holds are `held` again. If step 3 fails the sale
// stands and Commit succeeds: recovery finishes step 3. A crash after step 1 leaves
// committing holds that recovery decides after Options.CommitTimeout.
//
// Errors: ErrHoldMissing (a hold was gone, expired, or for another quantity; or recovery
// had already given the units back); ErrHoldBusy (another Commit of the same holder is
// running); inTx's error as returned; ErrInsufficientStock (PostgreSQL on_hand below a
// held quantity: Redis and PostgreSQL disagree); ErrNotFound; ErrInvalid;
// Redis/PostgreSQL errors (an error from COMMIT itself is resolved in PostgreSQL at once
// when possible, else left to recovery).
func (s *Service) Commit(ctx context.Context, holder string, lines []Line, reason string,
	inTx func(ctx context.Context, tx pgx.Tx) error) error {
	if err := checkHolder(holder); err != nil {
		return err
	}
	if !validReason(reason) {
		return fmt.Errorf("reason must be 1-200 characters: %w", ErrInvalid)
	}
	lines, err := normalize(lines)
	if err != nil {
		return err
	}
	_, err = s.sell(ctx, holder, holder, lines, reason, nil, inTx)
	return err
}

// sell is Commit with a ledger reference and an optional compare-and-set of on_hand
// (single line); it returns the versions written.
func (s *Service) sell(ctx context.Context, holder, reference string, lines []Line, reason string, expected *int64,
	inTx func(ctx context.Context, tx pgx.Tx) error) (map[uuid.UUID]int64, error) {
	attempt := token()
	timeoutMs := max(s.opts.CommitTimeout.Milliseconds(), 1)
	epochs := make([]string, len(lines))
	// Step 1.
	for i, l := range lines {
		rep, err := s.r.markOne(ctx, l.VariantID, holder, attempt, l.Quantity, timeoutMs)
		if err == nil && rep.code == codeOK {
			epochs[i] = rep.epoch
			// The recovery deadline may be earlier than the hold's expiry: make sure the
			// sweep visits by then. (A crash right here delays recovery to that expiry.)
			if err = s.r.indexLower(ctx, l.VariantID, rep.deadline); err == nil {
				continue
			}
		}
		undo := lines[:i]
		if err != nil {
			undo = lines[:i+1] // the reply was lost: it may have been marked
		}
		s.unmarkAll(ctx, holder, attempt, undo)
		if err != nil {
			return nil, fmt.Errorf("commit %s: mark %s: %w", holder, l.VariantID, err)
		}
		switch rep.code {
		case codeBusy:
			return nil, fmt.Errorf("commit %s: variant %s: %w", holder, l.VariantID, ErrHoldBusy)
		case codeQty:
			return nil, fmt.Errorf("commit %s: variant %s: holds %d, not %d: %w", holder, l.VariantID, rep.held,
				l.Quantity, ErrHoldMissing)
		case codeExpired:
			return nil, fmt.Errorf("commit %s: variant %s: hold expired: %w", holder, l.VariantID, ErrHoldMissing)
		default:
			return nil, fmt.Errorf("commit %s: variant %s: %w", holder, l.VariantID, ErrHoldMissing)
		}
	}
	if h := s.opts.Hooks.AfterMark; h != nil {
		if err := h(); err != nil {
			return nil, err
		}
	}
	// Step 2.
	// A serialization failure or deadlock rolls the whole transaction back (inTx included),
	// so running it again is safe.
	versions, err := resilience.RetryValue(ctx, resilience.PostgresPolicy("inventory.sell", s.opts.RetryMetrics),
		func(ctx context.Context) (map[uuid.UUID]int64, error) {
			return s.store.sell(ctx, saleSpec{attempt: attempt, holder: holder, lines: lines, reason: reason,
				reference: reference, expected: expected, inTx: inTx})
		})
	switch {
	case err == nil:
	case errors.Is(err, errAttemptAborted):
		// Recovery gave up on this attempt first and returns (or returned) its units.
		s.abortAll(ctx, holder, attempt, lines)
		return nil, fmt.Errorf("commit %s: holds returned by recovery: %w", holder, ErrHoldMissing)
	case errors.Is(err, errOutcomeUnknown):
		cctx, cancel := cleanupCtx(ctx)
		outcome, vs, rerr := s.store.resolve(cctx, attempt, holder)
		cancel()
		if rerr != nil {
			return nil, fmt.Errorf("commit %s: outcome unknown, left to recovery: %w", holder, err)
		}
		if outcome != outcomeCommitted {
			s.unmarkAll(ctx, holder, attempt, lines)
			return nil, fmt.Errorf("commit %s: %w", holder, err)
		}
		versions = vs
	default:
		s.unmarkAll(ctx, holder, attempt, lines)
		return nil, err
	}
	if h := s.opts.Hooks.AfterTx; h != nil {
		if err := h(); err != nil {
			return nil, err
		}
	}
	// Step 3. The sale stands whatever happens here.
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for i, l := range lines {
		if _, _, err := s.r.finalizeOne(cctx, l.VariantID, holder, attempt, l.Quantity, versions[l.VariantID], epochs[i]); err != nil {
			s.m.finalizeLag.Inc()
			s.log.Warn("inventory: finalize failed, left to recovery", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
	return versions, nil
}

// unmarkAll puts the holds of a failed attempt back to `held`, with the expiry they had.
func (s *Service) unmarkAll(ctx context.Context, holder, attempt string, lines []Line) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, l := range lines {
		code, exp, err := s.r.unmarkOne(cctx, l.VariantID, holder, attempt)
		if err == nil && code == codeOK {
			// the expiry may be earlier than what the index says now
			err = s.r.indexLower(cctx, l.VariantID, exp)
		}
		if err != nil {
			// left committing: recovery finds no committed attempt and returns the units
			s.log.Warn("inventory: unmark failed, left to recovery", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
}

// abortAll returns the units of an attempt recovery decided as not sold.
func (s *Service) abortAll(ctx context.Context, holder, attempt string, lines []Line) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, l := range lines {
		if _, _, err := s.r.abortOne(cctx, l.VariantID, holder, attempt); err != nil {
			s.log.Warn("inventory: abort failed, left to recovery", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
}

// ---------------------------------------------------------------------------- adjust

// Adjust adds delta (≠ 0, |delta| ≤ MaxAdjust) to on_hand with a ledger row (reason,
// reference) and returns the new levels.
//
// An increase is written to PostgreSQL first, then added to the counter (unless the
// counter was computed from that version already). A decrease is held first, like a
// sale: the units are reserved in Redis (so they cannot be promised to a shopper while
// PostgreSQL changes), then taken from on_hand in one transaction, then the hold is
// finalized; a crash in between is recovered like a crashed commit. So a decrease is
// refused (ErrBelowHeld) exactly when the counter has fewer than |delta| units — which
// is never wrongly accepted: the counter is never above on_hand − held; in the windows
// where it is below, a decrease that would have fitted may be refused.
//
// Errors: *BelowHeldError (ErrBelowHeld); ErrNotFound; ErrInvalid; Redis/PostgreSQL
// errors. If Redis fails after PostgreSQL committed an increase, the error says so: the
// counter stays low (the safe direction) until the next reconcile, and the adjustment
// must not be repeated.
func (s *Service) Adjust(ctx context.Context, variantID uuid.UUID, delta int64, reason, reference string) (Levels, error) {
	if delta == 0 || delta > MaxAdjust || delta < -MaxAdjust {
		return Levels{}, fmt.Errorf("delta must be non-zero and at most %d in size: %w", MaxAdjust, ErrInvalid)
	}
	if !validReason(reason) {
		return Levels{}, fmt.Errorf("reason must be 1-200 characters: %w", ErrInvalid)
	}
	if err := s.adjust(ctx, variantID, delta, nil, reason, reference); err != nil {
		return Levels{}, err
	}
	return s.Levels(ctx, variantID)
}

// adjust applies delta, as a compare-and-set when expected is given (errCASFailed).
func (s *Service) adjust(ctx context.Context, id uuid.UUID, delta int64, expected *int64, reason, reference string) error {
	if delta > 0 {
		// Check that Redis answers before PostgreSQL is changed, so that an outage
		// refuses the adjustment instead of half-applying it.
		if err := s.r.probe(ctx, id); err != nil {
			return err
		}
		row, err := resilience.RetryValue(ctx, resilience.PostgresPolicy("inventory.add", s.opts.RetryMetrics),
			func(ctx context.Context) (stockRow, error) {
				return s.store.add(ctx, id, delta, expected, reason, reference)
			})
		if err != nil {
			return err
		}
		if _, err := s.r.adjustOne(ctx, id, delta, row.Version); err != nil {
			return fmt.Errorf("adjust %s: on_hand is now %d in PostgreSQL but the Redis counter was not raised "+
				"(it stays low until reconcile; do not repeat the adjustment): %w: %w", id, row.OnHand, ErrPartial, err)
		}
		return nil
	}
	// A decrease: hold the units, then sell them. The hold can only go missing between
	// the two if Redis lost it (or it outlived CommitTimeout): try again with a new one.
	d := -delta
	l := Line{VariantID: id, Quantity: d}
	for i := 0; i < 3; i++ {
		holder := "adj_" + token()
		rep, err := s.reserveLine(ctx, holder, l, max(s.opts.CommitTimeout.Milliseconds(), 1))
		if err != nil {
			s.releaseAll(ctx, holder, []Line{l})
			return err
		}
		if rep.code != codeOK {
			return &BelowHeldError{VariantID: id, Requested: d, Available: max(rep.available, 0)}
		}
		_, err = s.sell(ctx, holder, reference, []Line{l}, reason, expected, nil)
		if err == nil {
			return nil
		}
		s.releaseAll(ctx, holder, []Line{l}) // held again after a failed step 2
		switch {
		case errors.Is(err, ErrHoldMissing):
			continue
		case errors.Is(err, ErrInsufficientStock):
			return &BelowHeldError{VariantID: id, Requested: d, Available: 0}
		}
		return err
	}
	return fmt.Errorf("adjust %s: the decrease's hold kept disappearing: %w", id, ErrConcurrentChange)
}

// Set sets on_hand to onHand (0 ≤ onHand ≤ MaxOnHand) through Adjust's protocol with a
// compare-and-set on the value it read, retried when another change got in between, and
// returns the new levels. Setting the current value changes nothing.
// Errors: as Adjust, and ErrConcurrentChange after repeated lost races.
func (s *Service) Set(ctx context.Context, variantID uuid.UUID, onHand int64, reason string) (Levels, error) {
	return s.SetRef(ctx, variantID, onHand, reason, "")
}

// SetRef is Set with the ledger reference of the change (see KeyReference).
func (s *Service) SetRef(ctx context.Context, variantID uuid.UUID, onHand int64, reason, reference string) (Levels, error) {
	if onHand < 0 || onHand > MaxOnHand {
		return Levels{}, fmt.Errorf("on_hand must be between 0 and %d: %w", MaxOnHand, ErrInvalid)
	}
	if !validReason(reason) {
		return Levels{}, fmt.Errorf("reason must be 1-200 characters: %w", ErrInvalid)
	}
	for i := 0; i < 5; i++ {
		row, err := s.store.stock(ctx, variantID)
		if err != nil {
			return Levels{}, err
		}
		delta := onHand - row.OnHand
		if delta == 0 {
			return s.Levels(ctx, variantID)
		}
		cur := row.OnHand
		err = s.adjust(ctx, variantID, delta, &cur, reason, reference)
		if errors.Is(err, errCASFailed) {
			continue
		}
		if err != nil {
			return Levels{}, err
		}
		return s.Levels(ctx, variantID)
	}
	return Levels{}, fmt.Errorf("set %s: %w", variantID, ErrConcurrentChange)
}

// KeyReference is the ledger reference of an operator's change sent with an
// Idempotency-Key: 'key:' and a hash of scope (the route) and key. The ledger holds at
// most one row per such reference (migration 000020), so the change applies at most once
// however often it is retried; a retry gets an error for which AlreadyApplied is true.
func KeyReference(scope, key string) string {
	h := sha256.Sum256([]byte("inventory-key\x00" + scope + "\x00" + key))
	return "key:" + hex.EncodeToString(h[:16])
}

// AlreadyApplied reports whether err says that the change of a KeyReference was applied
// by an earlier attempt (its ledger row exists): nothing was changed this time.
func AlreadyApplied(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "stock_ledger_key_uniq"
}

// ---------------------------------------------------------------------------- reads

// Levels returns on_hand and version (PostgreSQL), the counter, the held total and the
// hold count (Redis, loading a missing counter, all O(1)), the first page of holds (the
// soonest deadlines first, at most 100) and Drift. The two reads are not one snapshot,
// so a concurrent change can show as a transient drift. Errors: ErrNotFound;
// Redis/PostgreSQL errors.
func (s *Service) Levels(ctx context.Context, variantID uuid.UUID) (Levels, error) {
	row, err := s.store.stock(ctx, variantID)
	if err != nil {
		return Levels{}, err
	}
	var lv Levels
	for i := 0; ; i++ {
		got, ok, err := s.r.levelsOne(ctx, variantID)
		if err != nil {
			return Levels{}, err
		}
		if ok {
			lv = got
			break
		}
		if i >= s.opts.LoadRetries {
			return Levels{}, fmt.Errorf("levels %s: counter still missing after %d loads", variantID, i)
		}
		if _, err := s.load(ctx, variantID, nil); err != nil {
			return Levels{}, err
		}
	}
	lv.VariantID, lv.OnHand, lv.Version = variantID, row.OnHand, row.Version
	lv.Drift = lv.Available + lv.Held - lv.OnHand
	return lv, nil
}

// Available returns how many units of each variant can be reserved now (never below 0),
// from the Redis counters, loading missing ones. Unknown variants are absent. When Redis
// fails it degrades to PostgreSQL on_hand, which ignores holds (it may overstate what a
// reservation would get; reservations themselves never degrade). Errors: PostgreSQL errors.
func (s *Service) Available(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	out := make(map[uuid.UUID]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	got, err := s.r.getAvail(ctx, ids)
	if err != nil {
		return s.availableFromPG(ctx, ids, err)
	}
	var missing []uuid.UUID
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if v, ok := got[id]; ok {
			out[id] = max(v, 0)
		} else if !seen[id] {
			seen[id] = true
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := s.store.stockMany(ctx, missing)
	if err != nil {
		return nil, err
	}
	for id, row := range rows {
		v, err := s.load(ctx, id, &row)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			s.m.fallbacks.Inc()
			v = row.OnHand // Redis failed while loading: degrade like above
		}
		out[id] = max(v, 0)
	}
	return out, nil
}

func (s *Service) availableFromPG(ctx context.Context, ids []uuid.UUID, cause error) (map[uuid.UUID]int64, error) {
	s.m.fallbacks.Inc()
	s.log.Warn("inventory: availability from PostgreSQL, Redis failed", "error", cause)
	rows, err := s.store.stockMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]int64, len(rows))
	for id, r := range rows {
		out[id] = r.OnHand
	}
	return out, nil
}

// ---------------------------------------------------------------------------- reconcile

// Reconcile compares each counter with PostgreSQL and, unless dryRun, sets it to
// on_hand − held. ids empty means every variant (paged through PostgreSQL in id order);
// unknown ids are ignored. A counter that already reflects a change newer than the
// PostgreSQL read is skipped (never set from a stale read); a missing counter is left
// for the lazy load. It also re-registers every variant with holds in the sweep index.
// Errors: Redis/PostgreSQL errors (the report says what was done before).
func (s *Service) Reconcile(ctx context.Context, ids []uuid.UUID, dryRun bool) (ReconcileReport, error) {
	start := time.Now()
	var rep ReconcileReport
	one := func(id uuid.UUID, row stockRow) error {
		if h := s.opts.Hooks.ReconcileRead; h != nil {
			h(id)
		}
		r, err := s.r.reconcileOne(ctx, id, row.OnHand, row.Version, dryRun)
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", id, err)
		}
		rep.Checked++
		switch r.code {
		case codeFixed, codeDrift:
			rep.Drifted++
			s.m.driftFound.Inc()
			av := r.avail
			rep.Variants = append(rep.Variants, ReconcileVariant{VariantID: id, OnHand: row.OnHand, Held: r.held,
				RedisAvailable: &av, ExpectedAvailable: r.expected})
			if r.code == codeFixed {
				rep.Fixed++
				s.m.driftFixed.Inc()
			}
		case codeStale:
			rep.Skipped++
		}
		if r.first >= 0 && !dryRun {
			if err := s.r.indexLower(ctx, id, r.first); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if len(ids) > 0 {
		err = s.reconcileIDs(ctx, ids, one)
	} else {
		err = s.reconcileAll(ctx, one)
	}
	rep.Duration = time.Since(start)
	return rep, err
}

func (s *Service) reconcileIDs(ctx context.Context, ids []uuid.UUID, one func(uuid.UUID, stockRow) error) error {
	seen := make(map[uuid.UUID]bool, len(ids))
	for start := 0; start < len(ids); start += s.opts.ReconcilePage {
		chunk := ids[start:min(start+s.opts.ReconcilePage, len(ids))]
		rows, err := s.store.stockMany(ctx, chunk)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			row, ok := rows[id]
			if !ok || seen[id] {
				continue
			}
			seen[id] = true
			if err := one(id, row); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) reconcileAll(ctx context.Context, one func(uuid.UUID, stockRow) error) error {
	after := uuid.Nil
	for {
		rows, err := s.store.page(ctx, after, s.opts.ReconcilePage)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := one(r.ID, r.stockRow); err != nil {
				return err
			}
		}
		if len(rows) < s.opts.ReconcilePage {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}

// ---------------------------------------------------------------------------- sweep

// Sweep returns expired held holds to available and recovers expired committing holds
// (see Recover); it returns how many holds came back. It visits only the variants that
// the hold index says are due, never SCANs.
//
// The index (ZSET variant → earliest deadline, in its own Cluster slot, so written from
// Go around the scripts) only has to be early, never late or absent while a variant has
// holds: reserve lowers it (ZADD LT) after its script whenever the new hold is the
// earliest; Sweep, which raises or removes entries, re-reads the variant's earliest
// deadline after its write and lowers the entry again if a hold appeared meanwhile. An
// early or stale entry only costs a visit. A process that dies between reserve's script
// and its index write leaves an unindexed hold: the next reserve of that variant reclaims
// it lazily, and Reconcile re-registers every variant with holds.
//
// Errors: Redis errors; PostgreSQL errors of recovery (the other variants are still swept).
func (s *Service) Sweep(ctx context.Context) (int64, error) {
	reclaimed, _, err := s.pass(ctx)
	return reclaimed, err
}

// Recover decides the committing holds of dead commits: those still committing
// Options.CommitTimeout after they were marked. For each, the attempt is looked up in
// PostgreSQL, and recorded as aborted if its transaction never committed (which fences a
// transaction still running: it then fails). A committed attempt is finished (step 3: the
// hold is deleted without returning stock); an aborted one has its units returned. It
// runs a whole Sweep pass and returns how many committing holds it decided.
func (s *Service) Recover(ctx context.Context) (int, error) {
	_, recovered, err := s.pass(ctx)
	return recovered, err
}

func (s *Service) pass(ctx context.Context) (reclaimed int64, recovered int, err error) {
	now, err := s.r.now(ctx)
	if err != nil {
		return 0, 0, err
	}
	due, err := s.r.due(ctx, now, s.opts.SweepVariants)
	if err != nil {
		return 0, 0, err
	}
	var firstErr error
	for _, id := range due {
		n, rec, err := s.sweepVariant(ctx, id)
		reclaimed += n
		recovered += rec
		if err != nil {
			if ctx.Err() != nil {
				return reclaimed, recovered, err
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return reclaimed, recovered, firstErr
}

func (s *Service) sweepVariant(ctx context.Context, id uuid.UUID) (int64, int, error) {
	var reclaimed int64
	var stuck []stuckHold
	for i := 0; i < 100; i++ {
		rep, err := s.r.sweepOne(ctx, id, s.opts.SweepBatch)
		if err != nil {
			return reclaimed, 0, err
		}
		reclaimed += rep.holds
		if i == 0 {
			stuck = rep.stuck
		}
		if !rep.more {
			break
		}
	}
	if reclaimed > 0 {
		s.m.reclaimed.Add(float64(reclaimed))
	}
	recovered := 0
	var recErr error
	for _, h := range stuck {
		if err := s.recoverHold(ctx, h); err != nil {
			if recErr == nil {
				recErr = err
			}
			continue
		}
		recovered++
	}
	// Index maintenance: write, then re-read and lower if a hold appeared meanwhile.
	first, err := s.r.firstDeadline(ctx, id)
	if err != nil {
		return reclaimed, recovered, err
	}
	if h := s.opts.Hooks.SweepIndex; h != nil {
		h(id)
	}
	if err := s.r.indexSet(ctx, id, first); err != nil {
		return reclaimed, recovered, err
	}
	again, err := s.r.firstDeadline(ctx, id)
	if err != nil {
		return reclaimed, recovered, err
	}
	if again >= 0 && (first < 0 || again < first) {
		if err := s.r.indexLower(ctx, id, again); err != nil {
			return reclaimed, recovered, err
		}
	}
	return reclaimed, recovered, recErr
}

func (s *Service) recoverHold(ctx context.Context, h stuckHold) error {
	outcome, versions, err := s.store.resolve(ctx, h.attempt, h.holder)
	if err != nil {
		return fmt.Errorf("recover %s of %s: %w", h.variant, h.holder, err)
	}
	if outcome == outcomeCommitted {
		v, ok := versions[h.variant]
		if !ok {
			return fmt.Errorf("recover %s of %s: committed attempt %s has no version for it", h.variant, h.holder, h.attempt)
		}
		if _, _, err := s.r.finalizeOne(ctx, h.variant, h.holder, h.attempt, max(h.quantity, 1), v, ""); err != nil {
			return fmt.Errorf("recover %s of %s: %w", h.variant, h.holder, err)
		}
		s.m.recovered.WithLabelValues("sold").Inc()
		return nil
	}
	if _, _, err := s.r.abortOne(ctx, h.variant, h.holder, h.attempt); err != nil {
		return fmt.Errorf("recover %s of %s: %w", h.variant, h.holder, err)
	}
	s.m.recovered.WithLabelValues("returned").Inc()
	return nil
}

// RestockInTx adds delta (> 0) units of the variant to on_hand inside tx, the caller's
// PostgreSQL transaction (with a ledger row and a version bump, as Adjust writes them),
// and returns the version it wrote. It lets a caller record a restock in the same
// transaction as the decision that causes it (a refund, a cancelled order). Once tx has
// committed, RaiseCounter brings the Redis counter up; until it runs the counter is
// low, the safe direction, and reconcile repairs it if it never runs.
func (s *Service) RestockInTx(ctx context.Context, tx pgx.Tx, variantID uuid.UUID, delta int64, reason, reference string) (int64, error) {
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
