package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// replicaAck makes every write to a single Redis (standalone or a Sentinel master) wait
// until acks replicas have it (WAIT on the same connection, in one round trip with the
// write) before the caller hears it succeeded. Redis replicates asynchronously: at a
// Sentinel failover the writes the promoted replica had not received are lost, and a lost
// reservation is stock promised twice. With acks ≥ 1 a write the replicas did not
// confirm within timeout is reported as NOREPLICAS (a dependency failure, 503) although
// the master applied it, exactly like a reply lost on the network, which every write path
// already survives; a write that was confirmed survives the failover.
//
// MULTI/EXEC pipelines are left alone (sessions use one; a lost session means signing in
// again, never a unit sold twice).
type replicaAck struct {
	client  *redis.Client
	acks    int
	timeout time.Duration
}

type ackCtxKey struct{}

// errNotReplicated is a Redis error so fault.IsUnavailable sees it like Redis's own
// NOREPLICAS.
type errNotReplicated struct {
	got, want int64
	timeout   time.Duration
}

func (e errNotReplicated) Error() string {
	return fmt.Sprintf("NOREPLICAS write confirmed by %d of %d replicas within %v", e.got, e.want, e.timeout)
}

// RedisError marks errNotReplicated as a Redis error (redis.Error).
func (errNotReplicated) RedisError() {}

func (h *replicaAck) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *replicaAck) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(ackCtxKey{}) != nil || !isWrite(cmd) {
			return next(ctx, cmd)
		}
		// The write and its WAIT go down one connection as a pipeline.
		var wait *redis.IntCmd
		_, _ = h.client.Pipelined(context.WithValue(ctx, ackCtxKey{}, true), func(p redis.Pipeliner) error {
			_ = p.Process(ctx, cmd)
			wait = redis.NewIntCmd(ctx, "wait", h.acks, h.timeout.Milliseconds())
			return p.Process(ctx, wait)
		})
		return h.check(cmd, wait)
	}
}

func (h *replicaAck) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// go-redis runs MULTI/EXEC pipelines through the same hook, wrapped in multi…exec;
		// their reply reader expects nothing after EXEC.
		if ctx.Value(ackCtxKey{}) != nil || len(cmds) == 0 || strings.EqualFold(cmds[0].Name(), "multi") {
			return next(ctx, cmds)
		}
		var last redis.Cmder
		for _, c := range cmds {
			if isWrite(c) {
				last = c
			}
		}
		if last == nil {
			return next(ctx, cmds)
		}
		wait := redis.NewIntCmd(ctx, "wait", h.acks, h.timeout.Milliseconds())
		err := next(ctx, append(cmds[:len(cmds):len(cmds)], wait))
		if err != nil && err != wait.Err() {
			return err
		}
		if cerr := h.check(last, wait); cerr != nil {
			for _, c := range cmds {
				if isWrite(c) && c.Err() == nil {
					c.SetErr(cerr)
				}
			}
			return cerr
		}
		return nil
	}
}

// check turns a WAIT that fell short into the write's error.
func (h *replicaAck) check(cmd redis.Cmder, wait *redis.IntCmd) error {
	if err := cmd.Err(); err != nil {
		return err // the write failed (or its reply was lost) by itself
	}
	n, err := wait.Result()
	if err == nil && n >= int64(h.acks) {
		return nil
	}
	e := errNotReplicated{got: n, want: int64(h.acks), timeout: h.timeout}
	cmd.SetErr(e)
	return e
}

// readOnlyCommands never change the data set, so they need no WAIT.
var readOnlyCommands = map[string]bool{
	"get": true, "mget": true, "getrange": true, "strlen": true, "exists": true, "type": true, "ttl": true,
	"pttl": true, "hget": true, "hmget": true, "hgetall": true, "hlen": true, "hexists": true, "hkeys": true,
	"hvals": true, "hscan": true, "scan": true, "sscan": true, "zscan": true, "smembers": true,
	"sismember": true, "scard": true, "zrange": true, "zrangebyscore": true, "zrevrange": true,
	"zrevrangebyscore": true, "zscore": true, "zcard": true, "zcount": true, "zrank": true, "llen": true,
	"lrange": true, "lindex": true, "xrange": true, "xrevrange": true, "xlen": true, "xread": true,
	"xinfo": true, "xpending": true, "info": true, "ping": true, "echo": true, "config": true, "slowlog": true,
	"memory": true, "dbsize": true, "keys": true, "time": true, "script": true, "command": true,
	"client": true, "hello": true, "select": true, "auth": true, "wait": true, "evalsha_ro": true,
	"eval_ro": true, "fcall_ro": true, "publish": true, "subscribe": true, "psubscribe": true,
	"unsubscribe": true, "punsubscribe": true, "readonly": true, "role": true, "object": true, "dump": true,
	"quit": true, "cluster": true, "sentinel": true, "lastsave": true, "debug": true, "latency": true,
}

func isWrite(cmd redis.Cmder) bool { return !readOnlyCommands[strings.ToLower(cmd.Name())] }
