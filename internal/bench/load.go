package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one operation of a closed-loop worker: worker is the worker's index (0..Concurrency-1),
// i the operation's global sequence number (0, 1, 2, … across all workers; negative during
// the warm-up). It returns the
// HTTP status it saw (0 when there is none) and a non-nil error when the operation failed
// in a way the scenario does not expect.
type Op func(ctx context.Context, worker int, i int64) (status int, err error)

// Load describes one closed-loop run: Concurrency workers each issue one operation, wait for
// it, then issue the next, until Duration has passed after Warmup or MaxOps operations were
// started, whichever comes first. At least one of Duration and MaxOps must be set, so every
// run stops by itself. Operations in flight when Duration ends are allowed to finish (the
// elapsed time includes them), so no connection is cut.
type Load struct {
	Name        string
	Concurrency int
	Warmup      time.Duration // operations during the warm-up are run but not recorded
	Duration    time.Duration // measured duration (0 = until MaxOps)
	MaxOps      int64         // operations to start in total, warm-up excluded (0 = until Duration)
	// Rate, when positive, paces the run: operation i is due at start + i/Rate, a worker
	// waits until then, and its latency is measured from the due time (so a backlog shows
	// as latency instead of being hidden: no coordinated omission).
	Rate float64
}

// maxErrorSamples bounds the distinct error texts a Result keeps.
const maxErrorSamples = 5

// Drive executes l, calling op from Concurrency goroutines, and summarises the measured
// operations. It returns early (with what was measured) when ctx is cancelled.
func Drive(ctx context.Context, l Load, op Op) (Result, error) {
	if l.Concurrency < 1 {
		return Result{}, errors.New("bench: concurrency must be at least 1")
	}
	if l.Duration <= 0 && l.MaxOps <= 0 {
		return Result{}, errors.New("bench: a load needs a duration or an operation count")
	}
	if l.Warmup > 0 {
		// Like the measured run, the warm-up stops issuing at its end and lets operations
		// in flight finish: cancelling them would close connections and log errors on the
		// server side.
		end := time.Now().Add(l.Warmup)
		var wg sync.WaitGroup
		var seq atomic.Int64
		for w := 0; w < l.Concurrency; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for ctx.Err() == nil && time.Now().Before(end) {
					_, _ = op(ctx, w, -1-seq.Add(1))
				}
			}(w)
		}
		wg.Wait()
	}

	type workerStats struct {
		samples  []time.Duration
		statuses map[int]int64
		errors   int64
		errTexts []string
	}
	per := make([]workerStats, l.Concurrency)
	var seq atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(l.Duration)
	more := func() bool { return ctx.Err() == nil && (l.Duration <= 0 || time.Now().Before(deadline)) }
	for w := 0; w < l.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			st := &per[w]
			st.statuses = map[int]int64{}
			capHint := 1024
			if l.MaxOps > 0 && l.MaxOps/int64(l.Concurrency) < int64(capHint) {
				capHint = int(l.MaxOps/int64(l.Concurrency)) + 1
			}
			st.samples = make([]time.Duration, 0, capHint)
			for more() {
				i := seq.Add(1) - 1
				if l.MaxOps > 0 && i >= l.MaxOps {
					return
				}
				t := time.Now()
				if l.Rate > 0 {
					due := start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
					t = due
					if l.Duration > 0 && !due.Before(deadline) {
						return
					}
				}
				status, err := op(ctx, w, i)
				d := time.Since(t)
				if err != nil && ctx.Err() != nil {
					return // the whole run was cancelled: neither a sample nor an error
				}
				st.statuses[status]++
				if err != nil {
					// An operation that failed is an error, not a sample: its latency
					// (often a fast refusal) would flatter the figures.
					st.errors++
					if len(st.errTexts) < maxErrorSamples {
						st.errTexts = append(st.errTexts, err.Error())
					}
					continue
				}
				st.samples = append(st.samples, d)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	res := Result{Name: l.Name, Concurrency: l.Concurrency, Statuses: map[string]int64{}}
	seen := map[string]bool{}
	for _, st := range per {
		all = append(all, st.samples...)
		for s, n := range st.statuses {
			res.Statuses[statusKey(s)] += n
		}
		res.Errors += st.errors
		for _, e := range st.errTexts {
			if !seen[e] && len(res.ErrorSamples) < maxErrorSamples {
				seen[e] = true
				res.ErrorSamples = append(res.ErrorSamples, e)
			}
		}
	}
	res.summarise(all, elapsed)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%s: %w", l.Name, err)
	}
	return res, nil
}

func statusKey(s int) string {
	if s == 0 {
		return "none"
	}
	return fmt.Sprint(s)
}
