// Package cachestats counts hits and misses per cache so that /metrics and
// GET /admin/cache/stats report the same figures from one source.
package cachestats

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Tier names of docs/architecture.md: L1 operational, L2 application, L3 session.
const (
	TierL1 = "L1"
	TierL2 = "L2"
	TierL3 = "L3"
	TierL0 = "near" // optional in-process near-cache
)

// Registry holds one Counter per (tier, cache) pair.
type Registry struct {
	mu       sync.Mutex
	counters map[[2]string]*Counter
	vec      *prometheus.CounterVec
}

// New returns a registry whose counters are also exported on reg as
// commerce_cache_requests_total{tier,cache,result}.
func New(reg prometheus.Registerer) *Registry {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commerce_cache_requests_total",
		Help: "Cache lookups by tier, cache and result (hit or miss).",
	}, []string{"tier", "cache", "result"})
	if reg != nil {
		reg.MustRegister(vec)
	}
	return &Registry{counters: map[[2]string]*Counter{}, vec: vec}
}

// Counter returns the counter of one cache, creating it on first use.
func (r *Registry) Counter(tier, cache string) *Counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]string{tier, cache}
	if c, ok := r.counters[k]; ok {
		return c
	}
	c := &Counter{tier: tier, cache: cache,
		hitC: r.vec.WithLabelValues(tier, cache, "hit"), missC: r.vec.WithLabelValues(tier, cache, "miss")}
	r.counters[k] = c
	return c
}

// Counter counts the lookups of one cache. Safe for concurrent use.
type Counter struct {
	tier, cache string
	hits        atomic.Int64
	misses      atomic.Int64
	hitC, missC prometheus.Counter
}

// Hit records a lookup answered by the cache.
func (c *Counter) Hit() { c.hits.Add(1); c.hitC.Inc() }

// Miss records a lookup that had to go to the source.
func (c *Counter) Miss() { c.misses.Add(1); c.missC.Inc() }

// Stat is one cache's figures.
type Stat struct {
	Tier, Cache  string
	Hits, Misses int64
	HitRate      float64 // 0 when there was no lookup
}

// Snapshot returns every cache's figures, sorted by tier then cache.
func (r *Registry) Snapshot() []Stat {
	r.mu.Lock()
	out := make([]Stat, 0, len(r.counters))
	for _, c := range r.counters {
		h, m := c.hits.Load(), c.misses.Load()
		s := Stat{Tier: c.tier, Cache: c.cache, Hits: h, Misses: m}
		if h+m > 0 {
			s.HitRate = float64(h) / float64(h+m)
		}
		out = append(out, s)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tier != out[j].Tier {
			return out[i].Tier < out[j].Tier
		}
		return out[i].Cache < out[j].Cache
	})
	return out
}
