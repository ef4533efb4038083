// Package events reads the service's event stream (<prefix>events:orders) as a Redis
// consumer group with acknowledgements: the client side of the contract in docs/events.md
// and of `commerce events tail`. Delivery is at least once: an event is acknowledged only
// after its handler returned nil, and an event a consumer took but never acknowledged
// (it crashed) is delivered again, to the same consumer when it restarts or to another
// one of the group once it has been idle for MinIdle.
package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
)

// StreamName is the stream's name inside the service's key space.
const StreamName = "events:orders"

// Stream returns the stream key of a key space (REDIS_PREFIX).
func Stream(space rkey.Space) string { return space.Key(StreamName) }

// Event is one stream entry.
type Event struct {
	StreamID    string // the entry's id in the stream (ordering, XACK)
	ID          string // the event's id: the same on every delivery (de-duplicate on it)
	Type        string // order.placed, order.refunded, order.cancelled, inventory.low_stock
	AggregateID string // the order id, or the variant id of inventory events
	Payload     string // the JSON payload (docs/events.md)
	Deliveries  int64  // 1 on the first delivery; more when it was delivered before and not acknowledged
}

// Consumer is one member of a consumer group.
type Consumer struct {
	Redis  redis.UniversalClient
	Stream string
	Group  string
	Name   string
	// FromStart makes a new group start at the oldest retained event instead of new ones.
	FromStart bool
	// MinIdle is how long another consumer's unacknowledged event waits before this one
	// takes it over [30s].
	MinIdle time.Duration
	// Block is how long one read waits for new events [2s]; Batch how many it takes [100].
	Block time.Duration
	Batch int64
}

// Ensure creates the group if it does not exist (and the stream with it).
func (c *Consumer) Ensure(ctx context.Context) error {
	start := "$"
	if c.FromStart {
		start = "0"
	}
	err := c.Redis.XGroupCreateMkStream(ctx, c.Stream, c.Group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("events: create group %s: %w", c.Group, err)
	}
	return nil
}

// Run delivers events to handle until ctx ends: first this consumer's own unacknowledged
// events (after a restart), then, in a loop, events other consumers left unacknowledged
// for MinIdle, and new events. An event is acknowledged after handle returns nil; when
// handle returns an error Run returns it, leaving the event unacknowledged (it will be
// delivered again).
func (c *Consumer) Run(ctx context.Context, handle func(context.Context, Event) error) error {
	if c.MinIdle <= 0 {
		c.MinIdle = 30 * time.Second
	}
	if c.Block <= 0 {
		c.Block = 2 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if err := c.Ensure(ctx); err != nil {
		return err
	}
	deliver := func(msgs []redis.XMessage) error {
		counts, err := c.deliveries(ctx, msgs)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			ev := toEvent(m)
			ev.Deliveries = counts[m.ID]
			if err := handle(ctx, ev); err != nil {
				return fmt.Errorf("events: handle %s (%s): %w", ev.ID, m.ID, err)
			}
			// Acknowledge even when ctx ended during handle: the event was handled.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := c.Redis.XAck(actx, c.Stream, c.Group, m.ID).Err()
			cancel()
			if err != nil {
				return fmt.Errorf("events: ack %s: %w", m.ID, err)
			}
		}
		return nil
	}
	// Our own pending entries first: what we took before a crash.
	for {
		res, err := c.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{Group: c.Group, Consumer: c.Name,
			Streams: []string{c.Stream, "0"}, Count: c.Batch}).Result()
		if err != nil {
			return fmt.Errorf("events: read pending: %w", err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			break
		}
		if err := deliver(res[0].Messages); err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		// Others' entries idle for MinIdle: their consumer is gone or stuck.
		claimed, _, err := c.Redis.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: c.Stream, Group: c.Group,
			Consumer: c.Name, MinIdle: c.MinIdle, Start: "0-0", Count: c.Batch}).Result()
		if err != nil {
			return fmt.Errorf("events: claim: %w", err)
		}
		if err := deliver(claimed); err != nil {
			return err
		}
		res, err := c.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{Group: c.Group, Consumer: c.Name,
			Streams: []string{c.Stream, ">"}, Count: c.Batch, Block: c.Block}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("events: read: %w", err)
		}
		for _, s := range res {
			if err := deliver(s.Messages); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliveries returns how many times each entry has been delivered (XPENDING).
func (c *Consumer) deliveries(ctx context.Context, msgs []redis.XMessage) (map[string]int64, error) {
	out := make(map[string]int64, len(msgs))
	if len(msgs) == 0 {
		return out, nil
	}
	pend, err := c.Redis.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: c.Stream, Group: c.Group,
		Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)) * 2}).Result()
	if err != nil {
		return nil, fmt.Errorf("events: pending: %w", err)
	}
	for _, p := range pend {
		out[p.ID] = p.RetryCount
	}
	return out, nil
}

func toEvent(m redis.XMessage) Event {
	s := func(k string) string { v, _ := m.Values[k].(string); return v }
	return Event{StreamID: m.ID, ID: s("id"), Type: s("topic"), AggregateID: s("aggregate_id"), Payload: s("payload")}
}
