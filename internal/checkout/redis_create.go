package checkout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/auth"
)

// A creation takes its holds before it writes its row, so until the row is committed
// the checkout is known only to Redis. The creations registry (one sorted set, scored by
// start time in milliseconds) names every creation in flight, with its cart's owner, so
// that holds and a frozen cart left by a creation that died before its commit are found
// and returned: by the cart's next checkout attempt, or by Recover once the creator's cart
// lock has lapsed.

func (r *redisSide) creatingKey() string { return r.space.Key("chk:creating") }

// creatingMember is the registry member of checkout id for owner: "id|type|owner id".
func creatingMember(id uuid.UUID, o Owner) string {
	return id.String() + "|" + string(o.Type) + "|" + o.ID
}

// parseCreatingMember reverses creatingMember.
func parseCreatingMember(m string) (uuid.UUID, Owner, error) {
	parts := strings.SplitN(m, "|", 3)
	if len(parts) != 3 {
		return uuid.Nil, Owner{}, fmt.Errorf("creations registry: malformed member %q", m)
	}
	id, err := uuid.Parse(parts[0])
	if err != nil {
		return uuid.Nil, Owner{}, fmt.Errorf("creations registry: member %q: %w", m, err)
	}
	o := Owner{Type: auth.OwnerType(parts[1]), ID: parts[2]}
	if err := o.Validate(); err != nil {
		return uuid.Nil, Owner{}, fmt.Errorf("creations registry: member of %s: %w", id, err)
	}
	return id, o, nil
}

// lockAndRegister takes the cart's checkout lock and registers creation id, in one round
// trip. When the lock is refused the registration is withdrawn (ok false).
func (r *redisSide) lockAndRegister(ctx context.Context, o Owner, id uuid.UUID, ttl time.Duration) (token string, ok bool, err error) {
	token, err = randomToken()
	if err != nil {
		return "", false, err
	}
	member := creatingMember(id, o)
	var set *redis.BoolCmd
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, r.creatingKey(), redis.Z{Score: float64(time.Now().UnixMilli()), Member: member})
		set = p.SetNX(ctx, r.lockKey(o.CartKey()), token, ttl)
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("checkout lock: %w", err)
	}
	if !set.Val() {
		return "", false, r.removeMember(ctx, member)
	}
	return token, true, nil
}

// errLockLost says the cart lock was no longer the creator's when it finished.
var errLockLost = errors.New("checkout: cart lock lost during the creation")

// finishCreation ends creation id in one round trip: the registration is removed, the
// cart lock released (compare-and-delete) and, when st is set, the checkout's state hash
// loaded at version 1. errLockLost when the lock was not token's any more.
func (r *redisSide) finishCreation(ctx context.Context, o Owner, id uuid.UUID, token string, st State,
	lease, ttl time.Duration) error {
	var unlock *redis.Cmd
	run := func() error {
		_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			if st != "" {
				r.load.EvalSha(ctx, p, []string{r.chkKey(id)}, string(st), 1, 0, lease.Milliseconds(), ttl.Milliseconds())
			}
			p.ZRem(ctx, r.creatingKey(), creatingMember(id, o))
			unlock = r.unlock.EvalSha(ctx, p, []string{r.lockKey(o.CartKey())}, token)
			return nil
		})
		return err
	}
	err := run()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis lost its scripts (a restart or SCRIPT FLUSH): a pipeline cannot fall back
		// to EVAL, so load them and send it again (every command in it is idempotent).
		if err = r.loadScripts(ctx); err == nil {
			err = run()
		}
	}
	if err != nil {
		return fmt.Errorf("checkout %s: finish creation: %w", id, err)
	}
	if res, _ := unlock.Slice(); len(res) > 0 && res[0] == "NOT_OWNER" {
		return errLockLost
	}
	return nil
}

// unregister removes creation id of o from the registry.
func (r *redisSide) unregister(ctx context.Context, id uuid.UUID, o Owner) error {
	return r.removeMember(ctx, creatingMember(id, o))
}

// staleCreations returns up to limit registered creations that started before cutoff.
func (r *redisSide) staleCreations(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	ms, err := r.rdb.ZRangeByScore(ctx, r.creatingKey(), &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(cutoff.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("checkout: creations registry: %w", err)
	}
	return ms, nil
}

// removeMember removes a registry member as read (also a malformed one).
func (r *redisSide) removeMember(ctx context.Context, m string) error {
	if err := r.rdb.ZRem(ctx, r.creatingKey(), m).Err(); err != nil {
		return fmt.Errorf("checkout: creations registry: %w", err)
	}
	return nil
}

// lockHeld reports whether someone holds o's cart lock.
func (r *redisSide) lockHeld(ctx context.Context, o Owner) (bool, error) {
	n, err := r.rdb.Exists(ctx, r.lockKey(o.CartKey())).Result()
	if err != nil {
		return false, fmt.Errorf("checkout lock: %w", err)
	}
	return n > 0, nil
}
