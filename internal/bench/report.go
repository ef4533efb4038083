package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Report is everything one bench run measured; it is written as latest.json and latest.md.
type Report struct {
	Date      string         `json:"date"`
	Quick     bool           `json:"quick"`
	Machine   Machine        `json:"machine"`
	Settings  Settings       `json:"settings"`
	Baselines []Result       `json:"baselines"`
	Scenarios []Result       `json:"scenarios"`
	Setup     []Result       `json:"setup,omitempty"`
	FlashSale *FlashSale     `json:"flash_sale,omitempty"`
	Ratios    []Ratio        `json:"ratios"`
	Targets   []Target       `json:"targets"`
	Memory    []MemoryFigure `json:"memory"`
	// Scale holds the scale curves: costs measured at growing sizes, with their growth.
	Scale []ScaleCurve `json:"scale,omitempty"`
	// Failed lists the steps that could not be measured, with the reason.
	Failed   []string `json:"failed,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	TotalSec float64  `json:"total_s"`
}

// Machine describes where the figures come from.
type Machine struct {
	NProc       int    `json:"nproc"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	MemTotal    string `json:"mem_total"`
	CPU         string `json:"cpu,omitempty"`
	GoVersion   string `json:"go_version"`
	OSArch      string `json:"os_arch"`
	Redis       string `json:"redis_version"`
	Postgres    string `json:"postgres_version"`
	RedisServer string `json:"redis_server"`
	// LoadAvg is /proc/loadavg at the start and at the end of the run: the machine may be
	// shared, and a load above nproc means the figures are depressed.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
}

// Settings are the knobs of the run, for reproduction.
type Settings struct {
	Concurrency      int     `json:"concurrency"`
	PhaseSec         float64 `json:"phase_s"`
	WarmupSec        float64 `json:"warmup_s"`
	Products         int     `json:"products"`
	VariantsPer      int     `json:"variants_per_product"`
	FlashShoppers    int     `json:"flash_shoppers"`
	FlashStock       int64   `json:"flash_stock"`
	CreationShoppers int     `json:"creation_shoppers"`
	Carts            int     `json:"carts"`
	RedisBenchmarkN  int     `json:"redis_benchmark_n"`
	PGPool           int32   `json:"pg_pool_baseline"`
	AppPGMaxConns    int32   `json:"app_pg_max_conns"`
	AppRedisPool     int     `json:"app_redis_pool"`
	RateLimitPerSec  int     `json:"rate_limit_per_second"`
	SessionsPerMin   int     `json:"sessions_per_minute"`
	Database         string  `json:"database"`
	RedisPrefix      string  `json:"redis_prefix"`
}

// Ratio compares a scenario with its baseline.
type Ratio struct {
	Name        string  `json:"name"`
	Scenario    string  `json:"scenario"`
	Baseline    string  `json:"baseline"`
	ScenarioRPS float64 `json:"scenario_rps"`
	BaselineRPS float64 `json:"baseline_rps"`
	Value       float64 `json:"value"`
	Target      float64 `json:"target,omitempty"` // minimum wanted; 0 = informative only
	Met         *bool   `json:"met,omitempty"`
	// Withheld says why there is no value: a side was not measured or had errors.
	Withheld string `json:"withheld,omitempty"`
}

// Line is the printed form; it always contains the word "ratio".
func (r Ratio) Line() string {
	s := fmt.Sprintf("ratio %-52s %6.3f  (%.0f / %.0f req/s)", r.Name, r.Value, r.ScenarioRPS, r.BaselineRPS)
	if r.Withheld != "" {
		s = fmt.Sprintf("ratio %-52s   none  (%s)", r.Name, r.Withheld)
	}
	if r.Target > 0 {
		s += fmt.Sprintf("  target ≥ %g: %s", r.Target, metWord(r.Met))
	}
	return s
}

// Target is a figure with a bound that is not a ratio (p99 latency).
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Bound string  `json:"bound"`
	Met   bool    `json:"met"`
}

// Line is the printed form.
func (t Target) Line() string {
	return fmt.Sprintf("target %-51s %6.2f  (%s): %s", t.Name, t.Value, t.Bound, metWord(&t.Met))
}

func metWord(m *bool) string {
	switch {
	case m == nil:
		return "n/a"
	case *m:
		return "MET"
	}
	return "NOT MET"
}

