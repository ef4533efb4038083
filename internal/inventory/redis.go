package inventory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

// Script reply codes (see the headers of scripts/lua/*.lua).
const (
	codeOK           = "OK"
	codeLoadRequired = "LOAD_REQUIRED"
	codeInsufficient = "INSUFFICIENT"
	codeBusy         = "BUSY"
	codeGone         = "GONE"
	codeMissing      = "MISSING"
	codeExpired      = "EXPIRED"
	codeQty          = "QTY"
	codeExists       = "EXISTS"
	codeStale        = "STALE"
	codeSkip         = "SKIP"
	codeFixed        = "FIXED"
	codeDrift        = "DRIFT"
)

// redisSide runs the inventory scripts and maintains the hold index. Only this file
// talks to go-redis.
type redisSide struct {
	rdb   redis.UniversalClient
	space rkey.Space
	m     *metrics

	reserve, release, mark, unmark, abort, finalize, load, adjust, reconcile, sweep, levels *redis.Script
}

func newRedisSide(rdb redis.UniversalClient, space rkey.Space, m *metrics) *redisSide {
	s := func(name string) *redis.Script { return redis.NewScript(lua.Source(name, "inv_lib")) }
	return &redisSide{rdb: rdb, space: space, m: m,
		reserve: s("reserve"), release: s("release"), mark: s("commit"), unmark: s("inv_unmark"),
		abort: s("inv_abort"), finalize: s("finalize"), load: s("load"), adjust: s("inv_adjust"),
		reconcile: s("reconcile"), sweep: s("sweep"), levels: s("levels")}
}

func (r *redisSide) all() []*redis.Script {
	return []*redis.Script{r.reserve, r.release, r.mark, r.unmark, r.abort, r.finalize, r.load, r.adjust,
		r.reconcile, r.sweep, r.levels}
}

// loadScripts loads every script (on every master in Cluster), surfacing Lua syntax
// errors and an unreachable Redis early. Calls still work without it (EVALSHA falls back
// to EVAL on NOSCRIPT).
func (r *redisSide) loadScripts(ctx context.Context) error {
	loadOn := func(ctx context.Context, c redis.Scripter) error {
		for _, sc := range r.all() {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return fmt.Errorf("inventory: load scripts: %w", err)
			}
		}
		return nil
	}
	if cc, ok := r.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return loadOn(ctx, c) })
	}
	return loadOn(ctx, r.rdb)
}

// keys of one variant; all share the hash tag {<variant>}.
type keys struct{ avail, holds, held, cmt, ver string }

func (r *redisSide) keys(id uuid.UUID) keys {
	p := r.space.Key("inv:{", id.String(), "}:")
	return keys{avail: p + "avail", holds: p + "holds", held: p + "held", cmt: p + "cmt", ver: p + "ver"}
}

// indexKey is the ZSET variant -> earliest hold deadline (ms, Redis clock) that lets
// Sweep find due variants without SCAN. It lives in its own slot, so it is only ever
// written from Go, after (or around) the scripts; see Service.Sweep for why a stale entry
// is harmless and an entry is never lost.
func (r *redisSide) indexKey() string { return r.space.Key("inv:holdidx") }

func (r *redisSide) run(ctx context.Context, name string, sc *redis.Script, ks []string, args ...any) ([]any, error) {
	start := time.Now()
	v, err := sc.Run(ctx, r.rdb, ks, args...).Slice()
	r.m.scripts.WithLabelValues(name).Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("inventory: script %s: %w", name, err)
	}
	return v, nil
}

func str(v []any, i int) string {
	if i >= len(v) {
		return ""
	}
	s, _ := v[i].(string)
	return s
}

