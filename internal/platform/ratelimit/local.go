package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Local is an in-process GCRA limiter: no network call, so it decides in well under a
// microsecond and keeps deciding while Redis is slow or down. It holds at most MaxKeys
// keys; a key at full allowance is forgotten first (forgetting it changes nothing), and
// when every slot holds a key in use, a new key is admitted and counted as Overflow.
// Safe for concurrent use.
type Local struct {
	interval int64 // ns between requests at the sustained rate
	span     int64 // ns of burst: interval * burst
	maxKeys  int
	seed     maphash.Seed
	shards   [localShards]localShard
	now      func() time.Time

	// Overflow counts requests admitted without a slot (the table was full).
	Overflow atomic.Int64
}

const localShards = 64

type localShard struct {
	mu  sync.Mutex
	tat map[string]int64 // theoretical arrival time, unix ns
}

// NewLocal returns a limiter allowing perSecond sustained and burst at once per key
// (burst at least 1), remembering at most maxKeys keys (default 1<<20). A perSecond of 0
// or less returns nil, and a nil *Local admits everything.
func NewLocal(perSecond float64, burst, maxKeys int) *Local {
	if perSecond <= 0 || math.IsNaN(perSecond) {
		return nil
	}
	burst = max(1, burst)
	if maxKeys <= 0 {
		maxKeys = 1 << 20
	}
	interval := max(1, int64(math.Round(1e9/perSecond)))
	l := &Local{interval: interval, span: interval * int64(burst), maxKeys: maxKeys,
		seed: maphash.MakeSeed(), now: time.Now}
	for i := range l.shards {
		l.shards[i].tat = map[string]int64{}
	}
	return l
}

func (l *Local) shard(key string) *localShard {
	return &l.shards[maphash.String(l.seed, key)%localShards]
}

// Allow takes one request of key; when refused it says how long until one is admitted.
func (l *Local) Allow(key string) (bool, time.Duration) { return l.take(key, true) }

// Peek says whether one request of key would be admitted now, without taking it.
func (l *Local) Peek(key string) (bool, time.Duration) { return l.take(key, false) }

func (l *Local) take(key string, consume bool) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now().UnixNano()
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	if !ok || tat < now {
		tat = now
	}
	next := tat + l.interval
	if next-now > l.span {
		return false, time.Duration(next - now - l.span)
	}
	if !consume {
		return true, 0
	}
	if !ok && len(s.tat) >= l.maxKeys/localShards+1 {
		for k, t := range s.tat {
			if t <= now {
				delete(s.tat, k)
			}
		}
		if len(s.tat) >= l.maxKeys/localShards+1 {
			l.Overflow.Add(1)
			return true, 0
		}
	}
	s.tat[key] = next
	return true, 0
}

// Len is the number of keys remembered.
func (l *Local) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += len(l.shards[i].tat)
		l.shards[i].mu.Unlock()
	}
	return n
}
