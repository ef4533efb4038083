package app

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"commerce/internal/catalog"
)

// discardExporter drops spans (the cost measured is making and batching them).
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkTracing serves a warm GET /v1/products/{id} (Redis and, on a near-cache miss,
// PostgreSQL behind it) with tracing off (no OTLP endpoint: nothing installed, the
// service's normal path), and on (every request sampled, spans batched to an exporter
// that drops them). `make bench BENCH_GO=1` runs it.
func BenchmarkTracing(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"off", nil},
		{"on", []Option{WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{})))}},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := testConfig(b)
			a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close(context.Background())
			if _, err := a.Seed(context.Background()); err != nil {
				b.Fatal(err)
			}
			path := "/v1/products/" + catalog.SeedProductID("red-runner").String()
			h := a.Handler()
			get := func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					b.Fatalf("GET: %d", rec.Code)
				}
			}
			get()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				get()
			}
		})
	}
}
