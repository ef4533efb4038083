// Package jobs runs periodic jobs (cache warmers, sweeps, reconciliation) with
// robfig/cron so that, across all replicas sharing one Redis, each scheduled tick of a
// job runs once in total and never while another run of the same job is in progress.
// It is the only package that imports robfig/cron.
//
// # Leadership, per tick
//
// Every replica's cron fires at the same wall-clock instants (specs are evaluated in
// UTC; "@every d" is aligned to multiples of d, not to the process start). When a tick
// fires, each replica knows the exact scheduled instant T of that tick (recorded from
// the schedule, not read from the clock, so a goroutine that starts late still names the
// right tick) and races for two keys under the job's hash tag:
//
//  1. the tick claim <space>job:{<name>}:tick:<T in ms>, SET NX with a random token and
//     kept until it expires (never deleted). It lives for the tick window,
//     clamp(period, 10 s, 1 h), so a replica whose clock or scheduling lags by less than
//     that finds the tick taken; exactly one replica wins each tick. Because the key
//     names the tick, a short job that finishes before the slower replica fires cannot
//     free the tick for it (the flaw of a lock released after the run), and the window
//     does not have to be shorter than the period (the constraint of one lock kept for
//     a fixed time).
//  2. the run lease <space>job:{<name>}:run, SET NX PX <lease> with a random token. It
//     keeps runs of one job from overlapping across replicas (a tick that finds the
//     previous run still going is skipped: SkipIfStillRunning, cluster-wide) and also
//     guards RunNow.
//
// # Leases, not locks
//
// The run lease is short (WithLease, default 5 s) and a heartbeat renews it every third
// of the lease while the job runs (scripts/lua/lease_renew.lua: only its holder can). It
// is released by compare-and-delete (scripts/lua/unlock.lua) when the run ends. A
// process that dies mid-run (kill -9, a crash, an OOM) therefore blocks the job for at
// most one lease, not for the job's timeout; a Redis restarted from an AOF brings the
// key back with the same short life.
//
// A run that loses its lease stops: when a renewal finds the key gone or held by another
// token, or when no renewal has succeeded for about a whole lease (Redis unreachable),
// the run's context is cancelled and the run is counted as outcome "lease_lost". Jobs
// honour their context, so a run does not go on while another replica may hold the lease.
//
// # A claimant that dies
//
// A tick claim says who runs the tick; when the run ends, the claim is marked done. A
// replica that finds a tick claimed keeps watching it (every quarter lease, until the
// end of the period or tick window) and takes it over when the claim is not done and no
// run lease exists twice in a row (scripts/lua/tick_takeover.lua): the claimant died
// during the run. The tick then runs again on the survivor about one lease after the
// death, in the same period, instead of waiting for the next tick. At Start a replica
// also catches up on the latest tick of each job that was claimed and not finished. So a duty such as the hold sweep is late by at most one lease after
// a crash. Runs are idempotent duties (sweeps, warmers), so a tick that a dead replica
// had half done is simply done again.
//
// A run also gets a context with the job's timeout. If Redis cannot be reached the tick
// is skipped (the warmers need Redis anyway) and counted as outcome "lock_error".
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

var (
	// ErrUnknownJob is returned by RunNow for a name that was never added.
	ErrUnknownJob = errors.New("jobs: unknown job")
	// ErrLocked is returned by RunNow when a run of the job holds the run lock (on this
	// replica or another one).
	ErrLocked = errors.New("jobs: job already running")
	// ErrPanic wraps the value of a job that panicked.
	ErrPanic = errors.New("jobs: job panicked")
)

// Outcomes counted by commerce_job_runs_total.
const (
	OutcomeSuccess   = "success"
	OutcomeError     = "error"
	OutcomeTimeout   = "timeout"
	OutcomePanic     = "panic"
	OutcomeSkipped   = "skipped"    // another replica claimed this tick
	OutcomeLocked    = "locked"     // a run of this job was still in progress
	OutcomeLockError = "lock_error" // Redis could not be asked
	OutcomeLeaseLost = "lease_lost" // the run lost its lease and was stopped
)

// ErrLeaseLost is the cause of a run's context when its lease was lost.
var ErrLeaseLost = errors.New("jobs: run lease lost")

// DefaultLease is the run lease when WithLease is not given.
const DefaultLease = 5 * time.Second

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithLease sets the run lease (at least 300 ms): how long a run is protected without a
// heartbeat, and so the longest a dead process blocks the job.
func WithLease(d time.Duration) Option {
	return func(s *Scheduler) { s.lease = max(d, 300*time.Millisecond) }
}

const (
	minTickWindow = 10 * time.Second
	maxTickWindow = time.Hour
	// tickTolerance absorbs a timer that fires a hair before the scheduled wall time.
	tickTolerance = 100 * time.Millisecond
)

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Scheduler runs named jobs on cron specs with Redis leadership (see the package doc).
// Safe for concurrent use.
type Scheduler struct {
	rdb    redis.UniversalClient
	space  rkey.Space
	log    *slog.Logger
	cron   *cron.Cron
	parser cron.Parser
	unlock *redis.Script
	renew  *redis.Script
	// takeover moves a dead claimant's tick claim to a live replica.
	takeover *redis.Script
	lease    time.Duration

	mu   sync.Mutex
	jobs map[string]*job

	base    context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // RunNow calls and catch-up runs in flight
	stopped bool           // under mu: Stop began, so no run may join wg any more

	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	lastOK   *prometheus.GaugeVec
}

