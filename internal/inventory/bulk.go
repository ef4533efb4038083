package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MaxBulkLines bounds the lines of one bulk sync request.
const MaxBulkLines = 10_000

// DefaultBulkReason is the ledger reason of a bulk line that gives none.
const DefaultBulkReason = "bulk sync"

// bulkWorkers is how many lines of one request are applied at once. Lines of one variant
// always go to the same worker, so they apply in the order they were sent.
const bulkWorkers = 8

// ErrBulkKeyReused is returned when the Idempotency-Key was used before with another body.
var ErrBulkKeyReused = errors.New("inventory: idempotency key reused with a different body")

// BulkStatus is the outcome of one bulk line.
type BulkStatus string

// The outcomes of a bulk line.
const (
	// BulkApplied: on_hand changed (a ledger row, a version bump, the Redis counter), now
	// or, with Replayed, by an earlier request with the same Idempotency-Key.
	BulkApplied BulkStatus = "applied"
	// BulkUnchanged: on_hand already had the value (on_hand line), or delta was 0.
	BulkUnchanged BulkStatus = "unchanged"
	// BulkUnknown: no variant has this sku or id.
	BulkUnknown BulkStatus = "unknown"
	// BulkInvalid: the line is malformed (see its error); nothing was tried.
	BulkInvalid BulkStatus = "invalid"
	// BulkFailed: the line was valid but not applied (stock held, a dependency failed);
	// sending the request again with the same Idempotency-Key retries it safely.
	BulkFailed BulkStatus = "failed"
)

// BulkLine is one line of a bulk sync: a variant (by SKU or id) and either an absolute
// on_hand or a delta. Invalid is set by the parser when the line cannot be applied.
type BulkLine struct {
	SKU       string
	VariantID uuid.UUID // zero when the line names a SKU
	OnHand    *int64
	Delta     *int64
	Reason    string
	Invalid   string // why the line is invalid ("" when it is valid)
}

// BulkError says why a line was not applied.
type BulkError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// BulkResult is the outcome of one line; Line is its 1-based position in the request.
type BulkResult struct {
	Line      int        `json:"line"`
	SKU       string     `json:"sku,omitempty"`
	VariantID *uuid.UUID `json:"variant_id,omitempty"`
	Status    BulkStatus `json:"status"`
	Replayed  bool       `json:"replayed,omitempty"`
	OnHand    *int64     `json:"on_hand,omitempty"`
	Error     *BulkError `json:"error,omitempty"`
}

// BulkSummary counts the lines of a request by outcome.
type BulkSummary struct {
	Lines     int `json:"lines"`
	Applied   int `json:"applied"`
	Unchanged int `json:"unchanged"`
	Unknown   int `json:"unknown"`
	Invalid   int `json:"invalid"`
	Failed    int `json:"failed"`
}

func (s *BulkSummary) add(st BulkStatus) {
	switch st {
	case BulkApplied:
		s.Applied++
	case BulkUnchanged:
		s.Unchanged++
	case BulkUnknown:
		s.Unknown++
	case BulkInvalid:
		s.Invalid++
	case BulkFailed:
		s.Failed++
	}
}

// CheckBulkLine validates a parsed line's fields and returns why it is invalid ("" if
// it is valid). Parsers call it so every format follows one rule.
func CheckBulkLine(l BulkLine) string {
	switch {
	case l.SKU == "" && l.VariantID == uuid.Nil:
		return "one of sku or variant_id is required"
	case l.SKU != "" && l.VariantID != uuid.Nil:
		return "give sku or variant_id, not both"
	case len(l.SKU) > 100:
		return "sku is longer than 100 characters"
	case l.OnHand == nil && l.Delta == nil:
		return "one of on_hand or delta is required"
	case l.OnHand != nil && l.Delta != nil:
		return "give on_hand or delta, not both"
	case l.OnHand != nil && (*l.OnHand < 0 || *l.OnHand > MaxOnHand):
		return fmt.Sprintf("on_hand must be between 0 and %d", MaxOnHand)
	case l.Delta != nil && (*l.Delta > MaxAdjust || *l.Delta < -MaxAdjust):
		return fmt.Sprintf("delta must be between -%d and %d", MaxAdjust, MaxAdjust)
	case l.Reason != "" && !validReason(l.Reason):
		return "reason must be between 1 and 200 characters"
	}
	return ""
}

// bulkKeyHash names a key in the database and in ledger references (never the key itself).
func bulkKeyHash(key string) string {
	h := sha256.Sum256([]byte("inventory-bulk\x00" + key))
	return hex.EncodeToString(h[:16])
}

