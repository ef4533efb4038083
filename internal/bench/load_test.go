package bench

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", ms(7), 99.9, 7 * time.Millisecond},
		{"p50of100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99of100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p999of100IsMax", ms(hundred...), 99.9, 100 * time.Millisecond},
		{"p50ofTwo", ms(1, 2), 50, time.Millisecond},
		{"p100", ms(1, 2, 3), 100, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.samples, tt.p); got != tt.want {
				t.Fatalf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

// TestDriveMaxOps: a count-bounded run starts exactly MaxOps operations, each index once,
// and records each of them.
func TestDriveMaxOps(t *testing.T) {
	const n = 1000
	var calls atomic.Int64
	var mu sync.Mutex
	seen := map[int64]int{}
	res, err := Drive(context.Background(), Load{Name: "count", Concurrency: 8, MaxOps: n},
		func(ctx context.Context, w int, i int64) (int, error) {
			if w < 0 || w >= 8 {
				t.Errorf("worker %d out of range", w)
			}
			calls.Add(1)
			mu.Lock()
			seen[i]++
			mu.Unlock()
			return 200, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != n || res.Requests != n || res.Errors != 0 || res.Statuses["200"] != n {
		t.Fatalf("calls %d, result %+v", calls.Load(), res)
	}
	for i := int64(0); i < n; i++ {
		if seen[i] != 1 {
			t.Fatalf("index %d run %d times", i, seen[i])
		}
	}
	if res.RPS <= 0 || res.P50ms < 0 || res.P99ms < res.P50ms || res.P999ms < res.P99ms || res.MaxMs < res.P999ms {
		t.Fatalf("inconsistent figures: %+v", res)
	}
}

// TestDriveDuration: a time-bounded run stops by itself, runs its warm-up unrecorded (with
// negative indexes) and records only measured operations.
func TestDriveDuration(t *testing.T) {
	var warm, measured atomic.Int64
	res, err := Drive(context.Background(), Load{Name: "timed", Concurrency: 4, Warmup: 20 * time.Millisecond,
		Duration: 50 * time.Millisecond}, func(ctx context.Context, _ int, i int64) (int, error) {
		if i < 0 {
			warm.Add(1)
		} else {
			measured.Add(1)
		}
		time.Sleep(time.Millisecond)
		return 204, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if warm.Load() == 0 {
		t.Fatal("no warm-up operation ran")
	}
	if res.Requests != measured.Load() || res.Requests == 0 {
		t.Fatalf("recorded %d, measured %d", res.Requests, measured.Load())
	}
	if res.ElapsedSec < 0.05 {
		t.Fatalf("elapsed %.3f s is shorter than the duration", res.ElapsedSec)
	}
}

func TestDriveErrorsAndStatuses(t *testing.T) {
	res, err := Drive(context.Background(), Load{Name: "mixed", Concurrency: 3, MaxOps: 100},
		func(ctx context.Context, _ int, i int64) (int, error) {
			switch {
			case i%10 == 0:
				return 500, errors.New("boom")
			case i%2 == 1:
				return 409, nil
			}
			return 201, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 10 || res.Statuses["500"] != 10 || res.Statuses["409"] != 50 || res.Statuses["201"] != 40 {
		t.Fatalf("counts: errors %d statuses %v", res.Errors, res.Statuses)
	}
	if len(res.ErrorSamples) != 1 || res.ErrorSamples[0] != "boom" {
		t.Fatalf("error samples %v (distinct texts only)", res.ErrorSamples)
	}
	// Failed operations are errors, not samples.
	if res.Requests != 90 {
		t.Fatalf("requests %d, want the 90 that succeeded", res.Requests)
	}
	if !strings.Contains(res.Line(), "errors=10") {
		t.Fatalf("line %q", res.Line())
	}
}

func TestDriveRejectsUnboundedLoads(t *testing.T) {
	op := func(context.Context, int, int64) (int, error) { return 0, nil }
	if _, err := Drive(context.Background(), Load{Concurrency: 1}, op); err == nil {
		t.Fatal("a load without duration and count was accepted")
	}
	if _, err := Drive(context.Background(), Load{MaxOps: 1}, op); err == nil {
		t.Fatal("a load without clients was accepted")
	}
}

// TestDriveCancelled: cancelling the context ends a run that would otherwise go on.
func TestDriveCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	_, err := Drive(ctx, Load{Name: "cancel", Concurrency: 2, Duration: time.Hour},
		func(ctx context.Context, _ int, _ int64) (int, error) {
			if n.Add(1) == 100 {
				cancel()
			}
			return 200, ctx.Err()
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestDrivePaced: a paced run does not start operations faster than its rate.
func TestDrivePaced(t *testing.T) {
	res, err := Drive(context.Background(), Load{Name: "paced", Concurrency: 4, Rate: 200, MaxOps: 20},
		func(ctx context.Context, _ int, _ int64) (int, error) { return 200, nil })
	if err != nil {
		t.Fatal(err)
	}
	// The 20th operation is due 95 ms after the start.
	if res.Requests != 20 || res.ElapsedSec < 0.095 {
		t.Fatalf("%d operations in %.3f s at 200/s", res.Requests, res.ElapsedSec)
	}
}
