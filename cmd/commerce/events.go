package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"commerce/internal/app"
	"commerce/internal/events"
	"commerce/internal/platform/rkey"
)

// eventsCmd runs `commerce events tail`: it reads the event stream as a member of a
// consumer group, prints each event as one JSON line on stdout and acknowledges it once
// printed, as a fulfilment system would (docs/events.md).
func eventsCmd(ctx context.Context, cfg app.Config, args []string) error {
	if len(args) == 0 || args[0] != "tail" {
		return errors.New("usage: commerce events tail [--group G] [--consumer NAME] [--from-start]")
	}
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
	group := fs.String("group", "tail", "consumer group (each group gets every event once; its members share them)")
	name := fs.String("consumer", fmt.Sprintf("%s-%d", host, os.Getpid()),
		"consumer name in the group; reuse it after a crash to get what it had not acknowledged")
	fromStart := fs.Bool("from-start", false, "a new group starts at the oldest retained event (default: new events only)")
	minIdle := fs.Duration("claim-after", 30*time.Second, "take over events another consumer left unacknowledged this long")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	rdb, err := app.OpenRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &events.Consumer{Redis: rdb, Stream: events.Stream(rkey.Space(cfg.RedisPrefix)), Group: *group, Name: *name,
		FromStart: *fromStart, MinIdle: *minIdle}
	fmt.Fprintf(os.Stderr, "tailing %s as %s in group %s (Ctrl-C to stop)\n", c.Stream, c.Name, c.Group)
	enc := json.NewEncoder(os.Stdout)
	return c.Run(ctx, func(_ context.Context, e events.Event) error {
		return enc.Encode(struct {
			StreamID    string          `json:"stream_id"`
			ID          string          `json:"id"`
			Type        string          `json:"type"`
			AggregateID string          `json:"aggregate_id"`
			Deliveries  int64           `json:"deliveries"`
			Payload     json.RawMessage `json:"payload"`
		}{e.StreamID, e.ID, e.Type, e.AggregateID, e.Deliveries, json.RawMessage(e.Payload)})
	})
}
