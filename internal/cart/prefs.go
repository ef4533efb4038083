package cart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/resilience"
	"commerce/internal/platform/rkey"
)

// MaxPreferencesBytes is the largest preferences object (compact JSON) a customer may keep.
const MaxPreferencesBytes = 4096

// ErrPreferencesTooLarge is returned by Patch when the merged object would exceed
// MaxPreferencesBytes; nothing is written.
var ErrPreferencesTooLarge = errors.New("cart: preferences exceed 4 KiB")

// PrefsOptions configure Preferences. Zero values take the defaults.
type PrefsOptions struct {
	TTL      time.Duration // sliding lifetime of the Redis copy (default 30 days)
	Queue    int           // bounded write-behind queue (default 4096)
	Batch    int           // rows per PostgreSQL batch (default 200)
	Interval time.Duration // flush period (default 500 ms)
	Logger   *slog.Logger  // default slog.Default()
	// Breaker, when set, guards the Redis reads of Get: while it is open, reads go
	// straight to PostgreSQL instead of waiting for a failing Redis.
	Breaker *resilience.Breaker
}

// Preferences keeps each customer's preferences: a JSON object of at most 4 KiB, in Redis
// first (one hash field per top-level key, so concurrent PATCHes of different keys never
// lose each other), persisted to PostgreSQL behind the write by a bounded queue that
// retries with backoff. Reads fall back to PostgreSQL when Redis misses or is down.
type Preferences struct {
	r     *redisSide
	store store
	opts  PrefsOptions
	wb    *writeBehind[[]byte]
}

// NewPreferences returns the preferences store. Call Start to run the flusher and Stop at
// shutdown (after the HTTP server stopped).
func NewPreferences(rdb redis.UniversalClient, space rkey.Space, pool *pgxpool.Pool, opts PrefsOptions) *Preferences {
	if opts.TTL <= 0 {
		opts.TTL = 30 * 24 * time.Hour
	}
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.Batch <= 0 {
		opts.Batch = 200
	}
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Preferences{r: newRedisSide(rdb, space), store: store{pool: pool}, opts: opts}
	p.wb = newWriteBehind("preferences", opts.Queue, opts.Batch, opts.Interval, true, opts.Logger, p.store.savePrefs)
	return p
}

// Start runs the write-behind flusher.
func (p *Preferences) Start(context.Context) { p.wb.start() }

// Stop writes every pending change to PostgreSQL (retrying with backoff until ctx ends,
// which it then reports) and stops the flusher. A Patch after Stop writes through.
func (p *Preferences) Stop(ctx context.Context) error { return p.wb.stop(ctx) }

// Flush writes every change queued so far.
func (p *Preferences) Flush(ctx context.Context) error { return p.wb.flush(ctx) }

// Get returns customer's preferences as a JSON object ({} when none). It reads Redis and
// falls back to PostgreSQL when Redis misses (restoring the Redis copy) or fails.
// Errors: ErrInvalidOwner; an error when neither store answers.
func (p *Preferences) Get(ctx context.Context, customer string) (json.RawMessage, error) {
	if !rkey.ValidCustomerID(customer) {
		return nil, ErrInvalidOwner
	}
	key := p.r.prefsKey(customer)
	type read struct {
		fields map[string]string
		exists bool
	}
	readRedis := func(ctx context.Context) (read, error) {
		f, ok, err := p.r.readPrefs(ctx, key, p.opts.TTL)
		return read{f, ok}, err
	}
	var (
		r   read
		err error
	)
	if p.opts.Breaker != nil {
		r, err = resilience.Do(p.opts.Breaker, ctx, readRedis)
	} else {
		r, err = readRedis(ctx)
	}
	fields, exists := r.fields, r.exists
	if err != nil {
		// Redis is down or failing: PostgreSQL is the source of truth.
		data, _, _, perr := p.store.loadPrefs(ctx, customer)
		if perr != nil {
			return nil, errors.Join(fmt.Errorf("preferences: redis: %w", err), perr)
		}
		return renderPrefs(encodeFields(data)), nil
	}
	if !exists {
		return p.restore(ctx, customer)
	}
	return renderPrefs(fields), nil
}

