// Package redischeck inspects the Redis instance that holds L1 (inventory counters,
// holds, checkout hashes, locks, idempotency records) and L3 (carts, sessions): its
// eviction policy and its persistence. An allkeys-* policy may evict a hold or a counter
// under memory pressure, which the inventory protocol cannot tell from a sale; no
// persistence means a restart empties every tier at once.
package redischeck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Node is what one master says about itself.
type Node struct {
	Addr   string `json:"addr"`
	Policy string `json:"maxmemory_policy"`
	// AOF is appendonly; RDBSave is the save schedule ("" means no RDB snapshots).
	AOF     bool   `json:"appendonly"`
	RDBSave string `json:"save"`
	// ConfigReadable is false when CONFIG GET is refused (some managed services rename
	// it): the policy then comes from INFO and persistence is unknown.
	ConfigReadable bool `json:"config_readable"`
}

// Report is the verdict on every master of the instance (one, or each Cluster master).
type Report struct {
	Nodes []Node `json:"nodes"`
	// Policy is the masters' maxmemory-policy ("mixed" when they differ).
	Policy string `json:"maxmemory_policy"`
	// Persistence is "aof", "rdb", "aof+rdb", "none" or "unknown" (the weakest master).
	Persistence string `json:"persistence"`
	// Evicting is true when a master's policy may evict keys without a TTL (allkeys-*).
	Evicting bool `json:"evicting"`
}

// Inspect reads the policy and persistence of every master of rdb.
func Inspect(ctx context.Context, rdb redis.UniversalClient) (Report, error) {
	var mu sync.Mutex
	var nodes []Node
	err := forEachMaster(ctx, rdb, func(ctx context.Context, cl *redis.Client) error {
		n, err := inspectNode(ctx, cl)
		if err != nil {
			return err
		}
		mu.Lock()
		nodes = append(nodes, n)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.Addr, b.Addr) })
	return Summarize(nodes), nil
}

// Summarize folds the nodes into one report.
func Summarize(nodes []Node) Report {
	r := Report{Nodes: nodes}
	rank := map[string]int{"none": 0, "unknown": 1, "rdb": 2, "aof": 3, "aof+rdb": 4}
	for i, n := range nodes {
		if i == 0 {
			r.Policy = n.Policy
		} else if n.Policy != r.Policy {
			r.Policy = "mixed"
		}
		if EvictingPolicy(n.Policy) {
			r.Evicting = true
		}
		p := n.persistence()
		if i == 0 || rank[p] < rank[r.Persistence] {
			r.Persistence = p
		}
	}
	return r
}

func (n Node) persistence() string {
	switch {
	case !n.ConfigReadable:
		return "unknown"
	case n.AOF && n.RDBSave != "":
		return "aof+rdb"
	case n.AOF:
		return "aof"
	case n.RDBSave != "":
		return "rdb"
	}
	return "none"
}

// EvictingPolicy reports whether policy may evict keys that have no TTL (allkeys-lru,
// allkeys-lfu, allkeys-random). volatile-* only evicts keys with a TTL, and noeviction
// refuses writes instead.
func EvictingPolicy(policy string) bool { return strings.HasPrefix(policy, "allkeys-") }

func inspectNode(ctx context.Context, cl *redis.Client) (Node, error) {
	n := Node{Addr: cl.Options().Addr}
	cfg, err := cl.ConfigGet(ctx, "*").Result()
	if err == nil {
		n.ConfigReadable = true
		n.Policy = cfg["maxmemory-policy"]
		n.AOF = cfg["appendonly"] == "yes"
		n.RDBSave = strings.TrimSpace(cfg["save"])
		return n, nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return n, err
	}
	// CONFIG refused or renamed: INFO still names the policy.
	txt, ierr := cl.Info(ctx, "memory").Result()
	if ierr != nil {
		return n, fmt.Errorf("redischeck: CONFIG GET: %v; INFO: %w", err, ierr)
	}
	for _, line := range strings.Split(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
			n.Policy = v
		}
	}
	return n, nil
}

// Problems returns what is wrong with the state instance: refusals (an evicting policy,
// fatal in production) and warnings (no or unknown persistence), each a sentence an
// operator can act on.
func (r Report) Problems() (refusals, warnings []string) {
	if r.Evicting {
		refusals = append(refusals, fmt.Sprintf("maxmemory-policy %s on the Redis that holds inventory counters, holds, "+
			"checkouts and carts may evict them under memory pressure (an evicted hold looks like a returned unit); "+
			"use noeviction or volatile-* there, and put the caches on their own instance with REDIS_CACHE_URL "+
			"if they should run allkeys-lru", r.Policy))
	}
	switch r.Persistence {
	case "none":
		warnings = append(warnings, "the Redis that holds inventory, checkouts and carts has no persistence "+
			"(appendonly no and no RDB save): a restart empties it; inventory counters and checkouts then self-heal "+
			"from PostgreSQL (reservations answer 503 until reloaded, holds of unpaid checkouts are re-taken or "+
			"released), customer carts come back from their PostgreSQL snapshots, but anonymous carts and sessions "+
			"are lost; set appendonly yes (appendfsync everysec) to keep them")
	case "unknown":
		warnings = append(warnings, "CONFIG GET is refused by the Redis that holds inventory, checkouts and carts: "+
			"its persistence could not be checked (without it, a restart loses anonymous carts and sessions)")
	}
	return refusals, warnings
}

// forEachMaster calls fn for every master of a Cluster, or once for a single Redis (a
// Sentinel failover client is a single Redis: the current master).
func forEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("redischeck: unsupported Redis client %T", rdb)
}
