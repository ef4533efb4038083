package cart

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

// Script return codes (the first element of a script's reply).
const (
	codeOK           = "OK"
	codeMissing      = "MISSING"
	codeLoadRequired = "LOAD_REQUIRED"
	codeLocked       = "LOCKED"
	codeQtyLimit     = "QTY_LIMIT"
	codeLinesLimit   = "LINES_LIMIT"
	codeStock        = "STOCK"
	codeEmpty        = "EMPTY"
	codeNotLocked    = "NOT_LOCKED"
	codeTooLarge     = "TOO_LARGE"
	codeNoCounter    = "NO_COUNTER"
)

// Hash fields of a cart (see scripts/lua/cart_lib.lua).
const (
	fieldLinePrefix   = "l:"
	fieldCoupon       = "coupon"
	fieldCheckout     = "checkout"
	fieldUpdatedAt    = "updated_at"
	fieldMarkerPrefix = "m:"
)

// redisSide runs the cart_*.lua scripts. Only this file talks to go-redis.
type redisSide struct {
	rdb   redis.UniversalClient
	space rkey.Space

	get, add, set, clear, coupon, freeze, unfreeze, restore, merge, mergeDrop, prefsPatch *redis.Script
}

func newRedisSide(rdb redis.UniversalClient, space rkey.Space) *redisSide {
	s := func(name string) *redis.Script { return redis.NewScript(lua.Source(name, "cart_lib")) }
	return &redisSide{rdb: rdb, space: space,
		get: s("cart_get"), add: s("cart_add"), set: s("cart_set"), clear: s("cart_clear"),
		coupon: s("cart_coupon"), freeze: s("cart_freeze"), unfreeze: s("cart_unfreeze"),
		restore: s("cart_restore"), merge: s("cart_merge"), mergeDrop: s("cart_merge_drop"),
		prefsPatch: s("cart_prefs_patch"),
	}
}

// load loads every script (on every master in Cluster), surfacing errors at start.
func (r *redisSide) load(ctx context.Context) error {
	all := []*redis.Script{r.get, r.add, r.set, r.clear, r.coupon, r.freeze, r.unfreeze, r.restore,
		r.merge, r.mergeDrop, r.prefsPatch}
	loadOn := func(ctx context.Context, c *redis.Client) error {
		for _, sc := range all {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return fmt.Errorf("load cart scripts: %w", err)
			}
		}
		return nil
	}
	if cc, ok := r.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, loadOn)
	}
	for _, sc := range all {
		if err := sc.Load(ctx, r.rdb).Err(); err != nil {
			return fmt.Errorf("load cart scripts: %w", err)
		}
	}
	return nil
}

func (r *redisSide) cartKey(o Owner) string {
	return r.space.Key("cart:{", string(o.Type), ":", o.ID, "}")
}

func (r *redisSide) prefsKey(customer string) string { return r.space.Key("prefs:{", customer, "}") }

// reply is a script's answer: a status code and the values after it.
type reply struct {
	code string
	vals []any
}

// run executes script on key with ARGV = restore flag, TTL ms, args...
func (r *redisSide) run(ctx context.Context, sc *redis.Script, key string, restore bool, ttl time.Duration, args ...any) (reply, error) {
	return r.runKeys(ctx, sc, []string{key}, restore, ttl, args...)
}

// runKeys is run with more keys after the cart's (keys[0]).
func (r *redisSide) runKeys(ctx context.Context, sc *redis.Script, keys []string, restore bool, ttl time.Duration, args ...any) (reply, error) {
	flag := "0"
	if restore {
		flag = "1"
	}
	argv := append([]any{flag, ttl.Milliseconds()}, args...)
	v, err := sc.Run(ctx, r.rdb, keys, argv...).Result()
	if err != nil {
		return reply{}, err
	}
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return reply{}, fmt.Errorf("cart script: empty reply")
		}
		code, ok := x[0].(string)
		if !ok {
			return reply{}, fmt.Errorf("cart script: unexpected reply %v", x[0])
		}
		return reply{code: code, vals: x[1:]}, nil
	}
	return reply{}, fmt.Errorf("cart script: unexpected reply type %T", v)
}

// hgetall reads a hash (empty map when missing).
func (r *redisSide) hgetall(ctx context.Context, key string) (map[string]string, error) {
	return r.rdb.HGetAll(ctx, key).Result()
}

// readPrefs reads a preferences hash and slides its TTL; exists is false when missing.
func (r *redisSide) readPrefs(ctx context.Context, key string, ttl time.Duration) (fields map[string]string, exists bool, err error) {
	pipe := r.rdb.Pipeline()
	all := pipe.HGetAll(ctx, key)
	exp := pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, false, err
	}
	return all.Val(), exp.Val(), nil
}

// state is a cart as stored in Redis.
type state struct {
	now       time.Time // Redis time of the read
	exists    bool
	lines     []Line // in the hash's order (insertion order for a hash this small)
	coupon    string
	lock      string
	updatedAt int64 // ms; 0 = never written
	markers   map[string]string
}

// parseState reads {now_ms, field, value, ...} (the reply of an OK or MISSING).
func parseState(vals []any, exists bool) (state, error) {
	if len(vals) == 0 {
		return state{}, fmt.Errorf("cart script: reply without time")
	}
	now, err := toInt(vals[0])
	if err != nil {
		return state{}, err
	}
	st := state{now: time.UnixMilli(now), exists: exists}
	if (len(vals)-1)%2 != 0 {
		return state{}, fmt.Errorf("cart script: odd field list")
	}
	fields := make(map[string]string, (len(vals)-1)/2)
	order := make([]string, 0, (len(vals)-1)/2)
	for i := 1; i+1 < len(vals); i += 2 {
		f, _ := vals[i].(string)
		v, _ := vals[i+1].(string)
		fields[f] = v
		order = append(order, f)
	}
	st.fill(fields, order)
	return st, nil
}

// stateFromHash builds a state from an HGETALL result (order not preserved).
func stateFromHash(fields map[string]string, now time.Time) state {
	st := state{now: now, exists: len(fields) > 0}
	order := make([]string, 0, len(fields))
	for f := range fields {
		order = append(order, f)
	}
	st.fill(fields, order)
	return st
}

func (st *state) fill(fields map[string]string, order []string) {
	for _, f := range order {
		v := fields[f]
		switch {
		case strings.HasPrefix(f, fieldLinePrefix):
			id, err := uuid.Parse(f[len(fieldLinePrefix):])
			q, qerr := strconv.ParseInt(v, 10, 64)
			if err == nil && qerr == nil && q > 0 {
				st.lines = append(st.lines, Line{VariantID: id, Quantity: q})
			}
		case strings.HasPrefix(f, fieldMarkerPrefix):
			if st.markers == nil {
				st.markers = map[string]string{}
			}
			st.markers[f] = v
		case f == fieldCoupon:
			st.coupon = v
		case f == fieldCheckout:
			st.lock = v
		case f == fieldUpdatedAt:
			st.updatedAt, _ = strconv.ParseInt(v, 10, 64)
		}
	}
}

func lineField(id uuid.UUID) string { return fieldLinePrefix + id.String() }

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("cart script: %v is not an integer", v)
}
