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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
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

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // RunNow calls in flight

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

func newParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// parse parses spec in UTC (unless it names its zone) and aligns "@every" schedules.
func (s *Scheduler) parse(spec string) (cron.Schedule, error) { return parseSpec(s.parser, spec) }

func parseSpec(parser cron.Parser, spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		if !strings.Contains(spec, " ") {
			return nil, errors.New("a time zone prefix must be followed by a schedule")
		}
	} else if spec != "" {
		spec = "CRON_TZ=UTC " + spec
	}
	sched, err := parser.Parse(spec)
	if err != nil {
		return nil, err
	}
	if cd, ok := sched.(cron.ConstantDelaySchedule); ok {
		return alignedEvery{cd.Delay}, nil
	}
	return sched, nil
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
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownJob, name)
	}
	s.wg.Add(1)
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	return s.run(ctx, j, time.Now().UTC(), "manual")
}

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
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.claimAndRun(j, tick.UTC())
		}()
	}
}

// Lease returns the run lease.
func (s *Scheduler) Lease() time.Duration { return s.lease }

// run takes the run lease, runs the job with its timeout while a heartbeat renews the
// lease, records the outcome and releases the lease.
func (s *Scheduler) run(ctx context.Context, j *job, tick time.Time, trigger string) (err error) {
	token := newToken()
	key := s.runKey(j.name)
	ok, err := s.rdb.SetNX(ctx, key, token, s.lease).Result()
	if err != nil {
		s.runs.WithLabelValues(j.name, OutcomeLockError).Inc()
		s.log.Warn("job not run: lease unavailable", slog.String("job", j.name), slog.String("error", err.Error()))
		return fmt.Errorf("jobs: lease %s: %w", j.name, err)
	}
	if !ok {
		s.runs.WithLabelValues(j.name, OutcomeLocked).Inc()
		s.log.Info("job not run: already running", slog.String("job", j.name), slog.String("trigger", trigger))
		return fmt.Errorf("%w: %s", ErrLocked, j.name)
	}
	leaseCtx, lose := context.WithCancelCause(withTick(ctx, tick))
	defer lose(nil)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		s.heartbeat(leaseCtx, lose, j.name, key, token)
	}()
	defer func() {
		lose(context.Canceled) // stops the heartbeat
		<-hbDone
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if uerr := s.unlock.Run(uctx, s.rdb, []string{key}, token).Err(); uerr != nil {
			// The lease expires on its own within one lease.
			s.log.Warn("job lease not released", slog.String("job", j.name), slog.String("error", uerr.Error()))
		}
	}()

	rctx, cancel := context.WithTimeout(leaseCtx, j.timeout)
	defer cancel()
	start := time.Now()
	err = call(rctx, j.fn)
	elapsed := time.Since(start)
	s.duration.WithLabelValues(j.name).Observe(elapsed.Seconds())

	outcome := OutcomeSuccess
	switch {
	case errors.Is(context.Cause(leaseCtx), ErrLeaseLost):
		outcome = OutcomeLeaseLost
		err = errors.Join(ErrLeaseLost, err)
	case err == nil:
		s.lastOK.WithLabelValues(j.name).SetToCurrentTime()
	case errors.Is(err, ErrPanic):
		outcome = OutcomePanic
	case errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		outcome = OutcomeTimeout
	default:
		outcome = OutcomeError
	}
	s.runs.WithLabelValues(j.name, outcome).Inc()
	attrs := []slog.Attr{slog.String("job", j.name), slog.String("trigger", trigger), slog.Time("tick", tick),
		slog.String("outcome", outcome), slog.Duration("duration", elapsed)}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "job failed", append(attrs, slog.String("error", err.Error()))...)
	} else { // successes are in the metrics; logging each one would flood the log every tick
		s.log.LogAttrs(ctx, slog.LevelDebug, "job done", attrs...)
	}
	return err
}

// heartbeat renews the run lease every third of it until ctx ends. It calls
// lose(ErrLeaseLost) when the lease is gone or someone else's, or when no renewal has
// succeeded for nearly a whole lease (it may expire any moment).
func (s *Scheduler) heartbeat(ctx context.Context, lose context.CancelCauseFunc, name, key, token string) {
	every := s.lease / 3
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		held, err := s.renew.Run(rctx, s.rdb, []string{key}, token, s.lease.Milliseconds()).Int()
		cancel()
		switch {
		case err == nil && held == 1:
			lastOK = time.Now()
		case err == nil:
			s.log.Warn("job lease lost: stopping the run", slog.String("job", name))
			lose(ErrLeaseLost)
			return
		case ctx.Err() != nil:
			return
		case time.Since(lastOK) >= s.lease-every/2:
			s.log.Warn("job lease not renewed for a whole lease: stopping the run", slog.String("job", name),
				slog.String("error", err.Error()))
			lose(ErrLeaseLost)
			return
		}
	}
}

// call runs fn, turning a panic into an ErrPanic error.
func call(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return fn(ctx)
}

func (s *Scheduler) tickKey(name string, tick time.Time) string {
	return s.space.Key("job:{", name, "}:tick:", strconv.FormatInt(tick.UnixMilli(), 10))
}

func (s *Scheduler) runKey(name string) string { return s.space.Key("job:{", name, "}:run") }

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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

// alignedEvery is "@every d" aligned to multiples of d since the zero time, so every
// replica ticks at the same instants.
type alignedEvery struct{ d time.Duration }

func (e alignedEvery) Next(t time.Time) time.Time { return t.Truncate(e.d).Add(e.d) }

// Period returns the interval between two consecutive activations of spec after now
// (for a spec with a regular period, its period), e.g. to size a cache TTL from a warm
// schedule. Errors: a bad spec.
func Period(spec string) (time.Duration, error) {
	sched, err := parseSpec(newParser(), spec)
	if err != nil {
		return 0, fmt.Errorf("jobs: spec %q: %w", spec, err)
	}
	return period(sched), nil
}

// period estimates a schedule's period from two consecutive activations.
func period(s cron.Schedule) time.Duration {
	a := s.Next(time.Now())
	b := s.Next(a)
	if a.IsZero() || b.IsZero() {
		return maxTickWindow
	}
	return b.Sub(a)
}

// cronLogger adapts slog to cron.Logger; cron's routine messages go to Debug.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append([]any{slog.String("error", err.Error())}, kv...)...)
}
