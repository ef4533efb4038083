package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"commerce/internal/catalog"
	"commerce/internal/inventory"
)

// The scale curves: how the costs that could grow with the shop do grow. Each curve
// measures one cost at several sizes of the same run and states its growth (flat or
// linear) with the reason.

// ScaleOptions size the scale curves.
type ScaleOptions struct {
	// Holds are the live-hold counts on one SKU at which reserve and Levels are measured.
	Holds []int
	// Products is how many products (one variant each) the reconcile, warm and listing
	// curves grow to, in two steps (a tenth, then all).
	Products int
	// Ops is how many operations each latency point measures.
	Ops int
}

// defaultScale is the curve sizes of a full or quick run.
func defaultScale(quick bool) ScaleOptions {
	if quick {
		return ScaleOptions{Holds: []int{1, 1000, 10_000}, Products: 10_000, Ops: 200}
	}
	return ScaleOptions{Holds: []int{1, 1000, 100_000}, Products: 100_000, Ops: 1000}
}

// ScalePoint is one size of a curve: latency figures (Ops > 0) or one timed run.
type ScalePoint struct {
	Size    int     `json:"size"`
	Ops     int64   `json:"ops,omitempty"`
	Errors  int64   `json:"errors"`
	P50ms   float64 `json:"p50_ms,omitempty"`
	P99ms   float64 `json:"p99_ms,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	// PerItemUs is Seconds per item of Size, in µs (timed runs).
	PerItemUs float64 `json:"per_item_us,omitempty"`
	// SlowCalls counts this run's Redis commands of 10 ms or more (SLOWLOG) during the
	// point (timed runs): a single call that long stalls every other client of Redis.
	SlowCalls *int   `json:"slow_calls,omitempty"`
	Load1     string `json:"load1,omitempty"`
	Note      string `json:"note,omitempty"`
}

// ScaleCurve is one cost measured at growing sizes.
type ScaleCurve struct {
	Name   string       `json:"name"`
	SizeOf string       `json:"size_of"`
	Points []ScalePoint `json:"points"`
	// Growth is "flat" or "linear", read off the points: flat when the per-operation
	// latency (or, for timed runs, the time per item) at the largest size is within 3× of
	// the smallest, linear when a timed run's time per item stays within 3×.
	Growth string `json:"growth"`
	Why    string `json:"why"`
}

// growth classifies a latency curve (per operation) or a timed curve (per item).
func (c *ScaleCurve) growth(timed bool) {
	if len(c.Points) < 2 {
		c.Growth = "one point"
		return
	}
	first, last := c.Points[0], c.Points[len(c.Points)-1]
	if timed {
		if first.PerItemUs > 0 && last.PerItemUs <= 3*first.PerItemUs {
			c.Growth = fmt.Sprintf("linear in %s (%.1f → %.1f µs per item)", c.SizeOf, first.PerItemUs, last.PerItemUs)
		} else {
			c.Growth = fmt.Sprintf("worse than linear (%.1f → %.1f µs per item)", first.PerItemUs, last.PerItemUs)
		}
		return
	}
	switch {
	case first.P50ms > 0 && last.P50ms <= 3*first.P50ms:
		c.Growth = fmt.Sprintf("flat (p50 %.2f → %.2f ms from %d to %d %s)", first.P50ms, last.P50ms, first.Size, last.Size, c.SizeOf)
	default:
		c.Growth = fmt.Sprintf("grows (p50 %.2f → %.2f ms from %d to %d %s)", first.P50ms, last.P50ms, first.Size, last.Size, c.SizeOf)
	}
}

func (r *runner) curve(c ScaleCurve, timed bool) {
	c.growth(timed)
	r.rep.Scale = append(r.rep.Scale, c)
	r.printf("scale: %s: %s\n", c.Name, c.Growth)
	for _, p := range c.Points {
		r.printf("  %s\n", p.line(c.SizeOf))
	}
}

func (p ScalePoint) line(sizeOf string) string {
	s := fmt.Sprintf("%9d %-10s", p.Size, sizeOf)
	if p.Ops > 0 {
		s += fmt.Sprintf(" p50 %7.2f ms  p99 %7.2f ms  n=%d", p.P50ms, p.P99ms, p.Ops)
	}
	if p.Seconds > 0 {
		s += fmt.Sprintf(" %8.2f s  (%.1f µs per item)", p.Seconds, p.PerItemUs)
	}
	if p.SlowCalls != nil {
		s += fmt.Sprintf(" redis_calls≥10ms=%d", *p.SlowCalls)
	}
	s += fmt.Sprintf(" errors=%d load=%s", p.Errors, p.Load1)
	if p.Note != "" {
		s += "  " + p.Note
	}
	return s
}

// slow records the slow calls of a timed point.
func (p *ScalePoint) slow(calls []string) {
	n := len(calls)
	p.SlowCalls = &n
	if n > 0 {
		p.Note += "; slow Redis calls e.g. " + calls[0]
	}
}

func latencyPoint(size int, res Result) ScalePoint {
	return ScalePoint{Size: size, Ops: res.Requests, Errors: res.Errors, P50ms: res.P50ms, P99ms: res.P99ms, Load1: load1()}
}

func timedPoint(size int, d time.Duration, note string) ScalePoint {
	p := ScalePoint{Size: size, Seconds: d.Seconds(), Load1: load1(), Note: note}
	if size > 0 {
		p.PerItemUs = float64(d.Microseconds()) / float64(size)
	}
	return p
}

// scale measures the curves. A point with errors fails the step (Run then reports the
// run as not clean).
func (r *runner) scale(ctx context.Context) error {
	so := r.opt.Scale
	if len(so.Holds) == 0 || so.Products < 10 || so.Ops < 1 {
		return fmt.Errorf("scale: no sizes (Options.Scale)")
	}
	if err := r.scaleHolds(ctx, so); err != nil {
		return err
	}
	return r.scaleCatalog(ctx, so)
}

// scaleHolds: reserve and Levels latency with growing live holds on one SKU.
func (r *runner) scaleHolds(ctx context.Context, so ScaleOptions) error {
	inv := r.env.App.Domains().Inventory
	cat, err := CreateProducts(ctx, r.env.App.Pool, "scale-holds", 1, 1, 1_000_000_000, r.env.Cfg.Currency)
	if err != nil {
		return err
	}
	id := cat.Variants[0]
	lines := []inventory.Line{{VariantID: id, Quantity: 1}}
	// The first hold loads the counter from PostgreSQL.
	if err := inv.Reserve(ctx, "scale-first", lines, time.Hour); err != nil {
		return err
	}
	call, _, err := reserveCall(ctx, r.env)
	if err != nil {
		return err
	}
	sha, err := LoadScript(ctx, r.env.App.Redis, call.Source)
	if err != nil {
		return err
	}
	p := r.env.Space.Key("inv:{", id.String(), "}:")
	keys := []string{p + "avail", p + "holds", p + "held", p + "cmt"}
	reserveC := ScaleCurve{Name: "reserve (inventory.Service.Reserve, one client)", SizeOf: "live holds",
		Why: "reserve.lua does O(1) work on the counter and the holder's hash field, one ZADD (O(log holds)) " +
			"and reclaims only expired holds (ZRANGEBYSCORE … LIMIT), so the number of live holds does not enter"}
	levelsC := ScaleCurve{Name: "GET /admin/inventory/{id} (one client)", SizeOf: "live holds",
		Why: "levels.lua reads the kept held total, ZCARD and one page of 100 holds: O(1) plus the page"}
	live := 1
	holdSeq := 0
	for _, target := range so.Holds {
		// Fill up to target live holds with the real reserve script, pipelined.
		for live < target {
			n := min(target-live, 1000)
			pipe := r.env.App.Redis.Pipeline()
			for range n {
				holdSeq++
				pipe.EvalSha(ctx, sha, keys, "scale-"+strconv.Itoa(holdSeq), 1, time.Hour.Milliseconds(), 0)
			}
			cmds, err := pipe.Exec(ctx)
			if err != nil {
				return fmt.Errorf("creating holds: %w", err)
			}
			for _, c := range cmds {
				if v, err := c.(*redis.Cmd).Slice(); err != nil || len(v) == 0 || v[0] != "OK" {
					return fmt.Errorf("creating holds: %v %v", v, err)
				}
			}
			live += n
		}
		at := live
		seq := holdSeq
		res, err := Drive(ctx, Load{Name: "scale reserve", Concurrency: 1, MaxOps: int64(so.Ops)},
			func(ctx context.Context, _ int, i int64) (int, error) {
				return 0, inv.Reserve(ctx, "scale-m-"+strconv.Itoa(seq)+"-"+strconv.FormatInt(i, 10), lines, time.Hour)
			})
		if err != nil {
			return err
		}
		reserveC.Points = append(reserveC.Points, latencyPoint(at, res))
		live += int(res.Requests)
		path := "/admin/inventory/" + id.String()
		res, err = Drive(ctx, Load{Name: "scale levels", Concurrency: 1, MaxOps: int64(min(so.Ops, 200))},
			func(ctx context.Context, _ int, _ int64) (int, error) {
				resp, err := r.env.Client.AdminDo(ctx, http.MethodGet, path, nil)
				if err != nil {
					return 0, err
				}
				if err := resp.Expect(http.StatusOK); err != nil {
					return resp.Status, err
				}
				var lv struct {
					HoldsCount int64 `json:"holds_count"`
					Holds      []any `json:"holds"`
				}
				if err := resp.Decode(&lv); err != nil {
					return resp.Status, err
				}
				if lv.HoldsCount < int64(target) || len(lv.Holds) > 100 {
					return resp.Status, fmt.Errorf("levels: holds_count %d (want ≥ %d), page %d", lv.HoldsCount, target, len(lv.Holds))
				}
				return resp.Status, nil
			})
		if err != nil {
			return err
		}
		levelsC.Points = append(levelsC.Points, latencyPoint(live, res))
	}
	r.curve(reserveC, false)
	r.curve(levelsC, false)
	return checkPoints(reserveC, levelsC)
}

// scaleCatalog: reconcile, warm and a listing page as the catalog grows to so.Products.
func (r *runner) scaleCatalog(ctx context.Context, so ScaleOptions) error {
	d := r.env.App.Domains()
	rdb := r.env.App.Redis
	threshold := slowlogThreshold(ctx, rdb)
	reconcileC := ScaleCurve{Name: "reconcile of every variant", SizeOf: "variants",
		Why: "one PostgreSQL page and one reconcile.lua call per variant, each O(1) (the held total is kept): linear in variants, " +
			"and no single Redis call grows with the catalog"}
	warmC := ScaleCurve{Name: "warming every active product", SizeOf: "products",
		Why: "products are read from PostgreSQL and written with pipelined versioned fills, 500 at a time: linear in products"}
	listC := ScaleCurve{Name: "listing page (PostgreSQL, per_page 100)", SizeOf: "page number",
		Why: "the page's ids come from an index scan of (created_at, id) with OFFSET, which walks the skipped entries " +
			"(linear in the page number, but only index entries); only the 100 rows of the page are built. Every page " +
			"also counts the active products for its total (linear in the catalog, not in the page); the HTTP route " +
			"caches each page with its total per catalog generation"}
	created := 0
	for _, step := range []int{so.Products / 10, so.Products} {
		if _, err := CreateProducts(ctx, r.env.App.Pool, "scale-"+strconv.Itoa(step), step-created, 1, 100, r.env.Cfg.Currency); err != nil {
			return err
		}
		created = step
		var variants, products int
		if err := r.env.App.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM inventory), (SELECT count(*) FROM products WHERE status = 'active')`).
			Scan(&variants, &products); err != nil {
			return err
		}
		before, err := slowlogLast(ctx, rdb)
		if err != nil {
			return err
		}
		t := time.Now()
		rep, err := d.Inventory.Reconcile(ctx, nil, false)
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		slow, err := r.slowCalls(ctx, before)
		if err != nil {
			return err
		}
		p := timedPoint(variants, time.Since(t), fmt.Sprintf("checked %d, drifted %d; SLOWLOG threshold %s",
			rep.Checked, rep.Drifted, threshold))
		p.slow(slow)
		reconcileC.Points = append(reconcileC.Points, p)

		before, err = slowlogLast(ctx, rdb)
		if err != nil {
			return err
		}
		t = time.Now()
		n, err := d.Catalog.Warm(ctx)
		if err != nil {
			return fmt.Errorf("warm: %w", err)
		}
		slow, err = r.slowCalls(ctx, before)
		if err != nil {
			return err
		}
		p = timedPoint(n, time.Since(t), fmt.Sprintf("%d of %d active products written", n, products))
		p.slow(slow)
		warmC.Points = append(warmC.Points, p)
	}
	var active int
	if err := r.env.App.Pool.QueryRow(ctx, `SELECT count(*) FROM products WHERE status = 'active'`).Scan(&active); err != nil {
		return err
	}
	store := catalog.NewStore(r.env.App.Pool, r.env.Cfg.Currency)
	last := max(1, active/100)
	for _, page := range []int{1, 10, 100, last} {
		if page > last {
			continue
		}
		res, err := Drive(ctx, Load{Name: "scale listing", Concurrency: 1, MaxOps: 20},
			func(ctx context.Context, _ int, _ int64) (int, error) {
				pg, err := store.ListActive(ctx, catalog.ListQuery{Page: page, PerPage: 100})
				if err != nil {
					return 0, err
				}
				if len(pg.Items) == 0 {
					return 0, fmt.Errorf("page %d of %d active products is empty", page, active)
				}
				return 0, nil
			})
		if err != nil {
			return err
		}
		pt := latencyPoint(page, res)
		pt.Note = fmt.Sprintf("%d active products", active)
		listC.Points = append(listC.Points, pt)
	}
	r.curve(reconcileC, true)
	r.curve(warmC, true)
	r.curve(listC, false)
	for _, c := range []ScaleCurve{reconcileC, warmC} {
		slow := 0
		for _, p := range c.Points {
			slow += *p.SlowCalls
		}
		r.rep.Targets = append(r.rep.Targets, Target{Name: "Redis calls ≥ 10 ms during " + c.Name, Value: float64(slow),
			Bound: "0 (SLOWLOG; on a loaded machine a preempted Redis can also log a cheap call)", Met: slow == 0})
	}
	return checkPoints(reconcileC, warmC, listC)
}

