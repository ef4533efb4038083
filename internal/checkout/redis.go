package checkout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

// Statuses of transition.lua.
const (
	claimOK           = "OK"
	claimMismatch     = "MISMATCH"
	claimBusy         = "BUSY"
	claimLoadRequired = "LOAD_REQUIRED"
)

// defaultEventsMaxLen bounds the order events stream unless Options.EventsMaxLen says
// otherwise (approximate trimming).
const defaultEventsMaxLen = 100000

// redisSide is checkout's L1 state in Redis: the checkout hashes (state machine fast
// path), per-cart checkout locks, idempotency records and the order events stream. Only
// this file talks to go-redis.
type redisSide struct {
	rdb    redis.UniversalClient
	space  rkey.Space
	maxLen int64 // of the events stream

	transition, confirm, load, unlock, renew *redis.Script
}

func newRedisSide(rdb redis.UniversalClient, space rkey.Space) *redisSide {
	s := func(name string) *redis.Script { return redis.NewScript(lua.Source(name)) }
	return &redisSide{rdb: rdb, space: space, maxLen: defaultEventsMaxLen, transition: s("transition"), confirm: s("chk_confirm"),
		load: s("chk_load"), unlock: s("unlock"), renew: s("lease_renew")}
}

// loadScripts loads every script (on every master in Cluster).
func (r *redisSide) loadScripts(ctx context.Context) error {
	scripts := []*redis.Script{r.transition, r.confirm, r.load, r.unlock, r.renew}
	load := func(ctx context.Context, c *redis.Client) error {
		for _, sc := range scripts {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch c := r.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, load)
	case *redis.Client:
		err = load(ctx, c)
	}
	if err != nil {
		return fmt.Errorf("checkout: load scripts: %w", err)
	}
	return nil
}

func (r *redisSide) chkKey(id uuid.UUID) string { return r.space.Key("chk:{", id.String(), "}") }

func (r *redisSide) lockKey(cartKey string) string { return r.space.Key("lock:{", cartKey, "}") }

func (r *redisSide) streamKey() string { return r.space.Key("events:orders") }

type claimResult struct {
	code    string
	state   State
	version int64
}

// claim runs transition.lua: the Redis compare-and-set from → to.
// expect is the version the caller saw.
func (r *redisSide) claim(ctx context.Context, id uuid.UUID, from, to State, expect int64, lease, ttl time.Duration) (claimResult, error) {
	v, err := r.transition.Run(ctx, r.rdb, []string{r.chkKey(id)}, string(from), string(to),
		lease.Milliseconds(), ttl.Milliseconds(), expect).Slice()
	if err != nil {
		return claimResult{}, fmt.Errorf("checkout %s: transition: %w", id, err)
	}
	if len(v) != 3 {
		return claimResult{}, fmt.Errorf("checkout %s: transition: unexpected reply %v", id, v)
	}
	code, _ := v[0].(string)
	st, _ := v[1].(string)
	ver, _ := v[2].(int64)
	switch code {
	case claimOK, claimMismatch, claimBusy, claimLoadRequired:
	default:
		return claimResult{}, fmt.Errorf("checkout %s: transition: unexpected reply %v", id, v)
	}
	return claimResult{code: code, state: State(st), version: ver}, nil
}

// confirmClaim marks the claim that produced version as confirmed.
func (r *redisSide) confirmClaim(ctx context.Context, id uuid.UUID, version int64) error {
	if err := r.confirm.Run(ctx, r.rdb, []string{r.chkKey(id)}, version).Err(); err != nil {
		return fmt.Errorf("checkout %s: confirm: %w", id, err)
	}
	return nil
}

// loadHash writes the PostgreSQL row's state and version over the hash (see chk_load.lua);
// claim is the caller's own pending claim to undo, 0 for none.
func (r *redisSide) loadHash(ctx context.Context, id uuid.UUID, st State, version, claim int64, lease, ttl time.Duration) error {
	err := r.load.Run(ctx, r.rdb, []string{r.chkKey(id)}, string(st), version, claim,
		lease.Milliseconds(), ttl.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("checkout %s: load: %w", id, err)
	}
	return nil
}

// peek reads the hash's state without changing it (exists is false when it is missing).
func (r *redisSide) peek(ctx context.Context, id uuid.UUID) (st State, pending, exists bool, err error) {
	v, err := r.rdb.HMGet(ctx, r.chkKey(id), "state", "pending").Result()
	if err != nil {
		return "", false, false, fmt.Errorf("checkout %s: read state: %w", id, err)
	}
	s, ok := v[0].(string)
	if !ok {
		return "", false, false, nil
	}
	p, _ := v[1].(string)
	return State(s), p == "1", true, nil
}

func randomToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// lock takes the per-cart checkout lock; ok is false when someone else holds it.
func (r *redisSide) lock(ctx context.Context, cartKey string, ttl time.Duration) (token string, ok bool, err error) {
	token, err = randomToken()
	if err != nil {
		return "", false, err
	}
	ok, err = r.rdb.SetNX(ctx, r.lockKey(cartKey), token, ttl).Result()
	if err != nil {
		return "", false, fmt.Errorf("checkout lock: %w", err)
	}
	return token, ok, nil
}

// renewLock extends the lock by ttl if token still holds it; false when it was lost.
func (r *redisSide) renewLock(ctx context.Context, cartKey, token string, ttl time.Duration) (bool, error) {
	n, err := r.renew.Run(ctx, r.rdb, []string{r.lockKey(cartKey)}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("checkout lock renew: %w", err)
	}
	return n == 1, nil
}

// unlockCart releases the lock if token still holds it (compare-and-delete).
func (r *redisSide) unlockCart(ctx context.Context, cartKey, token string) error {
	if err := r.unlock.Run(ctx, r.rdb, []string{r.lockKey(cartKey)}, token).Err(); err != nil {
		return fmt.Errorf("checkout unlock: %w", err)
	}
	return nil
}

// publish appends events to the order events stream, one XADD each, pipelined.
func (r *redisSide) publish(ctx context.Context, events []outboxEvent) error {
	if len(events) == 0 {
		return nil
	}
	pipe := r.rdb.Pipeline()
	for _, e := range events {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.streamKey(), MaxLen: r.maxLen, Approx: true,
			Values: []any{"id", e.ID.String(), "topic", e.Topic, "aggregate_id", e.AggregateID,
				"payload", string(e.Payload)}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish order events: %w", err)
	}
	return nil
}