// newRatio compares scenario with baseline. The ratio is withheld (no value, a target
// not met) when either side is missing, measured nothing or had any error: a figure with
// errors is not a figure.
// unusable says why x (named side) gives no figure: not measured, errors, or nothing
// measured; "" when it is usable.
func unusable(side string, x *Result) string {
	switch {
	case x == nil:
		return side + " not measured"
	case x.Errors > 0:
		return fmt.Sprintf("%s had %d errors", side, x.Errors)
	case x.Requests == 0 || x.RPS <= 0:
		return side + " measured nothing"
	}
	return ""
}

func newRatio(name string, scenario, baseline *Result, target float64) Ratio {
	r := Ratio{Name: name, Target: target}
	if w := unusable("scenario", scenario); w != "" {
		r.Withheld = w
	} else if w := unusable("baseline", baseline); w != "" {
		r.Withheld = w
	}
	if scenario != nil {
		r.Scenario, r.ScenarioRPS = scenario.Name, scenario.RPS
	}
	if baseline != nil {
		r.Baseline, r.BaselineRPS = baseline.Name, baseline.RPS
	}
	if r.Withheld == "" {
		r.Value = scenario.RPS / baseline.RPS
	}
	if target > 0 {
		met := r.Withheld == "" && r.Value >= target
		r.Met = &met
	}
	return r
}

// Erred lists the measured figures (baselines, scenarios, setup phases) that had errors.
func (r *Report) Erred() []string {
	var out []string
	for _, rs := range [][]Result{r.Baselines, r.Scenarios, r.Setup} {
		for _, x := range rs {
			if x.Errors > 0 {
				out = append(out, fmt.Sprintf("%s: %d errors (e.g. %s)", x.Name, x.Errors, strings.Join(x.ErrorSamples, "; ")))
			}
		}
	}
	return out
}

// describeMachine collects the machine and service versions.
func describeMachine(ctx context.Context, rdb redis.UniversalClient, pool *pgxpool.Pool, redisAddr string) Machine {
	m := Machine{NProc: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OSArch: runtime.GOOS + "/" + runtime.GOARCH, RedisServer: redisAddr}
	m.MemTotal = humanKB(procField("/proc/meminfo", "MemTotal"))
	m.CPU = procField("/proc/cpuinfo", "model name")
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	_ = pool.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres)
	m.LoadAvgStart = loadAvg()
	return m
}

// load1 returns the 1-minute load average ("" when unknown).
func load1() string {
	f := strings.Fields(loadAvg())
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// loadAvg returns the 1, 5 and 15 minute load averages ("" when unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// humanKB turns /proc/meminfo's "24683620 kB" into "23.5 GiB".
func humanKB(v string) string {
	n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 64)
	if err != nil || n <= 0 {
		return v
	}
	return strconv.FormatFloat(n/(1<<20), 'f', 1, 64) + " GiB"
}

func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Write stores the report as dir/latest.json and dir/latest.md.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	r.Markdown(&b)
	return os.WriteFile(filepath.Join(dir, "latest.md"), []byte(b.String()), 0o644)
}