func num(v []any, i int) int64 {
	if i >= len(v) {
		return 0
	}
	switch x := v[i].(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

type reserveReply struct {
	code      string
	expiry    int64 // ms
	first     int64 // earliest deadline before this hold, -1 if none
	available int64 // INSUFFICIENT: what the holder could have held
	reclaimed int64
	// OK: the available counter just before and just after this reservation, in the
	// script's atomic step: consecutive reservations see adjacent ranges, so exactly one
	// of them sees a given threshold crossed.
	before, after int64
	indexed       bool // the script kept the hold index itself (singleNode)
}

// singleNode reports whether one Redis node holds every key (a single Redis, or a
// primary with replicas), so that a script may also touch a key outside its variant's
// hash tag: the hold index (reserve and commit lower it in their own round trip instead
// of a second call, indexLower) or, for the cart's scripts, a counter (CounterKey). Under
// Cluster such a key lives in another slot and is never passed to a script.
func (r *redisSide) singleNode() bool {
	_, cluster := r.rdb.(*redis.ClusterClient)
	return !cluster
}

func (r *redisSide) reserveOne(ctx context.Context, id uuid.UUID, holder string, q, ttlMs int64, limit int) (reserveReply, error) {
	k := r.keys(id)
	ks, args := []string{k.avail, k.holds, k.held, k.cmt}, []any{holder, q, ttlMs, limit}
	indexed := r.singleNode()
	if indexed {
		ks, args = append(ks, r.indexKey()), append(args, id.String())
	}
	v, err := r.run(ctx, "reserve", r.reserve, ks, args...)
	if err != nil {
		return reserveReply{}, err
	}
	rep := reserveReply{code: str(v, 0), indexed: indexed}
	switch rep.code {
	case codeOK:
		rep.expiry, rep.first, rep.reclaimed = num(v, 1), num(v, 2), num(v, 3)
		rep.before, rep.after = num(v, 4), num(v, 5)
	case codeInsufficient:
		rep.available, rep.reclaimed = num(v, 1), num(v, 2)
	}
	return rep, nil
}

func (r *redisSide) releaseOne(ctx context.Context, id uuid.UUID, holder string) (int64, string, error) {
	k := r.keys(id)
	v, err := r.run(ctx, "release", r.release, []string{k.avail, k.holds, k.held, k.cmt}, holder)
	if err != nil {
		return 0, "", err
	}
	return num(v, 1), str(v, 0), nil
}

type markReply struct {
	code     string
	epoch    string // OK: the counter's epoch
	deadline int64  // OK: when recovery may decide the attempt (ms)
	held     int64  // QTY: the quantity held
	indexed  bool   // OK: the script lowered the hold index to deadline itself
}

// markOne is Commit's step 1 for one variant.
func (r *redisSide) markOne(ctx context.Context, id uuid.UUID, holder, attempt string, q, timeoutMs int64) (markReply, error) {
	k := r.keys(id)
	ks, args := []string{k.avail, k.holds, k.held, k.cmt, k.ver}, []any{holder, attempt, q, timeoutMs}
	indexed := r.singleNode()
	if indexed {
		ks, args = append(ks, r.indexKey()), append(args, id.String())
	}
	v, err := r.run(ctx, "commit", r.mark, ks, args...)
	if err != nil {
		return markReply{}, err
	}
	rep := markReply{code: str(v, 0), indexed: indexed}
	switch rep.code {
	case codeQty:
		rep.held = num(v, 1)
	case codeOK:
		rep.epoch, rep.deadline = str(v, 1), num(v, 2)
	}
	return rep, nil
}

// unmarkOne returns the code and the restored expiry (ms).
func (r *redisSide) unmarkOne(ctx context.Context, id uuid.UUID, holder, attempt string) (string, int64, error) {
	k := r.keys(id)
	v, err := r.run(ctx, "inv_unmark", r.unmark, []string{k.holds, k.cmt}, holder, attempt)
	if err != nil {
		return "", 0, err
	}
	return str(v, 0), num(v, 1), nil
}

func (r *redisSide) abortOne(ctx context.Context, id uuid.UUID, holder, attempt string) (int64, string, error) {
	k := r.keys(id)
	v, err := r.run(ctx, "inv_abort", r.abort, []string{k.avail, k.holds, k.held, k.cmt}, holder, attempt)
	if err != nil {
		return 0, "", err
	}
	return num(v, 1), str(v, 0), nil
}

func (r *redisSide) finalizeOne(ctx context.Context, id uuid.UUID, holder, attempt string, q, version int64, epoch string) (string, int64, error) {
	k := r.keys(id)
	v, err := r.run(ctx, "finalize", r.finalize, []string{k.avail, k.holds, k.held, k.cmt, k.ver},
		holder, attempt, q, version, epoch)
	if err != nil {
		return "", 0, err
	}
	return str(v, 0), num(v, 1), nil
}

// loadOne creates the counter from (onHand, version); it returns the code and the
// counter's value (OK, EXISTS) or the newer version that made the read stale (STALE).
func (r *redisSide) loadOne(ctx context.Context, id uuid.UUID, onHand, version int64, epoch string) (string, int64, error) {
	k := r.keys(id)
	v, err := r.run(ctx, "load", r.load, []string{k.avail, k.held, k.ver}, onHand, version, epoch)
	if err != nil {
		return "", 0, err
	}
	return str(v, 0), num(v, 1), nil
}

func (r *redisSide) adjustOne(ctx context.Context, id uuid.UUID, delta, version int64) (string, error) {
	k := r.keys(id)
	v, err := r.run(ctx, "inv_adjust", r.adjust, []string{k.avail, k.ver}, delta, version)
	if err != nil {
		return "", err
	}
	return str(v, 0), nil
}

type reconcileReply struct {
	code     string
	avail    int64 // -1 when MISSING
	expected int64
	held     int64
	first    int64
}

func (r *redisSide) reconcileOne(ctx context.Context, id uuid.UUID, onHand, version int64, dry bool) (reconcileReply, error) {
	k := r.keys(id)
	d := "0"
	if dry {
		d = "1"
	}
	v, err := r.run(ctx, "reconcile", r.reconcile, []string{k.avail, k.holds, k.held, k.ver}, onHand, version, d)
	if err != nil {
		return reconcileReply{}, err
	}
	return reconcileReply{code: str(v, 0), avail: num(v, 1), expected: num(v, 2), held: num(v, 3), first: num(v, 4)}, nil
}

// stuckHold is an expired committing hold found by sweep.
type stuckHold struct {
	variant         uuid.UUID
	holder, attempt string
	quantity        int64
}

type sweepReply struct {
	holds, units int64
	first        int64
	more         bool
	stuck        []stuckHold
}

func (r *redisSide) sweepOne(ctx context.Context, id uuid.UUID, limit int) (sweepReply, error) {
	k := r.keys(id)
	v, err := r.run(ctx, "sweep", r.sweep, []string{k.avail, k.holds, k.held, k.cmt}, limit)
	if err != nil {
		return sweepReply{}, err
	}
	rep := sweepReply{holds: num(v, 1), units: num(v, 2), first: num(v, 3), more: str(v, 0) == "MORE"}
	for i := 4; i+2 < len(v); i += 3 {
		rep.stuck = append(rep.stuck, stuckHold{variant: id, holder: str(v, i), attempt: str(v, i+1), quantity: num(v, i+2)})
	}
	return rep, nil
}

// levelsPage is how many holds Levels returns (the soonest deadlines first).
const levelsPage = 100

// levelsOne reads the counter, the held total and hold count (O(1)) and the first page
// of holds; ok is false when the counter is missing.
func (r *redisSide) levelsOne(ctx context.Context, id uuid.UUID) (lv Levels, ok bool, err error) {
	k := r.keys(id)
	v, err := r.run(ctx, "levels", r.levels, []string{k.avail, k.holds, k.held, k.cmt}, levelsPage)
	if err != nil {
		return Levels{}, false, err
	}
	if str(v, 0) != codeOK {
		return Levels{}, false, nil
	}
	lv = Levels{Available: num(v, 1), Held: num(v, 2), HoldsCount: num(v, 3)}
	for i := 4; i+3 < len(v); i += 4 {
		lv.Holds = append(lv.Holds, Hold{Holder: str(v, i), Quantity: num(v, i+1),
			ExpiresAt: time.UnixMilli(num(v, i+2)).UTC(), Committing: num(v, i+3) == 1})
	}
	return lv, true, nil
}

// getAvail reads the counters of ids in one pipeline (split per node in Cluster).
// Missing counters are absent from the map.
func (r *redisSide) getAvail(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, r.keys(id).avail)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("inventory: read counters: %w", err)
	}
	out := make(map[uuid.UUID]int64, len(ids))
	for i, c := range cmds {
		n, err := c.Int64()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inventory: read counter: %w", err)
		}
		out[ids[i]] = n
	}
	return out, nil
}

