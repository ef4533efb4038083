package cart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// wbItem is the whole state of one record (a customer's cart or preferences) at version
// (its Redis updated_at, strictly increasing per record). Items carry full state, so a
// newer item replaces an older one of the same key and a dropped item is repaired by the
// next write of that key.
type wbItem[T any] struct {
	key     string
	version int64
	value   T
}

// writeBehind persists records to PostgreSQL behind the Redis write: a bounded queue, a
// flusher goroutine that coalesces items per key and writes them in batches, retrying
// with exponential backoff while PostgreSQL fails. Stop drains: every item enqueued
// before Stop returns is written (unless Stop's context ends first, which it reports);
// an item enqueued after Stop is written at once by the caller.
type writeBehind[T any] struct {
	name     string
	in       chan wbItem[T]
	save     func(context.Context, []wbItem[T]) error
	batch    int
	interval time.Duration
	block    bool // when the queue is full: wait (preferences) or drop (carts)
	log      *slog.Logger

	minBackoff, maxBackoff time.Duration

	mu      sync.RWMutex // RLock: enqueue; Lock: stop
	stopped bool
	started bool
	flushes chan chan error
	stopReq chan context.Context
	done    chan struct{}
	stopErr error

	dropped  atomic.Int64
	setAside atomic.Int64
}

func newWriteBehind[T any](name string, queue, batch int, interval time.Duration, block bool,
	log *slog.Logger, save func(context.Context, []wbItem[T]) error) *writeBehind[T] {
	return &writeBehind[T]{
		name: name, in: make(chan wbItem[T], queue), save: save, batch: batch, interval: interval,
		block: block, log: log, minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second,
		flushes: make(chan chan error), stopReq: make(chan context.Context), done: make(chan struct{}),
	}
}

// start runs the flusher until stop. ctx bounds each PostgreSQL write (with a timeout).
func (w *writeBehind[T]) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopped {
		return
	}
	w.started = true
	go w.run()
}

// enqueue hands the state of one record to the flusher. With a full queue it waits for
// room until ctx ends (block) or drops the item (counted and logged; the next write of
// that record repairs it).
func (w *writeBehind[T]) enqueue(ctx context.Context, it wbItem[T]) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.stopped {
		if err := w.saveAll(ctx, []wbItem[T]{it}); err != nil {
			w.drop(it, err)
		}
		return
	}
	select {
	case w.in <- it:
		return
	default:
	}
	if !w.block {
		w.drop(it, errors.New("queue full"))
		return
	}
	select {
	case w.in <- it:
	case <-ctx.Done():
		w.drop(it, ctx.Err())
	}
}

func (w *writeBehind[T]) drop(it wbItem[T], err error) {
	w.dropped.Add(1)
	w.log.Warn("write-behind item dropped", slog.String("queue", w.name), slog.String("key", it.key),
		slog.String("error", err.Error()))
}

