package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"commerce/internal/platform/testenv"
)

// TestHeartbeatKeepsALongRunsLease: a run lasting several leases keeps its lease (no
// other replica can start the job) and releases it at the end.
func TestHeartbeatKeepsALongRunsLease(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	const lease = 600 * time.Millisecond
	a := New(rdb, space, nil, nil, WithLease(lease))
	b := New(rdb, space, nil, nil, WithLease(lease))
	started := make(chan struct{})
	fn := func(ctx context.Context) error {
		close(started)
		select {
		case <-time.After(4 * lease):
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := a.Add("long", "@hourly", time.Minute, fn); err != nil {
		t.Fatal(err)
	}
	if err := b.Add("long", "@hourly", time.Minute, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.RunNow(ctx, "long") }()
	<-started
	for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(lease / 4) {
		if err := b.RunNow(ctx, "long"); !errors.Is(err, ErrLocked) {
			t.Fatalf("another replica ran the job while the first held it: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("long run: %v", err)
	}
	if rdb.Exists(ctx, a.runKey("long")).Val() != 0 {
		t.Fatal("lease not released after the run")
	}
}

// TestRunThatLosesItsLeaseStops: when the lease is taken away (expired during a Redis
// stall, lost with Redis, or taken by another holder), the run's context is cancelled
// within about a third of the lease and the run counts as lease_lost.
func TestRunThatLosesItsLeaseStops(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	const lease = 600 * time.Millisecond
	s := New(rdb, space, nil, prometheus.NewRegistry(), WithLease(lease))
	started := make(chan struct{})
	var stoppedAt time.Time
	if err := s.Add("victim", "@hourly", time.Minute, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		stoppedAt = time.Now()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.RunNow(ctx, "victim") }()
	<-started
	rdb.Set(ctx, s.runKey("victim"), "another-holder", time.Minute)
	takenAt := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * lease):
		t.Fatal("the run went on after losing its lease")
	}
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("run error %v, want ErrLeaseLost", err)
	}
	if d := stoppedAt.Sub(takenAt); d > lease {
		t.Fatalf("stopped %v after losing the lease, want within a lease", d)
	}
	if runs(s, "victim", OutcomeLeaseLost) != 1 {
		t.Fatal("lease_lost not counted")
	}
	if rdb.Get(ctx, s.runKey("victim")).Val() != "another-holder" {
		t.Fatal("the run released another holder's lease")
	}
}

// TestKilledRunnerBlocksTheJobForAtMostOneLease: a process killed with SIGKILL in the
// middle of a run leaves its lease behind; another replica runs the job again within
// one lease.
func TestKilledRunnerBlocksTheJobForAtMostOneLease(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	const lease = time.Second
	s := New(rdb, space, nil, nil, WithLease(lease))
	ran := false
	if err := s.Add("sweep", "@hourly", time.Minute, func(context.Context) error {
		testenv.PauseAt("mid-run") // the child stops here until it is killed
		ran = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if testenv.CrashChild() {
		_ = s.RunNow(ctx, "sweep")
		t.Fatal("the run did not pause")
	}
	child := testenv.StartCrash(t, "mid-run", nil)
	child.WaitPaused(time.Minute)
	// The child holds the lease, renewed by its heartbeat.
	time.Sleep(lease + lease/2)
	if err := s.RunNow(ctx, "sweep"); !errors.Is(err, ErrLocked) {
		t.Fatalf("RunNow while the child runs: %v", err)
	}
	child.Kill()
	killedAt := time.Now()
	for {
		err := s.RunNow(ctx, "sweep")
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatal(err)
		}
		if time.Since(killedAt) > lease+lease/2 {
			t.Fatalf("the job was still blocked %v after its runner died (lease %v)", time.Since(killedAt), lease)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !ran {
		t.Fatal("the job did not run")
	}
	t.Logf("the job ran again %v after its runner was killed (lease %v)", time.Since(killedAt).Round(time.Millisecond), lease)
}

// TestTickOfAKilledReplicaIsTakenOverWithinALease: a replica claims a tick and is killed
// (SIGKILL) during the run; a replica started afterwards runs that same tick about one
// lease after the death, instead of waiting for the next tick.
func TestTickOfAKilledReplicaIsTakenOverWithinALease(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	const lease = time.Second
	s := New(rdb, space, nil, nil, WithLease(lease))
	type run struct {
		tick time.Time
		at   time.Time
	}
	got := make(chan run, 4)
	if err := s.Add("sweep", "@every 20s", time.Minute, func(ctx context.Context) error {
		tick, _ := Tick(ctx)
		rdb.Set(ctx, space.Key("tick"), tick.UnixMilli(), time.Minute)
		testenv.PauseAt("mid-run") // the child stops here until it is killed
		got <- run{tick, time.Now()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if testenv.CrashChild() {
		s.Start() // catches up on the current tick at once
		time.Sleep(time.Minute)
		t.Fatal("the run did not pause")
	}
	// Start well inside a period, so the catch-up tick is not also the next tick.
	for now := time.Now(); now.Sub(now.Truncate(20*time.Second)) > 10*time.Second; now = time.Now() {
		time.Sleep(100 * time.Millisecond)
	}
	child := testenv.StartCrash(t, "mid-run", nil)
	child.WaitPaused(time.Minute)
	childTick, _ := rdb.Get(ctx, space.Key("tick")).Int64()
	child.Kill()
	killedAt := time.Now()
	s.Start()
	defer s.Stop(ctx) //nolint:errcheck
	select {
	case r := <-got:
		if r.tick.UnixMilli() != childTick {
			t.Fatalf("the survivor ran tick %v, not the dead replica's %v", r.tick, time.UnixMilli(childTick))
		}
		if d := r.at.Sub(killedAt); d > lease+lease/2+300*time.Millisecond {
			t.Fatalf("the tick ran %v after the death; want about one lease (%v)", d, lease)
		}
		t.Logf("tick taken over %v after the claimant was killed (lease %v)", r.at.Sub(killedAt).Round(time.Millisecond), lease)
	case <-time.After(15 * time.Second):
		t.Fatal("the dead replica's tick was never taken over")
	}
}
