package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/testenv"
)

func publish(t *testing.T, rdb redis.UniversalClient, stream string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{"id", fmt.Sprintf("ev-%d", i),
			"topic", "order.placed", "aggregate_id", fmt.Sprintf("order-%d", i), "payload", `{"n":` + fmt.Sprint(i) + `}`}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// collect runs a consumer until it has handled n events or the timeout passes.
func collect(t *testing.T, c *Consumer, n int, timeout time.Duration) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []Event
	err := c.Run(ctx, func(_ context.Context, e Event) error {
		got = append(got, e)
		if len(got) == n {
			cancel()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	return got
}

// TestConsumerCrashingBeforeAckGetsTheEventAgain: a consumer process reads events 1-3 in
// one batch, handles 1 (acknowledged) and dies in the middle of handling 2, before its
// acknowledgement: 2 and 3 stay pending. Another consumer of the group takes them over
// once they have been idle for MinIdle, as second deliveries; 1 is never delivered again.
func TestConsumerCrashingBeforeAckGetsTheEventAgain(t *testing.T) {
	rdb, space := testenv.Redis(t)
	stream := Stream(space)
	newConsumer := func(name string) *Consumer {
		return &Consumer{Redis: rdb, Stream: stream, Group: "fulfilment", Name: name, FromStart: true,
			MinIdle: 200 * time.Millisecond, Block: 100 * time.Millisecond}
	}
	if testenv.CrashChild() {
		c := newConsumer("worker-1")
		_ = c.Run(context.Background(), func(_ context.Context, e Event) error {
			if e.ID == "ev-2" {
				testenv.CrashAt("before_ack")
			}
			return nil
		})
		return
	}
	publish(t, rdb, stream, 3)
	testenv.RunCrash(t, "before_ack", nil)

	pend, err := rdb.XPending(context.Background(), stream, "fulfilment").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pend.Count != 2 {
		t.Fatalf("after the crash: %d pending, want 2 (events 2 and 3)", pend.Count)
	}

	// Another consumer takes it over once it has been idle for MinIdle.
	got := collect(t, newConsumer("worker-2"), 2, 10*time.Second)
	if len(got) != 2 || got[0].ID != "ev-2" || got[0].Deliveries != 2 || got[1].ID != "ev-3" || got[1].Deliveries != 2 {
		t.Fatalf("worker-2 got %+v; want ev-2 then ev-3, both second deliveries", got)
	}
	if p, _ := rdb.XPending(context.Background(), stream, "fulfilment").Result(); p.Count != 0 {
		t.Fatalf("%d events still pending", p.Count)
	}
}

// TestConsumerRestartGetsItsOwnPendingFirst: the same consumer name, restarted, is given
// what it took and did not acknowledge before anything else.
func TestConsumerRestartGetsItsOwnPendingFirst(t *testing.T) {
	rdb, space := testenv.Redis(t)
	stream := Stream(space)
	c := &Consumer{Redis: rdb, Stream: stream, Group: "g", Name: "w", FromStart: true, MinIdle: time.Hour, Block: 50 * time.Millisecond}
	publish(t, rdb, stream, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Run(ctx, func(context.Context, Event) error { return fmt.Errorf("handler down") }); err == nil {
		t.Fatal("a failing handler did not stop the consumer")
	}
	got := collect(t, c, 2, 5*time.Second)
	if len(got) != 2 || got[0].ID != "ev-1" || got[0].Deliveries != 2 || got[1].ID != "ev-2" || got[1].Deliveries != 2 {
		t.Fatalf("restart got %+v", got)
	}
}