// flush writes everything enqueued so far and returns the first error.
func (w *writeBehind[T]) flush(ctx context.Context) error {
	w.mu.RLock()
	running := w.started && !w.stopped
	w.mu.RUnlock()
	if !running {
		return nil
	}
	ch := make(chan error, 1)
	select {
	case w.flushes <- ch:
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops intake, writes what is pending (retrying until ctx ends) and returns an error
// naming how many records could not be written.
func (w *writeBehind[T]) stop(ctx context.Context) error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	started := w.started
	w.mu.Unlock()
	if !started {
		pending := map[string]wbItem[T]{}
		w.drainInto(pending)
		return w.saveWithRetry(ctx, pending)
	}
	select {
	case w.stopReq <- ctx:
	case <-ctx.Done():
		return fmt.Errorf("%s write-behind: stop: %w", w.name, ctx.Err())
	}
	select {
	case <-w.done:
		return w.stopErr
	case <-ctx.Done():
		return fmt.Errorf("%s write-behind: stop: %w", w.name, ctx.Err())
	}
}

func (w *writeBehind[T]) run() {
	defer close(w.done)
	pending := map[string]wbItem[T]{}
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	backoff := time.Duration(0)
	var retryAt time.Time
	attempt := func() error {
		if len(pending) == 0 || time.Now().Before(retryAt) {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.saveBatches(ctx, pending)
		cancel()
		if err != nil {
			backoff = min(max(2*backoff, w.minBackoff), w.maxBackoff)
			retryAt = time.Now().Add(backoff)
			w.log.Warn("write-behind flush failed, will retry", slog.String("queue", w.name),
				slog.Int("pending", len(pending)), slog.Duration("backoff", backoff), slog.String("error", err.Error()))
			return err
		}
		backoff, retryAt = 0, time.Time{}
		return nil
	}
	for {
		// Stop taking items while a failing PostgreSQL has let the pending set grow to the
		// queue's size: the queue then fills and enqueue applies its full-queue policy.
		in := w.in
		if len(pending) >= cap(w.in) {
			in = nil
		}
		select {
		case it := <-in:
			add(pending, it)
			if len(pending) >= w.batch {
				_ = attempt()
			}
		case <-tick.C:
			_ = attempt()
		case ch := <-w.flushes:
			w.drainInto(pending)
			retryAt = time.Time{}
			ch <- attempt()
		case ctx := <-w.stopReq:
			w.drainInto(pending)
			w.stopErr = w.saveWithRetry(ctx, pending)
			return
		}
	}
}

func add[T any](pending map[string]wbItem[T], it wbItem[T]) {
	if cur, ok := pending[it.key]; !ok || it.version >= cur.version {
		pending[it.key] = it
	}
}

func (w *writeBehind[T]) drainInto(pending map[string]wbItem[T]) {
	for {
		select {
		case it := <-w.in:
			add(pending, it)
		default:
			return
		}
	}
}

// saveBatches writes pending in batches, deleting what was written. A batch that fails
// with a data error (a row PostgreSQL refuses, whatever it is retried with) is written
// again row by row: the rows that still fail that way are set aside (counted and logged)
// and the others are written, so one bad record never holds back another's. Any other
// error (PostgreSQL down or slow) stops the flush, to be retried with backoff.
func (w *writeBehind[T]) saveBatches(ctx context.Context, pending map[string]wbItem[T]) error {
	done := func(it wbItem[T]) {
		if cur := pending[it.key]; cur.version == it.version {
			delete(pending, it.key)
		}
	}
	for len(pending) > 0 {
		b := make([]wbItem[T], 0, min(w.batch, len(pending)))
		for _, it := range pending {
			if len(b) == w.batch {
				break
			}
			b = append(b, it)
		}
		err := w.saveAll(ctx, b)
		if err != nil && !isDataError(err) {
			return err
		}
		if err == nil {
			for _, it := range b {
				done(it)
			}
			continue
		}
		for _, it := range b {
			if err := w.saveAll(ctx, []wbItem[T]{it}); err != nil {
				if !isDataError(err) {
					return err
				}
				w.setAside.Add(1)
				w.log.Error("write-behind record set aside: PostgreSQL refuses it", slog.String("queue", w.name),
					slog.String("key", it.key), slog.Int64("version", it.version), slog.String("error", err.Error()))
			}
			done(it)
		}
	}
	return nil
}

// isDataError reports whether err is PostgreSQL refusing the data itself (SQLSTATE class
// 22 data exception, 23 integrity constraint violation, 54 program limit exceeded) or
// the record failing to encode: retrying the same record can never succeed.
func isDataError(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return strings.HasPrefix(pg.Code, "22") || strings.HasPrefix(pg.Code, "23") || strings.HasPrefix(pg.Code, "54")
	}
	var ee encodeError
	return errors.As(err, &ee)
}

// encodeError marks a record that could not be encoded for PostgreSQL.
type encodeError struct{ err error }

func (e encodeError) Error() string { return "encode: " + e.err.Error() }
func (e encodeError) Unwrap() error { return e.err }

func (w *writeBehind[T]) saveAll(ctx context.Context, b []wbItem[T]) error {
	if err := w.save(ctx, b); err != nil {
		return fmt.Errorf("%s write-behind: %w", w.name, err)
	}
	return nil
}

// saveWithRetry writes pending, retrying with backoff until it succeeds or ctx ends.
func (w *writeBehind[T]) saveWithRetry(ctx context.Context, pending map[string]wbItem[T]) error {
	backoff := w.minBackoff
	for {
		err := w.saveBatches(ctx, pending)
		if err == nil {
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s write-behind: %d records not written: %w", w.name, len(pending), err)
		}
		backoff = min(2*backoff, w.maxBackoff)
	}
}

// collectors exposes the queue's counters: records dropped (full queue or shutdown) and
// records set aside because PostgreSQL refuses them.
func (w *writeBehind[T]) collectors() []prometheus.Collector {
	l := prometheus.Labels{"queue": w.name}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "commerce_writebehind_dropped_total",
			Help:        "Write-behind records dropped (queue full or shut down); the next write of the record repairs it.",
			ConstLabels: l}, func() float64 { return float64(w.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "commerce_writebehind_set_aside_total",
			Help:        "Write-behind records set aside because PostgreSQL refuses their data.",
			ConstLabels: l}, func() float64 { return float64(w.setAside.Load()) }),
	}
}

// Collectors returns the metrics of the customer-cart snapshot queue, for registration.
func (s *Service) Collectors() []prometheus.Collector { return s.snaps.collectors() }

// Collectors returns the metrics of the preferences write-behind queue, for registration.
func (p *Preferences) Collectors() []prometheus.Collector { return p.wb.collectors() }
