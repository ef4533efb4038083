package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

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

func (s *Scheduler) runKey(name string) string { return s.space.Key("job:{", name, "}:run") }

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
