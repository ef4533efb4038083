package resilience

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Probe checks one dependency (PostgreSQL: pool.Ping; Redis: rdb.Ping(ctx).Err()).
type Probe func(ctx context.Context) error

// DependencyCollector pings each dependency at scrape time and exports
// commerce_dependency_up{dependency} (1 answered, 0 not) and
// commerce_dependency_ping_seconds{dependency}: the figures /readyz reports, for alerts.
type DependencyCollector struct {
	probes  map[string]Probe
	timeout time.Duration
	up      *prometheus.Desc
	latency *prometheus.Desc
}

// NewDependencyCollector returns a collector of the named probes, each bounded by timeout
// (1 s when <= 0). Register it once.
func NewDependencyCollector(probes map[string]Probe, timeout time.Duration) *DependencyCollector {
	if timeout <= 0 {
		timeout = time.Second
	}
	return &DependencyCollector{probes: probes, timeout: timeout,
		up: prometheus.NewDesc("commerce_dependency_up",
			"Whether the dependency answered a ping at scrape time (1) or not (0).", []string{"dependency"}, nil),
		latency: prometheus.NewDesc("commerce_dependency_ping_seconds",
			"Time the scrape-time ping took (the timeout when it failed).", []string{"dependency"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (d *DependencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- d.up; ch <- d.latency }

// Collect implements prometheus.Collector; the probes run concurrently.
func (d *DependencyCollector) Collect(ch chan<- prometheus.Metric) {
	names := make([]string, 0, len(d.probes))
	for n := range d.probes {
		names = append(names, n)
	}
	sort.Strings(names)
	type result struct {
		up   float64
		took time.Duration
	}
	results := make([]result, len(names))
	done := make(chan struct{})
	for i, n := range names {
		go func() {
			defer func() { done <- struct{}{} }()
			ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
			defer cancel()
			start := time.Now()
			err := d.probes[n](ctx)
			results[i] = result{took: time.Since(start)}
			if err == nil {
				results[i].up = 1
			}
		}()
	}
	for range names {
		<-done
	}
	for i, n := range names {
		ch <- prometheus.MustNewConstMetric(d.up, prometheus.GaugeValue, results[i].up, n)
		ch <- prometheus.MustNewConstMetric(d.latency, prometheus.GaugeValue, results[i].took.Seconds(), n)
	}
}
