package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Result is what one run measured.
type Result struct {
	Name        string `json:"name"`
	Concurrency int    `json:"concurrency"`
	// Requests counts the operations that succeeded: the samples of every latency and of
	// RPS. Errors counts those that failed, which are in neither.
	Requests   int64            `json:"requests"`
	Errors     int64            `json:"errors"`
	ElapsedSec float64          `json:"elapsed_s"`
	RPS        float64          `json:"rps"`
	P50ms      float64          `json:"p50_ms"`
	P99ms      float64          `json:"p99_ms"`
	P999ms     float64          `json:"p999_ms"`
	MaxMs      float64          `json:"max_ms"`
	MeanMs     float64          `json:"mean_ms"`
	Statuses   map[string]int64 `json:"statuses,omitempty"`
	// ErrorSamples holds a few distinct error texts, for the report.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Note says how the figure was obtained when that is not the closed-loop generator
	// (for example redis-benchmark) or what the run covered.
	Note string `json:"note,omitempty"`
	// Load1 is the machine's 1-minute load average when the run ended: above the CPU
	// count, other processes were competing for the CPUs during the measurement.
	Load1 string `json:"load1,omitempty"`
	// RedisPerOp is the service's Redis round trips per operation (0: not counted).
	RedisPerOp float64 `json:"redis_round_trips_per_op,omitempty"`
}

// countedRedis records the round trips per operation and says them in the note.
func (r *Result) countedRedis(perOp float64) {
	r.RedisPerOp = perOp
	if r.Note != "" {
		r.Note += "; "
	}
	r.Note += fmt.Sprintf("%.1f Redis round trips of the service per operation", perOp)
}

// summarise fills the counts and latency figures from the samples of one run.
func (r *Result) summarise(samples []time.Duration, elapsed time.Duration) {
	r.Requests = int64(len(samples))
	r.ElapsedSec = elapsed.Seconds()
	if elapsed > 0 {
		r.RPS = float64(len(samples)) / elapsed.Seconds()
	}
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	r.P50ms = ms(Percentile(samples, 50))
	r.P99ms = ms(Percentile(samples, 99))
	r.P999ms = ms(Percentile(samples, 99.9))
	r.MaxMs = ms(samples[len(samples)-1])
	r.MeanMs = ms(sum / time.Duration(len(samples)))
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted samples by the
// nearest-rank method: the smallest sample that at least p % of the samples do not exceed.
// It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// Line is the one-line summary printed for a result.
func (r Result) Line() string {
	s := fmt.Sprintf("%-44s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  p99.9 %s ms  n=%d errors=%d",
		r.Name, r.RPS, r.P50ms, r.P99ms, r.p999(), r.Requests, r.Errors)
	if r.Load1 != "" {
		s += " load=" + r.Load1
	}
	if len(r.ErrorSamples) > 0 {
		s += fmt.Sprintf(" (e.g. %s)", r.ErrorSamples[0])
	}
	return s
}

// p999 prints p99.9, or n/a when the source did not give it (redis-benchmark's CSV).
func (r Result) p999() string {
	if r.P999ms == 0 && r.P99ms > 0 {
		return "    n/a"
	}
	return fmt.Sprintf("%7.2f", r.P999ms)
}
