package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRedisBenchmarkCSV(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"EVALSHA 8cd0 1 k 1","37174.72","1.082","0.408","0.999","1.679","3.775","5.727"
`
	r, err := parseRedisBenchmarkCSV(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 37174.72 || r.P50ms != 0.999 || r.P99ms != 3.775 || r.MaxMs != 5.727 || r.MeanMs != 1.082 {
		t.Fatalf("parsed %+v", r)
	}
	for _, bad := range []string{"", `"test","rps"`, "ERR unknown command\n", `"test","rps"` + "\n" + `"x","0"`} {
		if _, err := parseRedisBenchmarkCSV(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func TestNewClientOnlyLoopback(t *testing.T) {
	for _, base := range []string{"http://127.0.0.1:8080", "http://[::1]:8080"} {
		if _, err := NewClient(base, 1, ""); err != nil {
			t.Fatalf("%s refused: %v", base, err)
		}
	}
	for _, base := range []string{"http://10.0.0.1:8080", "http://example.com", "http://localhost.evil.com:80", "::"} {
		if _, err := NewClient(base, 1, ""); err == nil {
			t.Fatalf("%s accepted", base)
		}
	}
}

func TestHashTagAndPatterns(t *testing.T) {
	tests := map[string]string{
		"p:cart:{session:abc}":   "session:abc",
		"p:inv:{v1}:holds":       "v1",
		"p:catalog:gen":          "",
		"p:broken:{unterminated": "",
	}
	for key, want := range tests {
		if got := hashTag(key); got != want {
			t.Errorf("hashTag(%q) = %q, want %q", key, got, want)
		}
	}
	got := keyPatterns("p:", []string{"p:inv:{v1}:holds", "p:inv:{v2}:holds", "p:cart:{session:abc}", "p:inv:{v1}:avail"})
	if got != "inv:{*}:holds, cart:{session:*}, inv:{*}:avail" {
		t.Fatalf("keyPatterns = %q", got)
	}
	idx := keyIndex{byTag: map[string][]string{"session:abc": {"p:cart:{session:abc}"}, "abc": {"p:sess:{abc}"}}}
	if ks := idx.keysFor("abc"); len(ks) != 1 || ks[0] != "p:sess:{abc}" {
		t.Fatalf("keysFor exact = %v", ks)
	}
	if ks := idx.keysFor("session:abc"); len(ks) != 1 {
		t.Fatalf("keysFor = %v", ks)
	}
}

func TestEscapeGlob(t *testing.T) {
	if got := escapeGlob(`a*b?[c]\`); got != `a\*b\?\[c\]\\` {
		t.Fatalf("escapeGlob = %q", got)
	}
}

// TestReportWrite: the report is written as JSON that reads back and as Markdown whose
// ratio rows and verdicts are there.
func TestReportWrite(t *testing.T) {
	healthz := Result{Name: "baseline: GET /healthz", RPS: 10000, Requests: 100}
	warm := Result{Name: "catalog storm warm", RPS: 6000, Requests: 100, P99ms: 4.2, Concurrency: 64}
	rep := &Report{Date: "2026-11-23T00:00:00Z", Quick: true, Baselines: []Result{healthz}, Scenarios: []Result{warm}}
	x := newRatio("product GET warm / GET /healthz", &warm, &healthz, 0.7)
	if x.Withheld != "" || x.Value != 0.6 || x.Met == nil || *x.Met {
		t.Fatalf("ratio %+v", x)
	}
	if !strings.Contains(x.Line(), "ratio") || !strings.Contains(x.Line(), "NOT MET") {
		t.Fatalf("line %q", x.Line())
	}
	// No ratio from a figure with errors, from a zero baseline, or from a missing side;
	// a target on such a ratio is not met.
	erred := warm
	erred.Errors = 3
	for name, c := range map[string]struct{ s, b *Result }{
		"errors in the scenario": {&erred, &healthz},
		"errors in the baseline": {&healthz, &erred},
		"zero baseline":          {&warm, &Result{}},
		"missing scenario":       {nil, &healthz},
	} {
		y := newRatio(name, c.s, c.b, 0.5)
		if y.Withheld == "" || y.Value != 0 || y.Met == nil || *y.Met || !strings.Contains(y.Line(), "none") {
			t.Errorf("%s: ratio %+v, line %q", name, y, y.Line())
		}
	}
	y := newRatio("erred", &erred, &healthz, 0)
	rep.Ratios = append(rep.Ratios, y)
	rep.Scenarios = append(rep.Scenarios, erred)
	rep.Ratios = append(rep.Ratios, x)
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Ratios) != 2 || back.Ratios[1].Value != 0.6 || back.Ratios[0].Withheld == "" || !back.Quick {
		t.Fatalf("read back %+v", back)
	}
	md, err := os.ReadFile(filepath.Join(dir, "latest.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| product GET warm / GET /healthz | 0.600 |", "**not met**", "quick (BENCH_QUICK=1",
		"| erred | none: scenario had 3 errors |", "## Figures with errors (no ratio)"} {
		if !strings.Contains(string(md), want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestFloorNotes: the floors give each request kind its least machine time, and the notes
// say whether a target lies above the floor (out of reach) or within it; a floor with
// errors gives no note.
func TestFloorNotes(t *testing.T) {
	res := func(rps float64) *Result { return &Result{RPS: rps, Requests: 100} }
	r := &runner{rep: &Report{}}
	// /healthz 100 µs; a Redis round trip adds 100 µs (5,000/s); a commit adds 300 µs (2,000/s).
	r.healthz, r.floorRedis, r.floorCommit = res(10_000), res(5_000), res(2_000)
	r.cartEmpty, r.cart20, r.churn = res(3_000), res(2_000), res(1_500)
	r.pgCommits = res(5_000)
	r.creation = res(600)
	r.creation.RedisPerOp = 4 // 100 + 400 + 300 µs: a floor of 1,250/s; target 0.35 × 5,000 = 1,750/s
	r.journey = res(100)
	r.journey.RedisPerOp = 2 // 400 + 200 + 900 µs per 4 requests: 2,667 req/s; target 1,000 req/s
	r.floorNotes()
	all := strings.Join(r.rep.Notes, "\n")
	for _, want := range []string{
		"the HTTP exchange of /healthz 100 µs; one Redis round trip adds 100 µs; one PostgreSQL commit adds 300 µs",
		"target 0.4 × /healthz is 4000 req/s; the cheapest cart request (GET of an empty cart, one round trip) reached 3000 req/s, so the target is above it",
		"checkout creation: 4.0 Redis round trips (counted) and 1 commit per operation cost at least 800 µs, a floor of 1250 req/s; the target (0.35 × PostgreSQL commits) is 1750 req/s, above the floor",
		"full journey (4 requests): 2.0 Redis round trips (counted) and 3 commits per operation cost at least 1500 µs, a floor of 2667 req/s; the target (requests ≥ 0.1 × /healthz) is 1000 req/s, 38 % of the floor: reachable only if everything else (scripts, statements, pricing, JSON) adds at most 167 % to the floor's time",
		"Measured: 400 req/s, 15 % of the floor",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("notes lack %q:\n%s", want, all)
		}
	}
	r = &runner{rep: &Report{}}
	r.healthz, r.floorRedis, r.floorCommit = res(10_000), res(5_000), res(2_000)
	r.floorCommit.Errors = 1
	r.floorNotes()
	if len(r.rep.Notes) != 0 {
		t.Fatalf("notes from a floor with errors: %v", r.rep.Notes)
	}
}
