package resilience

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisPoolStater is what the Redis pool collector reads; redis.UniversalClient has it.
type RedisPoolStater interface {
	PoolStats() *redis.PoolStats
}

// RedisPoolCollector exports go-redis pool statistics at scrape time:
// commerce_redis_pool_{hits,misses,timeouts,waits,stale_conns}_total (counters),
// commerce_redis_pool_conns and commerce_redis_pool_idle_conns (gauges),
// commerce_redis_pool_wait_seconds_total. A rising timeouts counter means callers waited
// for a connection longer than the pool timeout: the pool is too small or Redis is slow.
type RedisPoolCollector struct {
	c                                             RedisPoolStater
	hits, misses, timeouts, waits, stale, waitSec *prometheus.Desc
	conns, idle                                   *prometheus.Desc
}

// NewRedisPoolCollector returns a collector of c's pool; register it once per client.
func NewRedisPoolCollector(c RedisPoolStater) *RedisPoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("commerce_redis_pool_"+name, help, nil, nil)
	}
	return &RedisPoolCollector{c: c,
		hits:     d("hits_total", "Connections found idle in the pool."),
		misses:   d("misses_total", "Connections that had to be dialled."),
		timeouts: d("timeouts_total", "Waits for a connection that hit the pool timeout."),
		waits:    d("waits_total", "Requests that waited for a free connection."),
		stale:    d("stale_conns_total", "Stale connections removed from the pool."),
		waitSec:  d("wait_seconds_total", "Time spent waiting for a free connection."),
		conns:    d("conns", "Connections in the pool."),
		idle:     d("idle_conns", "Idle connections in the pool."),
	}
}

// Describe implements prometheus.Collector.
func (p *RedisPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.hits, p.misses, p.timeouts, p.waits, p.stale, p.waitSec, p.conns, p.idle} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *RedisPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.c.PoolStats()
	if s == nil {
		return
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(p.hits, float64(s.Hits))
	counter(p.misses, float64(s.Misses))
	counter(p.timeouts, float64(s.Timeouts))
	counter(p.waits, float64(s.WaitCount))
	counter(p.stale, float64(s.StaleConns))
	counter(p.waitSec, float64(s.WaitDurationNs)/1e9)
	ch <- prometheus.MustNewConstMetric(p.conns, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(p.idle, prometheus.GaugeValue, float64(s.IdleConns))
}
