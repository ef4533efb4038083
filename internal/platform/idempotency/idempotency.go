// Package idempotency makes a write safe to retry with an Idempotency-Key header, with
// Stripe's rules: the first response to a key is stored and replayed byte for byte with
// its status; the same key with another request is 422 idempotency_key_reused; the same
// key while the first request runs is 409 idempotency_key_in_use. Keys are per caller
// and per scope (route).
//
// Records live in Redis: <space>idem:{<scope>:<caller hash>}:<key hash>, a hash that is
// "in flight" for Options.InFlightTTL (the request's deadline plus a margin, so a
// process that died mid-request frees the key quickly) and then "done" for Options.TTL.
// 5xx answers and answers that describe a passing situation are not stored: the record
// is deleted and the client may retry.
//
// Both the stored size and the number of keys are bounded:
//   - a response longer than Options.MaxResponseBytes is not kept; its record stays done
//     (the request is not run twice) and a replay answers 409
//     idempotency_response_too_large, telling the client to read the resource instead;
//   - a caller holds at most Options.MaxKeysPerCaller live keys per scope (an index
//     <space>idem:{<scope>:<caller hash>} counts them); a new key beyond that answers 429
//     idempotency_keys_exhausted with Retry-After until the caller's oldest key expires.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/fault"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

// Header names.
const (
	Header         = "Idempotency-Key"
	HeaderReplayed = "Idempotent-Replayed"
)

// MaxKeyLen is the longest Idempotency-Key accepted.
const MaxKeyLen = 255

// Error codes of this package's answers (the contract's error shape).
const (
	CodeResponseTooLarge = "idempotency_response_too_large"
	CodeKeysExhausted    = "idempotency_keys_exhausted"
)

// Errors of Begin.
var (
	// ErrInUse: the first request with this key is still running (409).
	ErrInUse = errors.New("idempotency: key in use by a running request")
	// ErrReused: the key was used with a different request (422).
	ErrReused = errors.New("idempotency: key reused with a different request")
	// ErrKey: the key is empty, longer than 255 characters or not printable ASCII (400).
	ErrKey = errors.New("idempotency: malformed key")
	// ErrTooManyKeys: the caller holds MaxKeysPerCaller live keys in this scope (429).
	ErrTooManyKeys = errors.New("idempotency: too many live keys for this caller")
)

// Options bound the records. Zero values take the defaults.
type Options struct {
	// TTL is how long a stored response is replayed (default 24 h).
	TTL time.Duration
	// InFlightTTL is how long a key stays in flight when its request never ends (its
	// process died): the request deadline plus a margin (default 35 s).
	InFlightTTL time.Duration
	// MaxResponseBytes is the largest response body stored for replay (default 64 KiB).
	MaxResponseBytes int
	// MaxKeysPerCaller is the most live keys one caller may hold in one scope (default
	// 1000).
	MaxKeysPerCaller int
	// Logger receives failures to store or release a record (default: discarded).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = 24 * time.Hour
	}
	if o.InFlightTTL <= 0 {
		o.InFlightTTL = 35 * time.Second
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 64 << 10
	}
	if o.MaxKeysPerCaller <= 0 {
		o.MaxKeysPerCaller = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store keeps idempotency records in Redis. Safe for concurrent use.
type Store struct {
	rdb           redis.UniversalClient
	space         rkey.Space
	opts          Options
	begin, finish *redis.Script
	outcomes      *prometheus.CounterVec
}

// New returns a Store under space. Its counter commerce_idempotency_total{outcome} is
// registered on reg (nil: not registered); an AlreadyRegisteredError is tolerated.
func New(rdb redis.UniversalClient, space rkey.Space, reg prometheus.Registerer, opts Options) *Store {
	s := &Store{rdb: rdb, space: space, opts: opts.withDefaults(),
		begin: redis.NewScript(lua.Source("idem_begin")), finish: redis.NewScript(lua.Source("idem_finish")),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commerce_idempotency_total",
			Help: "Idempotency-Key outcomes: begin, replay, in_flight, reused, limit."}, []string{"outcome"})}
	if reg != nil {
		if err := reg.Register(s.outcomes); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					s.outcomes = c
				}
			}
		}
	}
	return s
}

// Options returns the effective options.
func (s *Store) Options() Options { return s.opts }

// LoadScripts loads the Lua scripts (they are also loaded lazily).
func (s *Store) LoadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{s.begin, s.finish} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fault.Unavailable(fmt.Errorf("idempotency: load scripts: %w", err))
		}
	}
	return nil
}

// ValidKey reports whether key has 1–255 printable ASCII characters.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// Response is the first response to an idempotent request, replayed byte for byte.
// TooLarge means it was not kept (longer than MaxResponseBytes); Body is then empty.
type Response struct {
	Status   int
	Body     []byte
	TooLarge bool
}