// ApplyBulk applies lines one by one through the adjust path of Adjust and Set (a ledger
// row, a version bump and the Redis counter per changed variant) and returns one result
// per line and the summary. A line's failure never stops the others.
//
// With a key (the request's Idempotency-Key, "" for none) each line's ledger reference is
// bulk:<hash of key>:<line>, unique in the ledger: sending the same request again (after a
// timeout, a crash, a 503) applies only the lines that did not apply before, and reports
// the others as applied and Replayed. fingerprint identifies the body: the same key with
// another body is ErrBulkKeyReused and nothing is applied. Without a key the lines'
// reference is fallbackRef and nothing is deduplicated.
//
// Errors (nothing applied): ErrBulkKeyReused, ErrInvalid (too many lines), PostgreSQL
// errors while resolving SKUs or recording the key.
func (s *Service) ApplyBulk(ctx context.Context, lines []BulkLine, key, fingerprint, fallbackRef string) ([]BulkResult, BulkSummary, error) {
	if len(lines) > MaxBulkLines {
		return nil, BulkSummary{}, fmt.Errorf("%d lines, at most %d: %w", len(lines), MaxBulkLines, ErrInvalid)
	}
	res := make([]BulkResult, len(lines))
	ids := make([]uuid.UUID, len(lines))
	for i, l := range lines {
		res[i] = BulkResult{Line: i + 1, SKU: l.SKU}
		if l.VariantID != uuid.Nil {
			id := l.VariantID
			res[i].VariantID = &id
		}
		if l.Invalid == "" {
			l.Invalid = CheckBulkLine(l)
			lines[i].Invalid = l.Invalid
		}
		if l.Invalid != "" {
			res[i].Status, res[i].Error = BulkInvalid, &BulkError{Code: "invalid_line", Message: l.Invalid}
		}
	}

	refPrefix := ""
	if key != "" {
		kh := bulkKeyHash(key)
		if err := s.store.claimBulkKey(ctx, kh, fingerprint, len(lines)); err != nil {
			return nil, BulkSummary{}, err
		}
		refPrefix = "bulk:" + kh + ":"
	}
	ref := func(i int) string {
		if refPrefix == "" {
			return fallbackRef
		}
		return refPrefix + strconv.Itoa(i+1)
	}

	// Resolve SKUs and check that ids exist, in one round trip each.
	var skus []string
	var byID []uuid.UUID
	for _, l := range lines {
		switch {
		case l.Invalid != "":
		case l.SKU != "":
			skus = append(skus, l.SKU)
		default:
			byID = append(byID, l.VariantID)
		}
	}
	skuIDs, err := s.store.variantsBySKU(ctx, skus)
	if err != nil {
		return nil, BulkSummary{}, err
	}
	known, err := s.store.stockMany(ctx, byID)
	if err != nil {
		return nil, BulkSummary{}, err
	}
	var refs []string
	for i, l := range lines {
		if l.Invalid != "" {
			continue
		}
		id := l.VariantID
		if l.SKU != "" {
			var ok bool
			if id, ok = skuIDs[l.SKU]; ok {
				res[i].VariantID = &id
			}
		} else if _, ok := known[id]; !ok {
			id = uuid.Nil
		}
		if id == uuid.Nil {
			res[i].Status, res[i].Error = BulkUnknown, &BulkError{Code: "unknown_variant", Message: "no variant has this sku or id"}
			continue
		}
		ids[i] = id
		if refPrefix != "" {
			refs = append(refs, ref(i))
		}
	}
	done, err := s.store.appliedRefs(ctx, refs)
	if err != nil {
		return nil, BulkSummary{}, err
	}

	// Apply: lines of one variant go to one worker, in order.
	var queues [bulkWorkers][]int
	for i := range lines {
		if res[i].Status != "" {
			continue
		}
		if refPrefix != "" && done[ref(i)] {
			res[i].Status, res[i].Replayed = BulkApplied, true
			continue
		}
		h := fnv.New32a()
		h.Write(ids[i][:])
		w := h.Sum32() % bulkWorkers
		queues[w] = append(queues[w], i)
	}
	var wg sync.WaitGroup
	for _, q := range queues {
		if len(q) == 0 {
			continue
		}
		wg.Add(1)
		go func(q []int) {
			defer wg.Done()
			for _, i := range q {
				res[i] = s.applyBulkLine(ctx, res[i], ids[i], lines[i], ref(i))
			}
		}(q)
	}
	wg.Wait()

	sum := BulkSummary{Lines: len(lines)}
	for _, r := range res {
		sum.add(r.Status)
	}
	return res, sum, nil
}

