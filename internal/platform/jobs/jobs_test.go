package jobs

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"commerce/internal/platform/testenv"
)

func runs(s *Scheduler, job, outcome string) int {
	return int(testutil.ToFloat64(s.runs.WithLabelValues(job, outcome)))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTwoInstancesRunEachTickOnce: two schedulers on one Redis (two replicas)
// with an every-second job: each tick runs the job once in total, not once per instance.
func TestTwoInstancesRunEachTickOnce(t *testing.T) {
	rdb, space := testenv.Redis(t)
	var mu sync.Mutex
	perTick := map[time.Time]int{}
	var total atomic.Int64
	job := func(ctx context.Context) error {
		tick, ok := Tick(ctx)
		if !ok {
			t.Error("job context carries no tick")
		}
		total.Add(1)
		mu.Lock()
		perTick[tick]++
		mu.Unlock()
		return nil
	}
	ticks := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(perTick)
	}
	a := New(rdb, space, nil, prometheus.NewRegistry())
	b := New(rdb, space, nil, prometheus.NewRegistry())
	for _, s := range []*Scheduler{a, b} {
		// Six fields: every second.
		if err := s.Add("warm-test", "* * * * * *", 5*time.Second, job); err != nil {
			t.Fatal(err)
		}
	}
	a.Start()
	b.Start()
	const want = 4
	waitFor(t, "4 ticks", func() bool { return ticks() >= want })
	ctx := context.Background()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	var list []time.Time
	for tick, n := range perTick {
		list = append(list, tick)
		if n != 1 {
			t.Errorf("tick %s ran %d times", tick.Format(time.RFC3339Nano), n)
		}
		if tick.Nanosecond() != 0 {
			t.Errorf("tick %s is not a scheduled whole second", tick.Format(time.RFC3339Nano))
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Before(list[j]) })
	if int(total.Load()) != len(perTick) {
		t.Fatalf("%d runs for %d ticks", total.Load(), len(perTick))
	}
	successes := runs(a, "warm-test", OutcomeSuccess) + runs(b, "warm-test", OutcomeSuccess)
	skipped := runs(a, "warm-test", OutcomeSkipped) + runs(b, "warm-test", OutcomeSkipped)
	if successes != len(perTick) {
		t.Fatalf("%d successful runs counted for %d ticks", successes, len(perTick))
	}
	// Both instances fired on every tick they were both running for (all but possibly
	// the first and the last): the loser counted a skip.
	if skipped < len(perTick)-2 {
		t.Fatalf("only %d skips for %d ticks: the instances did not both fire", skipped, len(perTick))
	}
	t.Logf("ticks %v: %d runs (a %d, b %d), %d skips", list, total.Load(),
		runs(a, "warm-test", OutcomeSuccess), runs(b, "warm-test", OutcomeSuccess), skipped)
}

// TestRunLockExcludesAcrossInstances: while one replica runs a job, RunNow on another
// (and on the same one) is refused; the lock is released when the run ends.
func TestRunLockExcludesAcrossInstances(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	var n atomic.Int64
	fn := func(ctx context.Context) error {
		if n.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	}
	a := New(rdb, space, nil, nil)
	b := New(rdb, space, nil, nil)
	for _, s := range []*Scheduler{a, b} {
		if err := s.Add("warm", "0 */2 * * *", time.Minute, fn); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a.RunNow(ctx, "warm") }()
	<-started
	if err := b.RunNow(ctx, "warm"); !errors.Is(err, ErrLocked) {
		t.Fatalf("RunNow on another replica during a run: %v", err)
	}
	if err := a.RunNow(ctx, "warm"); !errors.Is(err, ErrLocked) {
		t.Fatalf("RunNow on the same replica during a run: %v", err)
	}
	ttl := rdb.PTTL(ctx, a.runKey("warm")).Val()
	if ttl <= 0 || ttl > DefaultLease {
		t.Fatalf("run lease TTL %v, want at most the lease (%v), not the job timeout", ttl, DefaultLease)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, a.runKey("warm")).Val() != 0 {
		t.Fatal("run lock not released after the run")
	}
	if err := b.RunNow(ctx, "warm"); err != nil {
		t.Fatalf("RunNow after the run: %v", err)
	}
	if n.Load() != 2 || runs(b, "warm", OutcomeLocked) != 1 || runs(a, "warm", OutcomeLocked) != 1 {
		t.Fatalf("runs %d, locked a %d b %d", n.Load(), runs(a, "warm", OutcomeLocked), runs(b, "warm", OutcomeLocked))
	}
	// The lock is compare-and-delete: a run never deletes another holder's lock.
	rdb.Set(ctx, a.runKey("warm"), "someone-else", time.Minute)
	if err := a.RunNow(ctx, "warm"); !errors.Is(err, ErrLocked) {
		t.Fatalf("RunNow with a foreign lock: %v", err)
	}
	if rdb.Get(ctx, a.runKey("warm")).Val() != "someone-else" {
		t.Fatal("a foreign lock was touched")
	}
}

