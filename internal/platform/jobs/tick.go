package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"
)

// runTick is what cron calls: claim this tick, then run.
func (s *Scheduler) runTick(j *job) {
	if s.base.Err() != nil {
		return // stopping
	}
	s.claimAndRun(j, j.sched.tickAt(time.Now()))
}

// claimAndRun claims tick (or takes it over from a claimant that died), runs the job
// and marks the tick done.
func (s *Scheduler) claimAndRun(j *job, tick time.Time) {
	token := newToken()
	key := s.tickKey(j.name, tick)
	ctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	claimed, err := s.rdb.SetNX(ctx, key, token, j.tickWindow).Result()
	cancel()
	switch {
	case err != nil:
		s.runs.WithLabelValues(j.name, OutcomeLockError).Inc()
		s.log.Warn("job tick skipped: lock unavailable", slog.String("job", j.name),
			slog.Time("tick", tick), slog.String("error", err.Error()))
		return
	case !claimed && !s.takeOver(j, tick, key, token):
		s.runs.WithLabelValues(j.name, OutcomeSkipped).Inc()
		s.log.Debug("job tick claimed by another replica", slog.String("job", j.name), slog.Time("tick", tick))
		return
	}
	err = s.run(s.base, j, tick, "schedule")
	// A run still holds the lease (a previous tick's, or a dead replica's until its lease
	// runs out): keep trying within this tick, so a dead holder costs at most one lease.
	for errors.Is(err, ErrLocked) && time.Now().Add(s.lease/4).Before(s.tickDeadline(j, tick)) {
		select {
		case <-s.base.Done():
			return
		case <-time.After(s.lease / 4):
		}
		err = s.run(s.base, j, tick, "schedule")
	}
	if errors.Is(err, ErrLeaseLost) {
		return // not known to be done: another replica may take the tick over
	}
	ctx, cancel = context.WithTimeout(context.WithoutCancel(s.base), 5*time.Second)
	defer cancel()
	_ = s.rdb.SetArgs(ctx, key, tickDone, redis.SetArgs{KeepTTL: true}).Err()
}

// tickDone is the value of a tick claim once its run ended.
const tickDone = "done"

// takeOver watches a tick claimed by another replica until the claimant marks it done
// (false) or is seen dead: the claim is not done and no run lease exists, twice a
// quarter lease apart, so the claimant is neither about to take the lease nor about to
// mark the tick done. Then it takes the claim over (true). It gives up at the end of the
// job's period or of the tick window, so the next tick is never delayed.
func (s *Scheduler) takeOver(j *job, tick time.Time, key, token string) bool {
	deadline := s.tickDeadline(j, tick)
	poll := s.lease / 4
	dead := 0
	for time.Now().Before(deadline) {
		select {
		case <-s.base.Done():
			return false
		case <-time.After(poll):
		}
		ctx, cancel := context.WithTimeout(s.base, poll)
		claimant, err := s.rdb.Get(ctx, key).Result()
		var running int64
		if err == nil {
			running, err = s.rdb.Exists(ctx, s.runKey(j.name)).Result()
		}
		cancel()
		switch {
		case errors.Is(err, redis.Nil) || (err == nil && claimant == tickDone):
			return false
		case err != nil || running == 1:
			dead = 0
			continue
		}
		if dead++; dead < 2 {
			continue
		}
		ctx, cancel = context.WithTimeout(s.base, poll)
		ok, err := s.takeover.Run(ctx, s.rdb, []string{key, s.runKey(j.name)}, claimant, token).Int()
		cancel()
		if err == nil && ok == 1 {
			s.log.Warn("job tick taken over from a replica that died during its run", slog.String("job", j.name),
				slog.Time("tick", tick))
			return true
		}
		dead = 0
	}
	return false
}

// tickDeadline is when a replica stops trying to run tick: a quarter lease before the
// end of the job's period (or tick window), so the next tick is never delayed.
func (s *Scheduler) tickDeadline(j *job, tick time.Time) time.Time {
	return tick.Add(min(j.tickWindow, period(j.sched.inner)) - s.lease/4)
}

// catchUp runs, at Start, the latest tick of each job (less than a period or tick window
// old) that a replica claimed and did not finish: it is taken over once that replica's
// lease is gone (a restart right after a crash mid-run). A tick nobody claimed is left
// to the schedule.
func (s *Scheduler) catchUp() {
	s.mu.Lock()
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	now := time.Now()
	for _, j := range jobs {
		p := period(j.sched.inner)
		tick := j.sched.inner.Next(now.Add(-p))
		if tick.IsZero() || tick.After(now) || now.Sub(tick) >= min(j.tickWindow, p) {
			continue
		}
		ctx, cancel := context.WithTimeout(s.base, time.Second)
		claimant, err := s.rdb.Get(ctx, s.tickKey(j.name, tick)).Result()
		cancel()
		if err != nil || claimant == tickDone {
			continue // nobody claimed it (the next tick comes soon enough), or it is done
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.claimAndRun(j, tick.UTC())
		}()
	}
}

func (s *Scheduler) tickKey(name string, tick time.Time) string {
	return s.space.Key("job:{", name, "}:tick:", strconv.FormatInt(tick.UnixMilli(), 10))
}

type tickKey struct{}

func withTick(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, tickKey{}, t)
}

// Tick returns the scheduled instant of the run whose context is ctx (for RunNow, the
// time it was called), and false outside a job run.
func Tick(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(tickKey{}).(time.Time)
	return t, ok
}

// tickSchedule wraps a schedule and remembers the activation times it handed to cron,
// so that a run can name its tick exactly.
type tickSchedule struct {
	inner  cron.Schedule
	mu     sync.Mutex
	recent [4]time.Time
	n      int
}

func (s *tickSchedule) Next(t time.Time) time.Time {
	next := s.inner.Next(t)
	s.mu.Lock()
	s.recent[s.n%len(s.recent)] = next
	s.n++
	s.mu.Unlock()
	return next
}

// tickAt returns the latest activation handed out that is not after now (plus a small
// tolerance). Cron computes the following activation around the time it starts a run,
// so the run's own tick is the latest one that has come. Without any (impossible from
// cron), now truncated to the second.
func (s *tickSchedule) tickAt(now time.Time) time.Time {
	limit := now.Add(tickTolerance)
	s.mu.Lock()
	defer s.mu.Unlock()
	var best time.Time
	for _, t := range s.recent {
		if !t.IsZero() && !t.After(limit) && t.After(best) {
			best = t
		}
	}
	if best.IsZero() {
		return now.Truncate(time.Second).UTC()
	}
	return best.UTC()
}
