package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"commerce/internal/catalog"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// spanTree renders the spans of one trace as an indented tree (children by start time).
func spanTree(spans tracetest.SpanStubs) string {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = true
	}
	var roots []tracetest.SpanStub
	for _, s := range spans {
		if p := s.Parent.SpanID(); s.Parent.IsValid() && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(s tracetest.SpanStub, depth int)
	walk = func(s tracetest.SpanStub, depth int) {
		fmt.Fprintf(&b, "%s%s (%s)\n", strings.Repeat("  ", depth), s.Name, s.EndTime.Sub(s.StartTime).Round(time.Microsecond))
		cs := children[s.SpanContext.SpanID()]
		sort.Slice(cs, func(i, j int) bool { return cs[i].StartTime.Before(cs[j].StartTime) })
		for _, c := range cs {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// TestTracingOneCheckoutIsOneTrace: with tracing on (the SDK's in-memory exporter), one
// POST /v1/checkouts makes one trace: the server span continues the caller's traceparent,
// has PostgreSQL and Redis children and a span per Lua script named after it, the answer
// carries a traceparent of the same trace, and the request's log lines carry its
// trace_id and span_id.
func TestTracingOneCheckoutIsOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	logs := &syncBuffer{}
	cfg := testConfig(t)
	cfg.LogLevel = "debug"
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(context.Background(), cfg, log, WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if _, err := a.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	sid := do(t, h, call{method: "POST", path: "/v1/sessions"}).json(t)["session_id"].(string)
	variant := catalog.SeedVariantID("RR-40").String()
	if r := do(t, h, call{method: "POST", path: "/v1/cart/items", body: `{"variant_id":"` + variant + `","quantity":1}`,
		headers: sess(sid)}); r.status != 200 {
		t.Fatalf("cart: %d %s", r.status, r.body)
	}
	exp.Reset()

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := do(t, h, call{method: "POST", path: "/v1/checkouts", body: `{"email":"t@example.com"}`,
		headers: map[string]string{"X-Session-ID": sid, "Idempotency-Key": "trace-1", "traceparent": parent}})
	if r.status != 201 {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	spans := exp.GetSpans()
	traces := map[trace.TraceID]int{}
	var server tracetest.SpanStub
	for _, s := range spans {
		traces[s.SpanContext.TraceID()]++
		if s.SpanKind == trace.SpanKindServer {
			server = s
		}
	}
	if len(traces) != 1 {
		t.Fatalf("one checkout made %d traces: %v", len(traces), traces)
	}
	if server.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		server.Parent.SpanID().String() != "00f067aa0ba902b7" || server.Name != "POST /v1/checkouts" {
		t.Fatalf("server span %q trace %s parent %s: the incoming traceparent was not continued",
			server.Name, server.SpanContext.TraceID(), server.Parent.SpanID())
	}
	tree := spanTree(spans)
	t.Logf("span tree of one POST /v1/checkouts (%d spans):\n%s", len(spans), tree)
	var pg, rd, luaReserve int
	for _, s := range spans {
		switch {
		case strings.HasPrefix(s.Name, "lua "):
			if s.Name == "lua reserve" {
				luaReserve++
			}
		case strings.Contains(s.InstrumentationScope.Name, "otelpgx") || strings.Contains(s.InstrumentationScope.Name, "pgx"):
			pg++
		case strings.Contains(s.InstrumentationScope.Name, "redis"):
			rd++
		}
	}
	if pg == 0 || rd == 0 || luaReserve != 1 || strings.Contains(tree, "lua unknown") {
		t.Fatalf("want PostgreSQL spans, Redis spans and one 'lua reserve': pg %d redis %d lua reserve %d", pg, rd, luaReserve)
	}
	tpOut := r.header.Get("traceparent")
	if !strings.HasPrefix(tpOut, "00-4bf92f3577b34da6a3ce929d0e0e4736-"+server.SpanContext.SpanID().String()) {
		t.Fatalf("response traceparent %q does not name the server span", tpOut)
	}
	// The access log line of the request carries the trace and the server span.
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["route"] != "/v1/checkouts" {
			continue
		}
		found = true
		if m["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || m["span_id"] != server.SpanContext.SpanID().String() {
			t.Fatalf("log line without the trace: %s", line)
		}
	}
	if !found {
		t.Fatalf("no access log line for the checkout in:\n%s", logs.String())
	}
}
