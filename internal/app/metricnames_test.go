package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oasdiff/yaml"

	"commerce/internal/catalog"
)

// Metric names that Prometheus itself adds to every scrape target; the service does not
// export them.
var scrapeSynthesized = map[string]bool{"up": true, "scrape_duration_seconds": true,
	"scrape_samples_scraped": true, "scrape_series_added": true, "scrape_samples_post_metric_relabeling": true}

// PromQL words that look like metric names but are functions, aggregations, keywords or
// set operators (the subset our rules and panels can use).
var promqlWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group
		by without on ignoring group_left group_right bool and or unless offset
		rate irate increase delta idelta deriv predict_linear histogram_quantile resets changes
		abs ceil floor round clamp clamp_min clamp_max exp ln log2 log10 sqrt sgn
		time timestamp vector scalar absent absent_over_time present_over_time label_replace label_join
		sort sort_desc day_of_month day_of_week hour minute month year days_in_month
		avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time
		stddev_over_time stdvar_over_time last_over_time label_values inf nan`) {
		promqlWords[w] = true
	}
}

var (
	promqlStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promqlRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	grafanaVariable = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?`)
	// label_values(metric, label): the label argument is not a metric.
	labelValuesArg = regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)[^)]*\)`)
)

// promqlMetricNames returns the metric names an expression selects. It is a lexer, not a
// parser: it drops strings, label matchers, range/offset brackets, grouping clauses,
// Grafana variables and numbers, and what is left that is not a PromQL word is a metric.
func promqlMetricNames(expr string) []string {
	expr = grafanaVariable.ReplaceAllString(expr, "")
	expr = labelValuesArg.ReplaceAllString(expr, "$1")
	expr = promqlStrings.ReplaceAllString(expr, " ")
	expr = promqlMatchers.ReplaceAllString(expr, " ")
	expr = promqlRanges.ReplaceAllString(expr, " ")
	expr = promqlGrouping.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range promqlIdent.FindAllStringIndex(expr, -1) {
		// Skip the letters of a number (1e3, 0x1f) and durations after offset (5m).
		if loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue
		}
		w := expr[loc[0]:loc[1]]
		if promqlWords[strings.ToLower(w)] || scrapeSynthesized[w] {
			continue
		}
		// A function call (a word followed by "(") that is not in the list is still a
		// function: fail loudly so the list grows rather than the check going blind.
		if rest := strings.TrimLeft(expr[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			out = append(out, "function?"+w)
			continue
		}
		out = append(out, w)
	}
	return out
}

// ruleMetricNames returns, per alert or recording rule, the metrics a Prometheus rules
// file selects.
func ruleMetricNames(t *testing.T, y []byte) map[string][]string {
	t.Helper()
	js, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("rules file is not YAML: %v", err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert  string `json:"alert"`
				Record string `json:"record"`
				Expr   string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(js, &f); err != nil {
		t.Fatalf("rules file: %v", err)
	}
	out := map[string][]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert+r.Record] = promqlMetricNames(r.Expr)
		}
	}
	return out
}

// dashboardMetricNames returns, per panel title, the metrics a Grafana dashboard's
// queries ("expr" of targets, "query"/"definition" of template variables) select.
func dashboardMetricNames(t *testing.T, js []byte) map[string][]string {
	t.Helper()
	var root any
	if err := json.Unmarshal(js, &root); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	out := map[string][]string{}
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = "panel " + title
			} else if name, ok := v["name"].(string); ok {
				where = "variable " + name
			}
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || (k == "query" || k == "definition") && strings.Contains(s, "(")) {
					out[where] = append(out[where], promqlMetricNames(s)...)
					continue
				}
				walk(x, where)
			}
		case []any:
			for _, x := range v {
				walk(x, where)
			}
		}
	}
	walk(root, "dashboard")
	return out
}

// exportedNames parses a text exposition and returns every sample name in it
// (histograms contribute their _bucket, _sum and _count series).
func exportedNames(t *testing.T, text []byte) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			t.Fatalf("unexpected exposition line %q", line)
		}
		names[line[:end]] = true
	}
	return names
}

// missingMetrics lists "where: name" for every referenced name the scrape lacks.
func missingMetrics(refs map[string][]string, exported map[string]bool) []string {
	var out []string
	for where, names := range refs {
		for _, n := range names {
			if !exported[n] {
				out = append(out, fmt.Sprintf("%s: %s", where, n))
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// scrapeAfterTraffic starts a real server, sends it one journey of traffic (catalog, cart,
// checkout, payment, admin reads, every job once) and returns its /metrics text.
func scrapeAfterTraffic(t *testing.T) []byte {
	t.Helper()
	a := newTestApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	c := client{t: t, base: "http://" + l.Addr().String(), hc: &http.Client{Timeout: 10 * time.Second}}

	variant := catalog.SeedVariantID("RR-40").String()
	c.must(200, "GET", "/v1/products/"+catalog.SeedProductID("red-runner").String(), "", nil)
	c.must(200, "GET", "/v1/products?per_page=5", "", nil)
	me := c.must(201, "POST", "/v1/sessions", "", nil)["session_id"].(string)
	c.must(200, "POST", "/v1/cart/items", `{"variant_id":"`+variant+`","quantity":1}`, sess(me))
	co := c.must(201, "POST", "/v1/checkouts", `{"email":"m@example.com"}`, map[string]string{"X-Session-ID": me, "Idempotency-Key": "metrics-1"})
	done2 := c.must(200, "POST", "/v1/checkouts/"+co["id"].(string)+"/complete", `{"payment_token":"tok_ok"}`, sess(me))
	c.must(200, "GET", "/admin/inventory/"+variant, "", admin())
	order := done2["order"].(map[string]any)["id"].(string)
	c.must(200, "POST", "/admin/orders/"+order+"/refund", `{"amount":{"amount":100,"currency":"USD"},"reason":"metrics"}`, admin())
	for _, job := range []string{"warm_products", "warm_discounts", "hold_sweep", "checkout_expiry", "checkout_recovery", "reconcile", "outbox", "payments"} {
		if err := a.Domains().Jobs.RunNow(ctx, job); err != nil {
			t.Logf("job %s: %v", job, err)
		}
	}
	r := c.req("GET", "/metrics", "", nil)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	return r.body
}

// TestAlertsAndDashboardNameExportedMetrics fails when deploy/alerts.yml or
// deploy/grafana-dashboard.json selects a metric that the running service does not export:
// a renamed or misspelt metric would otherwise leave an alert silently never firing and a
// panel silently empty.
func TestAlertsAndDashboardNameExportedMetrics(t *testing.T) {
	exported := exportedNames(t, scrapeAfterTraffic(t))
	rules, err := os.ReadFile("../../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	ruleRefs, dashRefs := ruleMetricNames(t, rules), dashboardMetricNames(t, dash)
	if n := countNames(ruleRefs); n < 20 {
		t.Fatalf("only %d metric references found in alerts.yml: the extractor is broken", n)
	}
	if n := countNames(dashRefs); n < 40 {
		t.Fatalf("only %d metric references found in the dashboard: the extractor is broken", n)
	}
	for file, refs := range map[string]map[string][]string{"deploy/alerts.yml": ruleRefs, "deploy/grafana-dashboard.json": dashRefs} {
		if miss := missingMetrics(refs, exported); len(miss) > 0 {
			t.Errorf("%s names metrics that GET /metrics does not export:\n  %s", file, strings.Join(miss, "\n  "))
		}
	}

	// The same check on a copy with one name misspelt must report exactly that name.
	bad := bytes.Replace(rules, []byte("commerce_inventory_drift_fixed_total"), []byte("commerce_inventory_drift_fixd_total"), 1)
	miss := missingMetrics(ruleMetricNames(t, bad), exported)
	if len(miss) != 1 || !strings.HasSuffix(miss[0], ": commerce_inventory_drift_fixd_total") {
		t.Fatalf("a misspelt metric was not caught: %v", miss)
	}
}

func countNames(refs map[string][]string) int {
	n := 0
	for _, v := range refs {
		n += len(v)
	}
	return n
}

// TestPromQLMetricNames pins the extractor on the shapes the rules and panels use.
func TestPromQLMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`sum(rate(a_total{status=~"5.."}[5m])) / sum(rate(a_total[5m])) > 0.01`, []string{"a_total", "a_total"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(h_bucket{instance=~"$instance"}[$__rate_interval])))`, []string{"h_bucket"}},
		{`(time() - max by (job) (ts{job="x"}) > 13 * 3600) or up{job="commerce"} == 0`, []string{"ts"}},
		{`sum by (instance) (g) / sum by (instance) (m) > 0.9 and on(instance) x offset 5m`, []string{"g", "m", "x"}},
		{`label_values(commerce_http_requests_total, instance)`, []string{"commerce_http_requests_total"}},
		{`1e3 * foo_seconds`, []string{"foo_seconds"}},
		{`frobnicate(foo)`, []string{"function?frobnicate", "foo"}},
	} {
		if got := promqlMetricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.expr, got, c.want)
		}
	}
}