type job struct {
	name       string
	timeout    time.Duration
	fn         func(context.Context) error
	sched      *tickSchedule
	tickWindow time.Duration
}

// New returns a Scheduler whose locks live in rdb under space. Its metrics are
// registered on reg (nil: not registered): commerce_job_runs_total{job,outcome},
// commerce_job_duration_seconds{job} and commerce_job_last_success_timestamp_seconds{job}.
// Specs take 5 fields (minute first) or 6 (seconds first), or descriptors such as
// "@hourly" and "@every 10m", and are evaluated in UTC unless they start with CRON_TZ=.
func New(rdb redis.UniversalClient, space rkey.Space, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl := cronLogger{log}
	parser := newParser()
	s := &Scheduler{
		rdb: rdb, space: space, log: log, parser: parser,
		cron: cron.New(cron.WithLocation(time.UTC), cron.WithParser(parser), cron.WithLogger(cl),
			cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl))),
		unlock:   redis.NewScript(lua.Source("unlock")),
		renew:    redis.NewScript(lua.Source("lease_renew")),
		takeover: redis.NewScript(lua.Source("tick_takeover")),
		lease:    DefaultLease,
		jobs:     map[string]*job{},
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commerce_job_runs_total",
			Help: "Scheduled and manual job runs by job and outcome (success, error, timeout, panic, skipped, locked, lock_error, lease_lost).",
		}, []string{"job", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "commerce_job_duration_seconds",
			Help:    "Duration of job runs that took the lock.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900},
		}, []string{"job"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "commerce_job_last_success_timestamp_seconds",
			Help: "Unix time of the last successful run of each job.",
		}, []string{"job"}),
	}
	for _, o := range opts {
		o(s)
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	if reg != nil {
		reg.MustRegister(s.runs, s.duration, s.lastOK)
	}
	return s
}

// Add schedules fn under name (1–64 of [a-z0-9_-]) on spec; each run gets a context
// that expires after timeout (> 0) and that Stop cancels. Jobs may be added before or
// after Start. Errors: a bad name, a duplicate name, a bad spec or timeout.
func (s *Scheduler) Add(name, spec string, timeout time.Duration, fn func(ctx context.Context) error) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("jobs: job name %q must be 1-64 characters of [a-z0-9_-]", name)
	}
	if timeout <= 0 || fn == nil {
		return fmt.Errorf("jobs: job %s needs a positive timeout and a function", name)
	}
	sched, err := s.parse(spec)
	if err != nil {
		return fmt.Errorf("jobs: job %s: spec %q: %w", name, spec, err)
	}
	j := &job{name: name, timeout: timeout, fn: fn, sched: &tickSchedule{inner: sched}}
	j.tickWindow = min(max(period(sched), minTickWindow), maxTickWindow)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.jobs[name]; dup {
		return fmt.Errorf("jobs: job %s added twice", name)
	}
	s.jobs[name] = j
	s.cron.Schedule(j.sched, cron.FuncJob(func() { s.runTick(j) }))
	for _, o := range []string{OutcomeSuccess, OutcomeError, OutcomeTimeout, OutcomePanic, OutcomeSkipped,
		OutcomeLocked, OutcomeLockError, OutcomeLeaseLost} {
		s.runs.WithLabelValues(name, o)
	}
	return nil
}

// Start starts running the jobs on their schedules in the background. It first catches
// up on the latest tick of each job when nobody finished it (see catchUp).
func (s *Scheduler) Start() {
	s.catchUp()
	s.cron.Start()
}

// Stop stops scheduling, cancels the context of every running job (scheduled or RunNow)
// and waits until they have returned or ctx is done (then it returns ctx.Err()). The
// jobs are warmers and sweeps: stopping one midway is safe and it runs again later.
func (s *Scheduler) Stop(ctx context.Context) error {
	cronDone := s.cron.Stop()
	s.mu.Lock()
	s.stopped = true // after this no run joins wg, so Wait cannot race an Add
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		<-cronDone.Done()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jobs: stop: %w", ctx.Err())
	}
}

// RunNow runs the job now in the caller's goroutine, under the run lock (not a tick
// claim): at start-up and on demand. It returns the job's error, ErrLocked when a run is
// in progress, ErrUnknownJob, or a Redis error when the lock cannot be taken.
func (s *Scheduler) RunNow(ctx context.Context, name string) error {
	s.mu.Lock()
	j, ok := s.jobs[name]
	stopped := s.stopped
	if ok && !stopped {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownJob, name)
	}
	if stopped {
		return fmt.Errorf("jobs: %s: scheduler stopped: %w", name, context.Canceled)
	}
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	return s.run(ctx, j, time.Now().UTC(), "manual")
}

// cronLogger adapts slog to cron.Logger; cron's routine messages go to Debug.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append([]any{slog.String("error", err.Error())}, kv...)...)
}