// now is Redis's clock in ms (the clock of every deadline).
func (r *redisSide) now(ctx context.Context) (int64, error) {
	t, err := r.rdb.Time(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("inventory: redis time: %w", err)
	}
	return t.UnixMilli(), nil
}

// indexLower records that id has a hold due at ms, unless the index already says
// earlier (ZADD LT adds a missing entry).
func (r *redisSide) indexLower(ctx context.Context, id uuid.UUID, ms int64) error {
	err := r.rdb.ZAddLT(ctx, r.indexKey(), redis.Z{Score: float64(ms), Member: id.String()}).Err()
	if err != nil {
		return fmt.Errorf("inventory: hold index: %w", err)
	}
	return nil
}

// indexSet sets id's entry to ms (which may raise it), or removes it when ms < 0.
func (r *redisSide) indexSet(ctx context.Context, id uuid.UUID, ms int64) error {
	var err error
	if ms < 0 {
		err = r.rdb.ZRem(ctx, r.indexKey(), id.String()).Err()
	} else {
		err = r.rdb.ZAdd(ctx, r.indexKey(), redis.Z{Score: float64(ms), Member: id.String()}).Err()
	}
	if err != nil {
		return fmt.Errorf("inventory: hold index: %w", err)
	}
	return nil
}

// firstDeadline reads the earliest deadline of id's holds, -1 if it has none.
func (r *redisSide) firstDeadline(ctx context.Context, id uuid.UUID) (int64, error) {
	zs, err := r.rdb.ZRangeWithScores(ctx, r.keys(id).holds, 0, 0).Result()
	if err != nil {
		return 0, fmt.Errorf("inventory: read holds: %w", err)
	}
	if len(zs) == 0 {
		return -1, nil
	}
	return int64(zs[0].Score), nil
}

// due lists up to limit variants whose index entry is at or before nowMs.
func (r *redisSide) due(ctx context.Context, nowMs int64, limit int) ([]uuid.UUID, error) {
	ms, err := r.rdb.ZRangeByScore(ctx, r.indexKey(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(nowMs, 10), Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("inventory: hold index: %w", err)
	}
	out := make([]uuid.UUID, 0, len(ms))
	for _, m := range ms {
		id, err := uuid.Parse(m)
		if err != nil {
			// not ours: drop it so it is not visited again
			r.rdb.ZRem(ctx, r.indexKey(), m)
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

// exists is a cheap probe that Redis answers for id's slot.
func (r *redisSide) probe(ctx context.Context, id uuid.UUID) error {
	if err := r.rdb.Exists(ctx, r.keys(id).avail).Err(); err != nil {
		return fmt.Errorf("inventory: redis: %w", err)
	}
	return nil
}