// Markdown renders the report.
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	mode := "full"
	if r.Quick {
		mode = "quick (BENCH_QUICK=1: shorter phases, fewer products and shoppers)"
	}
	p("# commerce-bench: %s\n\n", r.Date)
	p("Mode: %s. Total run time %.1f s.\n\n", mode, r.TotalSec)
	m := r.Machine
	p("Machine: %d CPU (%s), GOMAXPROCS %d, memory %s, %s, %s; Redis %s at %s; PostgreSQL %s. ",
		m.NProc, m.CPU, m.GOMAXPROCS, m.MemTotal, m.GoVersion, m.OSArch, m.Redis, m.RedisServer, m.Postgres)
	p("The load generator, the service, Redis and PostgreSQL all share these CPUs. Load average at start %s, at end %s.\n\n",
		orDash(m.LoadAvgStart), orDash(m.LoadAvgEnd))
	s := r.Settings
	p("Settings: %d concurrent clients (closed loop), %.0f s per phase after %.1f s warm-up, %d products × %d variants, "+
		"flash sale %d shoppers on %d units, checkout creation %d shoppers, %d churn carts, redis-benchmark -n %d; "+
		"app PG pool %d, Redis pool %d; rate limits raised to %d req/s per caller and %d sessions/min so they never answer 429.\n\n",
		s.Concurrency, s.PhaseSec, s.WarmupSec, s.Products, s.VariantsPer, s.FlashShoppers, s.FlashStock, s.CreationShoppers,
		s.Carts, s.RedisBenchmarkN, s.AppPGMaxConns, s.AppRedisPool, s.RateLimitPerSec, s.SessionsPerMin)

	p("## Ratios\n\n| ratio | value | scenario req/s | baseline req/s | target | |\n|---|---:|---:|---:|---|---|\n")
	for _, x := range r.Ratios {
		t := ""
		if x.Target > 0 {
			t = fmt.Sprintf("≥ %g", x.Target)
		}
		if x.Withheld != "" {
			p("| %s | none: %s | | | %s | %s |\n", x.Name, x.Withheld, t, metCell(x.Met))
			continue
		}
		p("| %s | %.3f | %.0f | %.0f | %s | %s |\n", x.Name, x.Value, x.ScenarioRPS, x.BaselineRPS, t, metCell(x.Met))
	}
	for _, t := range r.Targets {
		p("| %s | %.2f | | | %s | %s |\n", t.Name, t.Value, t.Bound, metCell(&t.Met))
	}
	table := func(title string, rs []Result) {
		if len(rs) == 0 {
			return
		}
		p("\n## %s\n\n| run | clients | req/s | p50 ms | p99 ms | p99.9 ms | requests | errors | load | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n", title)
		for _, x := range rs {
			note := x.Note
			if len(x.ErrorSamples) > 0 {
				note = strings.TrimSpace(note + " errors e.g.: " + x.ErrorSamples[0])
			}
			p("| %s | %d | %.0f | %.2f | %.2f | %s | %d | %d | %s | %s |\n", x.Name, x.Concurrency, x.RPS, x.P50ms, x.P99ms,
				strings.TrimSpace(x.p999()), x.Requests, x.Errors, x.Load1, strings.ReplaceAll(note, "|", "\\|"))
		}
	}
	p("\nThe load column is the machine's 1-minute load average at the end of each run; above %d, other processes competed for the CPUs.\n", m.NProc)
	table("Baselines", r.Baselines)
	table("Scenarios", r.Scenarios)
	if f := r.FlashSale; f != nil {
		verdict := "OK"
		if !f.OK {
			verdict = "FAILED"
		}
		p("\n## Flash sale verification\n\n%s: %s\n", verdict, f.Detail)
	}
	if len(r.Memory) > 0 {
		p("\n## Redis memory\n\n| what | bytes | keys | units | method |\n|---|---:|---:|---:|---|\n")
		for _, x := range r.Memory {
			p("| %s | %.0f | %d | %d | %s |\n", x.What, x.Bytes, x.Keys, x.Units, x.Method)
		}
	}
	if len(r.Scale) > 0 {
		p("\n## Scale curves\n\nEach cost measured at growing sizes in this run; the growth is read off the points.\n")
		for _, c := range r.Scale {
			p("\n### %s\n\nGrowth: **%s**. Why: %s.\n\n| %s | p50 ms | p99 ms | ops | seconds | µs per item | Redis calls ≥ 10 ms | errors | load | note |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
				c.Name, c.Growth, c.Why, c.SizeOf)
			for _, x := range c.Points {
				slow := ""
				if x.SlowCalls != nil {
					slow = strconv.Itoa(*x.SlowCalls)
				}
				p("| %d | %s | %s | %s | %s | %s | %s | %d | %s | %s |\n", x.Size, cell(x.P50ms, 2), cell(x.P99ms, 2),
					cell(float64(x.Ops), 0), cell(x.Seconds, 2), cell(x.PerItemUs, 1), slow, x.Errors, x.Load1,
					strings.ReplaceAll(x.Note, "|", "\\|"))
			}
		}
	}
	table("Setup phases (not scenarios)", r.Setup)
	if len(r.Failed) > 0 {
		p("\n## Failed steps (not measured)\n\n")
		for _, x := range r.Failed {
			p("- %s\n", x)
		}
	}
	if erred := r.Erred(); len(erred) > 0 {
		p("\n## Figures with errors (no ratio)\n\n")
		for _, x := range erred {
			p("- %s\n", x)
		}
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, x := range r.Notes {
			p("- %s\n", x)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func metCell(m *bool) string {
	switch {
	case m == nil:
		return ""
	case *m:
		return "met"
	}
	return "**not met**"
}

// stampNow is the report date.
func stampNow() string { return time.Now().UTC().Format(time.RFC3339) }

// cell prints v with prec decimals, or nothing for 0.
func cell(v float64, prec int) string {
	if v == 0 {
		return ""
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}