// Request is an idempotent request in flight: Finish it with its response, or Abort it
// so the client may retry.
type Request struct {
	s          *Store
	key, index string
	member     string
	owner      string
}

// LimitError is ErrTooManyKeys with the time until the caller's oldest key expires.
type LimitError struct{ RetryAfter time.Duration }

func (e *LimitError) Error() string { return ErrTooManyKeys.Error() }

// Unwrap makes errors.Is(err, ErrTooManyKeys) true.
func (e *LimitError) Unwrap() error { return ErrTooManyKeys }

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tooLargeMarker is the stored status of a response too large to keep.
const tooLargeMarker = "too_large"

// Begin starts the request identified by (scope, caller, key); fingerprint identifies
// the request itself (route, path ids and normalised body). It returns either a Request
// to finish, or the stored response of the first request with this key. Errors: ErrKey,
// ErrInUse, ErrReused, *LimitError (ErrTooManyKeys), or a Redis failure (marked
// unavailable).
func (s *Store) Begin(ctx context.Context, scope, caller, key, fingerprint string) (*Request, *Response, error) {
	if !ValidKey(key) {
		return nil, nil, ErrKey
	}
	owner := newToken()
	index := s.space.Key("idem:{", scope, ":", hash(caller)[:32], "}")
	member := hash(key)
	rk := index + ":" + member
	v, err := s.begin.Run(ctx, s.rdb, []string{rk, index}, hash(fingerprint), owner, s.opts.InFlightTTL.Milliseconds(),
		member, s.opts.MaxKeysPerCaller, s.opts.TTL.Milliseconds()).Slice()
	if err != nil {
		return nil, nil, fault.Unavailable(fmt.Errorf("idempotency begin: %w", err))
	}
	if len(v) == 0 {
		return nil, nil, errors.New("idempotency begin: empty reply")
	}
	outcome, _ := v[0].(string)
	switch outcome {
	case "BEGIN":
		s.outcomes.WithLabelValues("begin").Inc()
		return &Request{s: s, key: rk, index: index, member: member, owner: owner}, nil, nil
	case "IN_FLIGHT":
		s.outcomes.WithLabelValues("in_flight").Inc()
		return nil, nil, ErrInUse
	case "MISMATCH":
		s.outcomes.WithLabelValues("reused").Inc()
		return nil, nil, ErrReused
	case "LIMIT":
		s.outcomes.WithLabelValues("limit").Inc()
		return nil, nil, &LimitError{RetryAfter: s.untilOldestExpires(ctx, index)}
	case "DONE":
		if len(v) != 3 {
			return nil, nil, fmt.Errorf("idempotency begin: unexpected reply %v", v)
		}
		s.outcomes.WithLabelValues("replay").Inc()
		st, _ := v[1].(string)
		b, _ := v[2].(string)
		if st == tooLargeMarker {
			return nil, &Response{TooLarge: true}, nil
		}
		status, err := strconv.Atoi(st)
		if err != nil {
			return nil, nil, fmt.Errorf("idempotency begin: bad stored status %q", st)
		}
		return nil, &Response{Status: status, Body: []byte(b)}, nil
	}
	return nil, nil, fmt.Errorf("idempotency begin: unknown outcome %q", outcome)
}

// untilOldestExpires is how long until the caller's oldest live key expires (at least
// 1 s; 1 s when it cannot be read).
func (s *Store) untilOldestExpires(ctx context.Context, index string) time.Duration {
	z, err := s.rdb.ZRangeWithScores(ctx, index, 0, 0).Result()
	if err != nil || len(z) == 0 {
		return time.Second
	}
	d := time.Until(time.UnixMilli(int64(z[0].Score)))
	return max(d, time.Second)
}

// Finish stores the response for TTL (a body over MaxResponseBytes is not kept: see the
// package doc). A failure is logged and the record dropped, so a retry runs the request
// again.
func (r *Request) Finish(ctx context.Context, status int, body []byte) {
	ctx, cancel := detach(ctx)
	defer cancel()
	st := strconv.Itoa(status)
	if len(body) > r.s.opts.MaxResponseBytes {
		r.s.opts.Logger.Warn("idempotency: response too large to store", slog.Int("bytes", len(body)),
			slog.Int("max", r.s.opts.MaxResponseBytes))
		st, body = tooLargeMarker, nil
	}
	err := r.s.finish.Run(ctx, r.s.rdb, []string{r.key, r.index}, r.owner, "store", st, body,
		r.s.opts.TTL.Milliseconds(), r.member).Err()
	if err != nil {
		r.s.opts.Logger.Warn("idempotency: store response", slog.String("error", err.Error()))
		r.Abort(ctx)
	}
}

// Abort deletes the in-flight record (5xx, dependency down): the client may retry.
func (r *Request) Abort(ctx context.Context) {
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := r.s.finish.Run(ctx, r.s.rdb, []string{r.key, r.index}, r.owner, "abort", 0, "", 0, r.member).Err(); err != nil {
		r.s.opts.Logger.Warn("idempotency: abort", slog.String("error", err.Error()))
	}
}

