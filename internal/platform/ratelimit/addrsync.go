package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
)

// addrShare makes a per-key allowance (the per-address ceiling, or the per-caller limit)
// hold across replicas without a Redis call on the request path: each replica counts what
// it admitted per key during a window, and once per window adds the counts of busy keys
// to a shared Redis counter (<space><prefix>{<key>}:<window>). A key whose total over
// every replica exceeds the window's allowance is refused by every replica until the
// next window. While Redis is down the shares are not added, and each replica's own
// allowance still applies.
type addrShare struct {
	rdb       redis.UniversalClient
	space     rkey.Space
	prefix    string // of the shared counters' keys: "rl:addr:" or "rl:win:"
	window    time.Duration
	allowance int64 // requests one address may make in one window (rate × window + burst)
	threshold int64 // addresses admitted fewer times than this in a window are not shared

	mu      sync.Mutex
	counts  map[string]int64
	blocked map[string]time.Time // until
	now     func() time.Time
	last    []sharedKey // what the previous round added, re-read once every replica has
}

type sharedKey struct{ addr, key string }

func newAddrShare(rdb redis.UniversalClient, space rkey.Space, prefix string, perSecond float64, burst int,
	window time.Duration) *addrShare {
	allowance := int64(perSecond*window.Seconds()) + int64(burst)
	return &addrShare{rdb: rdb, space: space, prefix: prefix, window: window, allowance: allowance,
		threshold: max(1, allowance/10), counts: map[string]int64{}, blocked: map[string]time.Time{}, now: time.Now}
}

// refused reports whether addr is over the shared allowance of this window.
func (s *addrShare) refused(addr string) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.blocked[addr]
	if !ok {
		return false, 0
	}
	if wait := until.Sub(s.now()); wait > 0 {
		return true, wait
	}
	delete(s.blocked, addr)
	return false, 0
}

// admitted counts one admitted request of addr.
func (s *addrShare) admitted(addr string) {
	s.mu.Lock()
	if len(s.counts) < 1<<20 {
		s.counts[addr]++
	}
	s.mu.Unlock()
}

// sync adds this window's busy addresses to the shared counters, re-reads the counters
// it added to in the previous round (by then every replica has added its share), and
// blocks the addresses over the allowance for one window.
func (s *addrShare) sync(ctx context.Context) error {
	s.mu.Lock()
	counts := s.counts
	s.counts = make(map[string]int64, len(counts))
	s.mu.Unlock()
	now := s.now()
	win := strconv.FormatInt(now.UnixNano()/int64(s.window), 10)
	type pending struct {
		addr string
		cmd  func() int64
	}
	var ps []pending
	var shared []sharedKey
	pipe := s.rdb.Pipeline()
	for _, k := range s.last {
		get := pipe.Get(ctx, k.key)
		ps = append(ps, pending{k.addr, func() int64 { n, _ := get.Int64(); return n }})
	}
	for addr, n := range counts {
		if n < s.threshold {
			continue
		}
		k := s.space.Key(s.prefix, "{", addr, "}:", win)
		incr := pipe.IncrBy(ctx, k, n)
		ps = append(ps, pending{addr, incr.Val})
		pipe.PExpire(ctx, k, 3*s.window)
		shared = append(shared, sharedKey{addr, k})
	}
	s.last = shared
	if len(ps) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		if p.cmd() > s.allowance {
			s.blocked[p.addr] = now.Add(s.window)
		}
	}
	if len(s.blocked) > 1<<16 {
		for a, until := range s.blocked {
			if !until.After(now) {
				delete(s.blocked, a)
			}
		}
	}
	return nil
}

// run shares the counts every window until ctx ends. Errors (Redis down) are skipped:
// each replica's own allowance still applies meanwhile.
func (s *addrShare) run(ctx context.Context) {
	t := time.NewTicker(s.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, s.window)
			_ = s.sync(sctx)
			cancel()
		}
	}
}