func TestRunOutcomes(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	s := New(rdb, space, nil, prometheus.NewRegistry())
	boom := errors.New("boom")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Add("ok", "@hourly", time.Minute, func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		return nil
	}))
	must(s.Add("fails", "@hourly", time.Minute, func(context.Context) error { return boom }))
	must(s.Add("slow", "@hourly", 20*time.Millisecond, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }))
	must(s.Add("panics", "@hourly", time.Minute, func(context.Context) error { panic("kaboom") }))

	must(s.RunNow(ctx, "ok"))
	if err := s.RunNow(ctx, "fails"); !errors.Is(err, boom) {
		t.Fatalf("fails: %v", err)
	}
	if err := s.RunNow(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow: %v", err)
	}
	if err := s.RunNow(ctx, "panics"); !errors.Is(err, ErrPanic) {
		t.Fatalf("panics: %v", err)
	}
	// The panicking run released its lock.
	if err := s.RunNow(ctx, "panics"); !errors.Is(err, ErrPanic) {
		t.Fatalf("panics again: %v", err)
	}
	if err := s.RunNow(ctx, "nope"); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("unknown job: %v", err)
	}
	for _, c := range []struct {
		job, outcome string
		n            int
	}{{"ok", OutcomeSuccess, 1}, {"fails", OutcomeError, 1}, {"slow", OutcomeTimeout, 1}, {"panics", OutcomePanic, 2}} {
		if got := runs(s, c.job, c.outcome); got != c.n {
			t.Errorf("%s %s = %d, want %d", c.job, c.outcome, got, c.n)
		}
	}
	if v := testutil.ToFloat64(s.lastOK.WithLabelValues("ok")); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success of ok = %v", v)
	}
	if v := testutil.ToFloat64(s.lastOK.WithLabelValues("fails")); v != 0 {
		t.Errorf("last success of fails = %v", v)
	}
	if n := testutil.CollectAndCount(s.duration); n != 4 {
		t.Errorf("%d duration series, want 4", n)
	}
}

func TestAddValidation(t *testing.T) {
	rdb, space := testenv.Redis(t)
	s := New(rdb, space, nil, nil)
	fn := func(context.Context) error { return nil }
	for _, c := range []struct{ name, spec string }{
		{"Bad{name}", "@hourly"}, {"", "@hourly"}, {"x", "not a spec"}, {"x", ""}, {"x", "CRON_TZ=UTC"},
		{"x", "61 * * * *"},
	} {
		if err := s.Add(c.name, c.spec, time.Minute, fn); err == nil {
			t.Errorf("Add(%q, %q) accepted", c.name, c.spec)
		}
	}
	if err := s.Add("x", "0 */6 * * *", 0, fn); err == nil {
		t.Error("zero timeout accepted")
	}
	if err := s.Add("x", "0 */6 * * *", time.Minute, fn); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("x", "@every 1m", time.Minute, fn); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := s.Add("tz", "CRON_TZ=Europe/Paris 0 3 * * *", time.Minute, fn); err != nil {
		t.Errorf("explicit time zone: %v", err)
	}
}

// TestStopCancelsAndWaits: Stop cancels a running job's context and returns once it has
// returned.
func TestStopCancelsAndWaits(t *testing.T) {
	rdb, space := testenv.Redis(t)
	s := New(rdb, space, nil, nil)
	started := make(chan struct{})
	var returned atomic.Bool
	if err := s.Add("long", "@hourly", time.Hour, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		returned.Store(true)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	s.Start()
	errc := make(chan error, 1)
	go func() { errc <- s.RunNow(context.Background(), "long") }()
	<-started
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Stop returned before the running job")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled job returned %v", err)
	}
}

func TestSchedulesAreAligned(t *testing.T) {
	s := New(nil, "", nil, nil)
	sched, err := s.parse("@every 10s")
	if err != nil {
		t.Fatal(err)
	}
	// Two replicas started at different instants tick together.
	t1 := time.Date(2026, 1, 1, 0, 0, 3, 250, time.UTC)
	t2 := time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC)
	if a, b := sched.Next(t1), sched.Next(t2); !a.Equal(b) || !a.Equal(time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)) {
		t.Fatalf("@every 10s from %s → %s, from %s → %s", t1, a, t2, b)
	}
	// Five-field specs are minutes-first and evaluated in UTC.
	sched, err = s.parse("0 */6 * * *")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 7, 30, 0, 0, time.FixedZone("X", 5*3600))
	if got := sched.Next(from); !got.Equal(time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)) {
		t.Fatalf("0 */6 * * * after %s → %s", from, got)
	}
	for spec, want := range map[string]time.Duration{"0 */6 * * *": 6 * time.Hour, "0 */2 * * *": 2 * time.Hour,
		"@every 90s": 90 * time.Second, "*/5 * * * * *": 5 * time.Second} {
		if p, err := Period(spec); err != nil || p != want {
			t.Fatalf("Period(%q) = %v, %v; want %v", spec, p, err, want)
		}
	}
	if _, err := Period("nonsense"); err == nil {
		t.Fatal("Period of a bad spec")
	}
	// tickAt names the scheduled instant even when the run starts late.
	ts := &tickSchedule{inner: sched}
	t0 := time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC)
	first := ts.Next(t0)
	ts.Next(first.Add(3 * time.Millisecond))
	if got := ts.tickAt(first.Add(2 * time.Second)); !got.Equal(first) {
		t.Fatalf("tickAt = %s, want %s", got, first)
	}
	if got := ts.tickAt(first.Add(-50 * time.Millisecond)); !got.Equal(first) {
		t.Fatalf("tickAt a hair early = %s, want %s", got, first)
	}
}