// checkPoints fails the step when a point had errors.
func checkPoints(cs ...ScaleCurve) error {
	var bad []string
	for _, c := range cs {
		for _, p := range c.Points {
			if p.Errors > 0 {
				bad = append(bad, fmt.Sprintf("%s at %d: %d errors %s", c.Name, p.Size, p.Errors, p.Note))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("scale: %s", strings.Join(bad, "; "))
	}
	return nil
}

// slowlogThreshold is Redis's slowlog-log-slower-than, as a duration.
func slowlogThreshold(ctx context.Context, rdb redis.UniversalClient) string {
	v, err := rdb.ConfigGet(ctx, "slowlog-log-slower-than").Result()
	if err != nil {
		return "unknown"
	}
	us, err := strconv.Atoi(v["slowlog-log-slower-than"])
	if err != nil {
		return "unknown"
	}
	return (time.Duration(us) * time.Microsecond).String()
}

// slowlogLast is the id of the newest SLOWLOG entry (-1 when empty).
func slowlogLast(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	logs, err := rdb.SlowLogGet(ctx, 1).Result()
	if err != nil {
		return 0, fmt.Errorf("slowlog: %w", err)
	}
	if len(logs) == 0 {
		return -1, nil
	}
	return logs[0].ID, nil
}

// slowCalls lists this run's SLOWLOG entries newer than after that took 10 ms or more
// (the machine's Redis is shared: entries without the run's key prefix are someone else's).
func (r *runner) slowCalls(ctx context.Context, after int64) ([]string, error) {
	logs, err := r.env.App.Redis.SlowLogGet(ctx, 128).Result()
	if err != nil {
		return nil, fmt.Errorf("slowlog: %w", err)
	}
	var out []string
	for _, l := range logs {
		if l.ID <= after || l.Duration < 10*time.Millisecond {
			continue
		}
		ours := false
		for _, a := range l.Args {
			if strings.Contains(a, r.env.Cfg.RedisPrefix) {
				ours = true
			}
		}
		if ours {
			out = append(out, fmt.Sprintf("%s %s", l.Duration, truncate(strings.Join(l.Args, " "), 80)))
		}
	}
	return out, nil
}
