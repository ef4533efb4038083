// Package tracing is the service's OpenTelemetry tracing: an OTLP exporter configured by
// the standard OTEL_* variables, spans for HTTP (otelecho), PostgreSQL (otelpgx), Redis
// (redisotel) and one span per Lua script call named after the script, W3C traceparent
// propagation in and out, and trace_id/span_id on every log line written with a span's
// context. Tracing is off unless an OTLP endpoint is configured; off, none of it is
// installed, so it costs nothing.
package tracing

import (
	"context"
	"crypto/sha1" //nolint:gosec // Redis names scripts by their SHA-1
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"commerce/scripts/lua"
)

// InstrumentationName names the tracer of the service's own spans (Lua scripts).
const InstrumentationName = "commerce"

// Propagator is W3C trace context and baggage.
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// NewOTLP returns a tracer provider exporting over OTLP/HTTP, configured by the standard
// variables the SDK reads itself: OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION,
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and _ARG (default
// parentbased_always_on), OTEL_BSP_* for the batch processor. Shut it down to flush.
func NewOTLP(ctx context.Context, serviceName string) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", serviceName)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// FromEnv last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if m, err := resource.Merge(res, env); err == nil {
			res = m
		}
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// Echo returns the HTTP middleware: a server span per request named after its route (the
// incoming traceparent is its parent), and the response's traceparent header naming that
// span, so a caller can find the trace of any answer.
func Echo(tp trace.TracerProvider, service string) []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{
		otelecho.Middleware(service, otelecho.WithTracerProvider(tp), otelecho.WithPropagators(Propagator)),
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				Propagator.Inject(c.Request().Context(), propagation.HeaderCarrier(c.Response().Header()))
				return next(c)
			}
		},
	}
}

// PgxTracer returns the PostgreSQL tracer: a span per query, batch, copy and connect.
func PgxTracer(tp trace.TracerProvider) pgx.QueryTracer {
	return otelpgx.NewTracer(otelpgx.WithTracerProvider(tp))
}

// InstrumentRedis adds a span per command (redisotel) and, around every script call, a
// span "lua <script>" named after the script.
func InstrumentRedis(rdb redis.UniversalClient, tp trace.TracerProvider) error {
	rdb.AddHook(luaHook{tracer: tp.Tracer(InstrumentationName)})
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tp)); err != nil {
		return fmt.Errorf("tracing: redis: %w", err)
	}
	return nil
}

// scriptLibs are the libraries callers give lua.Source besides the base one
// (inventory's and cart's scripts are built with theirs).
var scriptLibs = []string{"inv_lib", "cart_lib"}

// scriptNames maps the SHA-1 of every script text the service sends to the script's name:
// each embedded script alone and with each of scriptLibs.
var scriptNames = func() map[string]string {
	m := map[string]string{}
	sum := func(src string) string { h := sha1.Sum([]byte(src)); return hex.EncodeToString(h[:]) } //nolint:gosec
	for _, n := range lua.Names() {
		m[sum(lua.Source(n))] = n
		for _, lib := range scriptLibs {
			m[sum(lua.Source(n, lib))] = n
		}
	}
	return m
}()

// ScriptName returns the name of the script with this SHA-1, or "unknown".
func ScriptName(sha string) string {
	if n, ok := scriptNames[strings.ToLower(sha)]; ok {
		return n
	}
	return "unknown"
}

// luaHook starts a span named after the script around EVALSHA/EVAL calls.
type luaHook struct{ tracer trace.Tracer }

func (luaHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (luaHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h luaHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := strings.ToLower(cmd.Name())
		if name != "evalsha" && name != "eval" && name != "evalsha_ro" && name != "eval_ro" {
			return next(ctx, cmd)
		}
		script := "unknown"
		if args := cmd.Args(); len(args) > 1 {
			if s, ok := args[1].(string); ok {
				if strings.HasPrefix(name, "evalsha") {
					script = ScriptName(s)
				} else {
					h := sha1.Sum([]byte(s)) //nolint:gosec
					script = ScriptName(hex.EncodeToString(h[:]))
				}
			}
		}
		ctx, span := h.tracer.Start(ctx, "lua "+script, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system", "redis"), attribute.String("redis.script", script)))
		defer span.End()
		err := next(ctx, cmd)
		if err != nil && err != redis.Nil && !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}

// LogHandler adds trace_id and span_id to every record logged with the context of a
// recording or sampled span.
type LogHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h LogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h LogHandler) WithGroup(name string) slog.Handler { return LogHandler{h.Handler.WithGroup(name)} }

// SetGlobals makes tp and the W3C propagator the process defaults (for libraries that use
// the globals).
func SetGlobals(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator)
}