// applyBulkLine applies one valid line of a known variant.
func (s *Service) applyBulkLine(ctx context.Context, r BulkResult, id uuid.UUID, l BulkLine, reference string) BulkResult {
	reason := l.Reason
	if reason == "" {
		reason = DefaultBulkReason
	}
	var err error
	changed := false
	if l.Delta != nil {
		if *l.Delta != 0 {
			err = s.adjust(ctx, id, *l.Delta, nil, reason, reference)
			changed = err == nil
		}
	} else {
		changed, err = s.setTo(ctx, id, *l.OnHand, reason, reference)
	}
	var pe *pgconn.PgError
	var below *BelowHeldError
	switch {
	case err == nil && changed:
		r.Status = BulkApplied
	case err == nil:
		r.Status = BulkUnchanged
	case errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "stock_ledger_bulk_line_uniq":
		// A copy of this request applied the line while this one was running.
		r.Status, r.Replayed = BulkApplied, true
		return r
	case errors.Is(err, ErrNotFound):
		r.Status, r.Error = BulkUnknown, &BulkError{Code: "unknown_variant", Message: "no variant has this sku or id"}
		return r
	case errors.As(err, &below):
		r.Status, r.Error = BulkFailed, &BulkError{Code: "below_held",
			Message: fmt.Sprintf("cannot take %d units: only %d are not held by shoppers", below.Requested, below.Available)}
		return r
	case errors.Is(err, ErrPartial):
		r.Status, r.Error = BulkFailed, &BulkError{Code: "partially_applied",
			Message: "on_hand changed in PostgreSQL but live availability was not raised; reconcile repairs it " +
				"(sending the request again with the same Idempotency-Key does not apply it twice)"}
		return r
	case errors.Is(err, ErrConcurrentChange):
		r.Status, r.Error = BulkFailed, &BulkError{Code: "conflict", Message: "the stock kept changing concurrently; retry"}
		return r
	default:
		s.log.Warn("inventory: bulk line failed", "variant_id", id, "line", r.Line, "error", err)
		r.Status, r.Error = BulkFailed, &BulkError{Code: "unavailable", Message: "a dependency failed; retry"}
		return r
	}
	if row, err := s.store.stock(ctx, id); err == nil {
		r.OnHand = &row.OnHand
	}
	return r
}

// setTo sets on_hand to target through adjust's compare-and-set, re-reading when another
// change got in between. It reports whether it changed anything.
func (s *Service) setTo(ctx context.Context, id uuid.UUID, target int64, reason, reference string) (bool, error) {
	for i := 0; i < 5; i++ {
		row, err := s.store.stock(ctx, id)
		if err != nil {
			return false, err
		}
		delta := target - row.OnHand
		if delta == 0 {
			return false, nil
		}
		cur := row.OnHand
		err = s.adjust(ctx, id, delta, &cur, reason, reference)
		if errors.Is(err, errCASFailed) {
			continue
		}
		return err == nil, err
	}
	return false, fmt.Errorf("set %s: %w", id, ErrConcurrentChange)
}

// claimBulkKey records the key with the body's fingerprint, or checks that the key's
// earlier body was this one (ErrBulkKeyReused otherwise).
func (s store) claimBulkKey(ctx context.Context, keyHash, fingerprint string, lines int) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO inventory_bulk_requests (key_hash, fingerprint, lines)
		VALUES ($1, $2, $3) ON CONFLICT (key_hash) DO NOTHING`, keyHash, fingerprint, lines); err != nil {
		return fmt.Errorf("inventory: bulk key: %w", err)
	}
	var fp string
	if err := s.pool.QueryRow(ctx, `SELECT fingerprint FROM inventory_bulk_requests WHERE key_hash = $1`, keyHash).
		Scan(&fp); err != nil {
		return fmt.Errorf("inventory: bulk key: %w", err)
	}
	if fp != fingerprint {
		return ErrBulkKeyReused
	}
	return nil
}

// variantsBySKU maps the SKUs that exist (with an inventory row) to their variant ids.
func (s store) variantsBySKU(ctx context.Context, skus []string) (map[string]uuid.UUID, error) {
	out := make(map[string]uuid.UUID, len(skus))
	if len(skus) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT v.sku, v.id FROM variants v JOIN inventory i ON i.variant_id = v.id
		WHERE v.sku = ANY($1)`, skus)
	if err != nil {
		return nil, fmt.Errorf("inventory: resolve skus: %w", err)
	}
	var sku string
	var id uuid.UUID
	_, err = pgx.ForEachRow(rows, []any{&sku, &id}, func() error { out[sku] = id; return nil })
	if err != nil {
		return nil, fmt.Errorf("inventory: resolve skus: %w", err)
	}
	return out, nil
}

// appliedRefs returns which of refs already have a ledger row.
func (s store) appliedRefs(ctx context.Context, refs []string) (map[string]bool, error) {
	out := make(map[string]bool)
	if len(refs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT reference FROM stock_ledger WHERE reference = ANY($1)`, refs)
	if err != nil {
		return nil, fmt.Errorf("inventory: applied lines: %w", err)
	}
	var ref string
	_, err = pgx.ForEachRow(rows, []any{&ref}, func() error { out[ref] = true; return nil })
	if err != nil {
		return nil, fmt.Errorf("inventory: applied lines: %w", err)
	}
	return out, nil
}
