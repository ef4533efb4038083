package cacheadmin

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

const (
	slowlogEntries = 128
	maxArgs        = 32
	maxArgLen      = 128
)

type slowlogEntry struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	DurationUS int64     `json:"duration_us"`
	Args       []string  `json:"args"`
	ClientAddr string    `json:"client_addr,omitempty"`
	ClientName string    `json:"client_name,omitempty"`
	Node       string    `json:"node,omitempty"`
}

type slowlogResponse struct {
	Entries []slowlogEntry `json:"entries"`
}

func (h *Handler) slowlog(c echo.Context) error {
	_, cluster := h.rdb.(*redis.ClusterClient)
	var mu sync.Mutex
	out := slowlogResponse{Entries: []slowlogEntry{}}
	err := forEachMaster(c.Request().Context(), h.rdb, func(ctx context.Context, cl *redis.Client) error {
		logs, err := cl.SlowLogGet(ctx, slowlogEntries).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logs {
			e := slowlogEntry{ID: l.ID, Time: l.Time.UTC(), DurationUS: l.Duration.Microseconds(),
				Args: truncateArgs(l.Args), ClientAddr: l.ClientAddr, ClientName: l.ClientName}
			if cluster {
				e.Node = cl.Options().Addr
			}
			out.Entries = append(out.Entries, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("slowlog: %w", err)
	}
	slices.SortStableFunc(out.Entries, func(a, b slowlogEntry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	if len(out.Entries) > slowlogEntries {
		out.Entries = out.Entries[:slowlogEntries]
	}
	return c.JSON(http.StatusOK, out)
}

func truncateArgs(args []string) []string {
	out := make([]string, 0, min(len(args), maxArgs))
	for i, a := range args {
		if i == maxArgs {
			out = append(out, fmt.Sprintf("... (%d more arguments)", len(args)-maxArgs))
			break
		}
		if len(a) > maxArgLen {
			a = a[:maxArgLen] + fmt.Sprintf("... (%d more bytes)", len(a)-maxArgLen)
		}
		out = append(out, a)
	}
	return out
}
