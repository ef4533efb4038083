package inventory

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

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