// restore copies the PostgreSQL version into Redis (when Redis still misses it) and
// returns it.
func (p *Preferences) restore(ctx context.Context, customer string) (json.RawMessage, error) {
	data, version, _, err := p.store.loadPrefs(ctx, customer)
	if err != nil {
		return nil, err
	}
	fields := encodeFields(data)
	args := []any{version, ""}
	for f, v := range fields {
		args = append(args, f, v)
	}
	if _, err := p.r.run(ctx, p.r.restore, p.r.prefsKey(customer), false, p.opts.TTL, args...); err != nil {
		return nil, fmt.Errorf("preferences: restore: %w", err)
	}
	return renderPrefs(fields), nil
}

// Patch merges patch into customer's preferences shallowly: each top-level key replaces
// the stored one, a null value deletes it. It returns the merged object. The change is in
// Redis when Patch returns and in PostgreSQL shortly after (and at the latest when Stop
// returns). Errors: ErrInvalidOwner, ErrPreferencesTooLarge; a Redis error (then nothing
// changed); a PostgreSQL error when the Redis copy was missing and could not be loaded.
func (p *Preferences) Patch(ctx context.Context, customer string, patch map[string]json.RawMessage) (json.RawMessage, error) {
	if !rkey.ValidCustomerID(customer) {
		return nil, ErrInvalidOwner
	}
	var sets, dels []any
	nset, size := 0, 1 // the keys set are all in the merged object: their size is a lower bound
	for k, v := range patch {
		f := encodeKey(k)
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			dels = append(dels, f)
			continue
		}
		cv, err := compact(v)
		if err != nil {
			return nil, fmt.Errorf("preferences: value of %q: %w", k, err)
		}
		sets = append(sets, f, cv)
		nset++
		size += len(f) + 1 + len(cv) + 1
		if size > MaxPreferencesBytes {
			return nil, ErrPreferencesTooLarge
		}
	}
	args := append(append([]any{MaxPreferencesBytes, nset}, sets...), dels...)
	key := p.r.prefsKey(customer)
	for range 3 {
		rep, err := p.r.run(ctx, p.r.prefsPatch, key, true, p.opts.TTL, args...)
		if err != nil {
			return nil, fmt.Errorf("preferences: %w", err)
		}
		switch rep.code {
		case codeLoadRequired:
			if _, err := p.restore(ctx, customer); err != nil {
				return nil, err
			}
			continue
		case codeTooLarge:
			return nil, ErrPreferencesTooLarge
		case codeOK:
		default:
			return nil, fmt.Errorf("preferences: unexpected code %q", rep.code)
		}
		st, fields, err := parsePrefs(rep.vals)
		if err != nil {
			return nil, err
		}
		out := renderPrefs(fields)
		p.wb.enqueue(ctx, wbItem[[]byte]{key: customer, version: st, value: out})
		return out, nil
	}
	return nil, errors.New("preferences: restore did not converge")
}

// parsePrefs reads {now, field, value, ...}: the version and the JSON fields.
func parsePrefs(vals []any) (version int64, fields map[string]string, err error) {
	if len(vals)%2 != 1 {
		return 0, nil, errors.New("preferences: malformed reply")
	}
	fields = make(map[string]string, len(vals)/2)
	for i := 1; i+1 < len(vals); i += 2 {
		f, _ := vals[i].(string)
		v, _ := vals[i+1].(string)
		switch {
		case strings.HasPrefix(f, `"`):
			fields[f] = v
		case f == fieldUpdatedAt:
			version, _ = toInt(v)
		}
	}
	return version, fields, nil
}

func encodeKey(k string) string {
	b, _ := json.Marshal(k) // a string always encodes
	return string(b)
}

func compact(v json.RawMessage) (string, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

func encodeFields(data map[string]json.RawMessage) map[string]string {
	out := make(map[string]string, len(data))
	for k, v := range data {
		cv, err := compact(v)
		if err != nil {
			continue
		}
		out[encodeKey(k)] = cv
	}
	return out
}

// renderPrefs writes {"k":v,...} with sorted keys: exactly the size cart_prefs_patch.lua
// measures. Hash fields that are not JSON keys are skipped.
func renderPrefs(fields map[string]string) json.RawMessage {
	keys := make([]string, 0, len(fields))
	for f := range fields {
		if strings.HasPrefix(f, `"`) {
			keys = append(keys, f)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f)
		b.WriteByte(':')
		b.WriteString(fields[f])
	}
	b.WriteByte('}')
	return b.Bytes()
}
