package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// --- near-cache invalidation over pub/sub -----------------------------------------------

// invalidationChannel is the pub/sub channel of near-cache invalidations. A message is
// "<product id> <version>".
func (c *Cache) invalidationChannel() string { return c.space.Key("catalog:invalidations") }

// publish announces the products' new versions to every replica's near-cache.
func (c *Cache) publish(ctx context.Context, ps []Product) error {
	pipe := c.rdb.Pipeline()
	ch := c.invalidationChannel()
	for _, p := range ps {
		pipe.Publish(ctx, ch, p.ID.String()+" "+strconv.FormatInt(p.Version, 10))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %d invalidations: %w", len(ps), err)
	}
	return nil
}

// parseInvalidation reads a message of the invalidation channel.
func parseInvalidation(payload string) (uuid.UUID, int64, bool) {
	idStr, verStr, ok := strings.Cut(payload, " ")
	if !ok {
		return uuid.Nil, 0, false
	}
	id, err := uuid.Parse(idStr)
	if err != nil {
		return uuid.Nil, 0, false
	}
	v, err := strconv.ParseInt(verStr, 10, 64)
	if err != nil || v < 0 {
		return uuid.Nil, 0, false
	}
	return id, v, true
}

// Start subscribes the near-cache to other replicas' invalidations, and polls the
// catalog generation, until Stop (nothing to do without a near-cache). The subscription
// re-establishes itself after a Redis failure; since messages published meanwhile are
// lost, the near-cache is cleared each time it does (the TTL bounds staleness
// regardless). While the generation does not move (no product write anywhere), entries
// stay valid past their TTL; see nearCache.sameGeneration.
func (c *Cache) Start(ctx context.Context) {
	c.start(ctx, true)
}

// start runs the generation poll and, when subscribe is set, the subscription.
func (c *Cache) start(ctx context.Context, subscribe bool) {
	if !c.near.enabled() {
		return
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.subStop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	c.subStop, c.subDone = cancel, done
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.pollGeneration(ctx)
	}()
	if !subscribe {
		go func() { wg.Wait(); close(done) }()
		return
	}
	ps := c.rdb.Subscribe(ctx, c.invalidationChannel())
	go func() {
		defer close(done)
		defer wg.Wait()
		defer ps.Close()
		subscribed := false
		msgs := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(2 * time.Second))
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				switch m := m.(type) {
				case *redis.Subscription:
					if m.Kind == "subscribe" {
						if subscribed {
							c.near.clear()
						}
						subscribed = true
					}
				case *redis.Message:
					if id, v, ok := parseInvalidation(m.Payload); ok {
						c.near.invalidate(id, v)
					}
				}
			}
		}
	}()
}

// pollGeneration reads the catalog generation every ttl/4 for the near-cache, starting
// it (as generation does) when it is missing, so that entries can outlive their TTL while
// no write has moved it even in a shop whose catalog was loaded without one. A failed
// read records nothing, so entries fall back to their TTL.
func (c *Cache) pollGeneration(ctx context.Context) {
	t := time.NewTicker(max(c.near.ttl/4, time.Millisecond))
	defer t.Stop()
	for {
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, c.near.ttl/4)
		pipe := c.rdb.Pipeline()
		pipe.SetNX(rctx, c.genKey(), sent.UnixMilli(), 0)
		get := pipe.Get(rctx, c.genKey())
		_, err := pipe.Exec(rctx)
		cancel()
		if err == nil {
			c.near.observe(get.Val(), sent, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop ends the subscription and the poll started by Start.
func (c *Cache) Stop(context.Context) error {
	c.subMu.Lock()
	stop, done := c.subStop, c.subDone
	c.subStop, c.subDone = nil, nil
	c.subMu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return nil
}

// --- durable invalidation: the relay ------------------------------------------------------

// relayBatch is how many products one relay pass republishes.
const relayBatch = 200

// Relay intervals: while invalidations are pending (or the last pass failed) the relay
// retries quickly, so a write's new version is served within about retryEvery of Redis
// answering again; otherwise it looks for rows left by another replica every idleEvery.
const (
	relayRetryEvery = 200 * time.Millisecond
	relayIdleEvery  = 5 * time.Second
)

// RelayInvalidations republishes the invalidations still recorded in
// catalog_invalidations (a write whose Redis invalidation failed, or a process that died
// between its commit and the invalidation): each product is re-read from PostgreSQL and
// published at its current version, and its rows are deleted once Redis confirmed. It
// returns how many products it published and whether rows remain.
func (s *Service) RelayInvalidations(ctx context.Context) (published int, more bool, err error) {
	ids, err := s.store.PendingInvalidations(ctx, relayBatch)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	ps, err := s.store.Products(ctx, ids)
	if err != nil {
		return 0, true, err
	}
	if err := s.cache.InvalidateAll(ctx, ps); err != nil {
		return 0, true, err
	}
	// Rows of products that no longer exist have nothing to publish.
	done := append([]Product(nil), ps...)
	found := make(map[uuid.UUID]bool, len(ps))
	for _, p := range ps {
		found[p.ID] = true
	}
	for _, id := range ids {
		if !found[id] {
			done = append(done, Product{ID: id, Version: math.MaxInt64})
		}
	}
	if err := s.store.ClearInvalidations(ctx, done); err != nil {
		return len(ps), true, err
	}
	return len(ps), len(ids) == relayBatch, nil
}

// Start runs the invalidation relay and the near-cache subscription until Stop.
func (s *Service) Start(ctx context.Context) {
	s.cache.Start(ctx)
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	if s.relayStop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	s.relayStop, s.relayDone = cancel, done
	go s.relayLoop(ctx, done)
}

// Stop ends the relay and the subscription. Invalidations still pending stay recorded
// for the next start (or another replica).
func (s *Service) Stop(ctx context.Context) error {
	s.relayMu.Lock()
	stop, done := s.relayStop, s.relayDone
	s.relayStop, s.relayDone = nil, nil
	s.relayMu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return s.cache.Stop(ctx)
}

// Republish asks the relay for a pass now (the L2 circuit breaker closed, a write's
// invalidation failed). It never blocks.
func (s *Service) Republish() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// relayLoop closes done when it returns. It gets done as an argument: Stop clears
// s.relayDone under relayMu, which this goroutine does not hold.
func (s *Service) relayLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, more, err := s.RelayInvalidations(pctx)
		cancel()
		next := relayIdleEvery
		switch {
		case err != nil && ctx.Err() == nil:
			next = relayRetryEvery
			s.log.LogAttrs(ctx, slog.LevelWarn, "catalog invalidation relay failed", slog.String("error", err.Error()))
		case more:
			next = 0
		case n > 0:
			s.log.LogAttrs(ctx, slog.LevelInfo, "catalog invalidations republished", slog.Int("products", n))
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}