// detach keeps the caller's values but not its cancellation, for a few seconds: a
// record is finished even when the client hung up.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Handler describes one idempotent route for Handle.
type Handler struct {
	// Scope names the route in the record's key (e.g. "inv-adjust").
	Scope string
	// Caller identifies who calls (a shopper, "admin"); keys are per caller.
	Caller string
	// Fingerprint identifies the request: route, path ids and normalised body.
	Fingerprint string
	// Run does the work and returns the status and the body to send as JSON.
	Run func(ctx context.Context) (int, any, error)
	// ToHTTP maps the domain's errors to *httpx.Error (nil: httpx.Classify alone).
	ToHTTP func(error) error
	// Passing reports answers that describe a passing situation, which are not stored
	// (nil: none besides 5xx and answers with Retry-After).
	Passing func(*httpx.Error) bool
}

// Handle runs h for an echo request. Without an Idempotency-Key header it just runs.
// With one, the first response is stored and replayed (with Idempotent-Replayed: true);
// 5xx, answers with Retry-After and Passing answers are not stored.
func (s *Store) Handle(c echo.Context, h Handler) error {
	ctx := c.Request().Context()
	toHTTP := h.ToHTTP
	if toHTTP == nil {
		toHTTP = func(err error) error { return err }
	}
	vals, present := c.Request().Header[textproto.CanonicalMIMEHeaderKey(Header)]
	if !present {
		status, body, err := h.Run(ctx)
		if err != nil {
			return toHTTP(err)
		}
		return c.JSON(status, body)
	}
	if err := CheckHeader(c); err != nil {
		return err
	}
	rec, stored, err := s.Begin(ctx, h.Scope, h.Caller, vals[0], h.Fingerprint)
	if err != nil {
		return HTTPError(err)
	}
	if stored != nil {
		c.Response().Header().Set(HeaderReplayed, "true")
		if stored.TooLarge {
			return httpx.Conflict(CodeResponseTooLarge,
				"the request with this Idempotency-Key was done, but its response is too large to replay; read the resource instead")
		}
		return c.Blob(stored.Status, echo.MIMEApplicationJSON, stored.Body)
	}
	status, body, err := h.Run(ctx)
	if err != nil {
		e := httpx.Classify(toHTTP(err))
		if e.Status >= 499 || e.Status < 400 || e.RetryAfter > 0 || (h.Passing != nil && h.Passing(e)) {
			rec.Abort(ctx)
			return e
		}
		details := e.Details
		if details == nil {
			details = map[string]any{}
		}
		status = e.Status
		body = errorJSON{Error: errorPayloadJSON{Code: e.Code, Message: e.Message, Details: details}}
	}
	raw, merr := json.Marshal(body)
	if merr != nil {
		rec.Abort(ctx)
		return merr
	}
	raw = append(raw, '\n')
	rec.Finish(ctx, status, raw)
	return c.Blob(status, echo.MIMEApplicationJSON, raw)
}

// CheckHeader returns the 400 that Handle gives a malformed Idempotency-Key (several
// values, empty, over 255 characters or not printable ASCII), or nil when the header is
// absent or well formed. A handler that answers some requests before Handle (a replay
// it can serve without the record) calls it first, so a bad key is refused everywhere.
func CheckHeader(c echo.Context) error {
	vals, present := c.Request().Header[textproto.CanonicalMIMEHeaderKey(Header)]
	if present && (len(vals) != 1 || !ValidKey(vals[0])) {
		return httpx.BadRequest("Idempotency-Key must be 1-255 printable ASCII characters")
	}
	return nil
}

// HTTPError maps Begin's errors to the contract (others pass through).
func HTTPError(err error) error {
	var le *LimitError
	switch {
	case errors.Is(err, ErrInUse):
		return &httpx.Error{Status: http.StatusConflict, Code: httpx.CodeIdemInUse,
			Message: "a request with this Idempotency-Key is still running", Err: err}
	case errors.Is(err, ErrReused):
		return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: httpx.CodeIdemReused,
			Message: "this Idempotency-Key was used with a different request", Err: err}
	case errors.Is(err, ErrKey):
		return httpx.BadRequest("Idempotency-Key must be 1-255 printable ASCII characters")
	case errors.As(err, &le):
		return &httpx.Error{Status: http.StatusTooManyRequests, Code: CodeKeysExhausted,
			Message:    "too many live Idempotency-Keys for this caller; retry later or without a new key",
			RetryAfter: int(math.Ceil(le.RetryAfter.Seconds())), Err: err}
	}
	return err
}

// errorJSON is the contract's error shape (the same as the error funnel renders), for
// responses stored under a key.
type errorJSON struct {
	Error errorPayloadJSON `json:"error"`
}

type errorPayloadJSON struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}
