package discount

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

var now0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// Distinct id spaces; within each, ids sort by n.
func vid(n int) uuid.UUID { return uuid.UUID{0x10, byte(n >> 8), byte(n)} }
func pid(n int) uuid.UUID { return uuid.UUID{0x20, byte(n >> 8), byte(n)} }
func rid(n int) uuid.UUID { return uuid.UUID{0x30, byte(n >> 8), byte(n)} }

func usd(a int64) money.Money { return money.New(a, "USD") }

func line(v, p int, cat string, qty, unit int64) Line {
	return Line{
		VariantID: vid(v), ProductID: pid(p), Category: cat,
		SKU: fmt.Sprintf("SKU-%d", v), Name: fmt.Sprintf("variant %d", v),
		Quantity: qty, UnitPrice: usd(unit),
	}
}

func cartScope() Scope { return Scope{Type: ScopeCart} }
func products(ns ...int) Scope {
	s := Scope{Type: ScopeProduct}
	for _, n := range ns {
		s.IDs = append(s.IDs, pid(n).String())
	}
	return s
}
func variants(ns ...int) Scope {
	s := Scope{Type: ScopeVariant}
	for _, n := range ns {
		s.IDs = append(s.IDs, vid(n).String())
	}
	return s
}
func categories(cs ...string) Scope { return Scope{Type: ScopeCategory, IDs: cs} }

type opt func(*Rule)

func prio(p int) opt           { return func(r *Rule) { r.Priority = p } }
func exclusive(r *Rule)        { r.Stackable = false }
func inactive(r *Rule)         { r.Active = false }
func code(c string) opt        { return func(r *Rule) { r.Code = c } }
func currency(c string) opt    { return func(r *Rule) { r.Currency = c } }
func minSub(m money.Money) opt { return func(r *Rule) { r.MinSubtotal = &m } }
func starts(d time.Duration) opt {
	return func(r *Rule) { t := now0.Add(d); r.StartsAt = &t }
}
func ends(d time.Duration) opt {
	return func(r *Rule) { t := now0.Add(d); r.EndsAt = &t }
}

func rule(n int, k Kind, v int64, s Scope, opts ...opt) Rule {
	r := Rule{ID: rid(n), Name: fmt.Sprintf("rule %d", n), Kind: k, Value: v, Scope: s, Stackable: true, Active: true}
	if k == KindFixedAmount {
		r.Currency = "USD"
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}
func pct(n int, v int64, s Scope, opts ...opt) Rule { return rule(n, KindPercentage, v, s, opts...) }
func fixed(n int, v int64, s Scope, opts ...opt) Rule {
	return rule(n, KindFixedAmount, v, s, opts...)
}

// applied names an expected Applied entry by rule number.
type applied struct {
	rule   int
	amount int64
}

// The standard cart: subtotal 10000 USD.
func stdCart() []Line {
	return []Line{
		line(1, 1, "shoes", 2, 2500), // 5000
		line(2, 1, "shoes", 1, 3000), // 3000
		line(3, 2, "hats", 4, 500),   // 2000
	}
}

func equalLines(n int, unit int64, vs ...int) []Line {
	var ls []Line
	for _, v := range vs {
		ls = append(ls, line(v, v, "misc", int64(n), unit))
	}
	return ls
}

func TestPrice(t *testing.T) {
	tests := []struct {
		name          string
		rules         []Rule
		lines         []Line
		coupon        string
		wantLines     []int64 // discount per line
		wantApplied   []applied
		wantCouponApp bool
	}{
		{name: "no rules", lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "empty cart", rules: []Rule{pct(1, 10, cartScope())}},

		// kinds × scopes
		{name: "percentage cart", rules: []Rule{pct(1, 10, cartScope())}, lines: stdCart(),
			wantLines: []int64{500, 300, 200}, wantApplied: []applied{{1, 1000}}},
		{name: "percentage product", rules: []Rule{pct(1, 20, products(1))}, lines: stdCart(),
			wantLines: []int64{1000, 600, 0}, wantApplied: []applied{{1, 1600}}},
		{name: "percentage category", rules: []Rule{pct(1, 50, categories("hats", "bags"))}, lines: stdCart(),
			wantLines: []int64{0, 0, 1000}, wantApplied: []applied{{1, 1000}}},
		{name: "percentage variant", rules: []Rule{pct(1, 10, variants(2))}, lines: stdCart(),
			wantLines: []int64{0, 300, 0}, wantApplied: []applied{{1, 300}}},
		{name: "percentage 100 zeroes the cart", rules: []Rule{pct(1, 100, cartScope())}, lines: stdCart(),
			wantLines: []int64{5000, 3000, 2000}, wantApplied: []applied{{1, 10000}}},
		{name: "fixed cart spread proportionally", rules: []Rule{fixed(1, 1000, cartScope())}, lines: stdCart(),
			wantLines: []int64{500, 300, 200}, wantApplied: []applied{{1, 1000}}},
		{name: "fixed product", rules: []Rule{fixed(1, 800, products(1))}, lines: stdCart(),
			wantLines: []int64{500, 300, 0}, wantApplied: []applied{{1, 800}}},
		{name: "fixed category", rules: []Rule{fixed(1, 150, categories("hats"))}, lines: stdCart(),
			wantLines: []int64{0, 0, 150}, wantApplied: []applied{{1, 150}}},
		{name: "fixed variant", rules: []Rule{fixed(1, 99, variants(1))}, lines: stdCart(),
			wantLines: []int64{99, 0, 0}, wantApplied: []applied{{1, 99}}},
		{name: "fixed larger than scope takes the scope", rules: []Rule{fixed(1, 5000, categories("hats"))}, lines: stdCart(),
			wantLines: []int64{0, 0, 2000}, wantApplied: []applied{{1, 2000}}},
		{name: "fixed larger than cart takes the cart", rules: []Rule{fixed(1, 20000, cartScope())}, lines: stdCart(),
			wantLines: []int64{5000, 3000, 2000}, wantApplied: []applied{{1, 10000}}},
		{name: "scope matching nothing applies nothing", rules: []Rule{fixed(1, 100, products(9)), pct(2, 10, categories("bags"))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "scope id that is not a uuid matches nothing", rules: []Rule{fixed(1, 100, Scope{Type: ScopeVariant, IDs: []string{"nope"}})},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "zero-priced line gets nothing", rules: []Rule{pct(1, 10, cartScope())},
			lines:     []Line{line(1, 1, "x", 3, 0), line(2, 2, "x", 1, 2000)},
			wantLines: []int64{0, 200}, wantApplied: []applied{{1, 200}}},

		// spreading remainders
		{name: "remainder to lowest variant id, not first line", rules: []Rule{fixed(1, 100, cartScope())},
			lines:     equalLines(1, 100, 3, 1, 2),
			wantLines: []int64{33, 34, 33}, wantApplied: []applied{{1, 100}}},
		{name: "largest remainder before variant id", rules: []Rule{fixed(1, 10, cartScope())},
			lines:     []Line{line(1, 1, "x", 1, 100), line(2, 2, "x", 1, 200)}, // 3.33 + 6.67
			wantLines: []int64{3, 7}, wantApplied: []applied{{1, 10}}},
		{name: "percentage on scope total then spread", rules: []Rule{pct(1, 10, cartScope())},
			lines:     equalLines(1, 5, 5, 4, 3, 2, 1), // 10% of 25 = 2.5 → 2; per line would be 0
			wantLines: []int64{0, 0, 0, 1, 1}, wantApplied: []applied{{1, 2}}},

		// rounding half-even
		{name: "half-even 12.5 rounds to 12", rules: []Rule{pct(1, 5, cartScope())},
			lines: []Line{line(1, 1, "x", 1, 250)}, wantLines: []int64{12}, wantApplied: []applied{{1, 12}}},
		{name: "half-even 13.5 rounds to 14", rules: []Rule{pct(1, 5, cartScope())},
			lines: []Line{line(1, 1, "x", 1, 270)}, wantLines: []int64{14}, wantApplied: []applied{{1, 14}}},
		{name: "above half rounds up", rules: []Rule{pct(1, 5, cartScope())},
			lines: []Line{line(1, 1, "x", 1, 251)}, wantLines: []int64{13}, wantApplied: []applied{{1, 13}}}, // 12.55
		{name: "below half rounds down", rules: []Rule{pct(1, 5, cartScope())},
			lines: []Line{line(1, 1, "x", 1, 269)}, wantLines: []int64{13}, wantApplied: []applied{{1, 13}}}, // 13.45
		{name: "0.5 rounds to 0 and is not listed", rules: []Rule{pct(1, 1, cartScope())},
			lines: []Line{line(1, 1, "x", 1, 50)}, wantLines: []int64{0}},

		// stacking
		{name: "stacked percentages compound", rules: []Rule{pct(2, 10, cartScope(), prio(1)), pct(1, 10, cartScope(), prio(2))},
			lines: stdCart(), wantLines: []int64{950, 570, 380}, wantApplied: []applied{{1, 1000}, {2, 900}}},
		{name: "fixed then percentage on the remainder", rules: []Rule{fixed(1, 1000, cartScope(), prio(2)), pct(2, 50, cartScope(), prio(1))},
			lines: stdCart(), wantLines: []int64{2750, 1650, 1100}, wantApplied: []applied{{1, 1000}, {2, 4500}}},
		{name: "priority decides the order", rules: []Rule{fixed(1, 1000, cartScope(), prio(1)), pct(2, 50, cartScope(), prio(2))},
			lines: stdCart(), wantLines: []int64{3000, 1800, 1200}, wantApplied: []applied{{2, 5000}, {1, 1000}}},
		{name: "stacked fixed amounts stop at zero", rules: []Rule{fixed(1, 8000, cartScope()), fixed(2, 8000, cartScope()), pct(3, 10, cartScope())},
			lines: stdCart(), wantLines: []int64{5000, 3000, 2000}, wantApplied: []applied{{1, 8000}, {2, 2000}}},
		{name: "equal priority ordered by id, not stored order", rules: []Rule{fixed(2, 7000, cartScope()), pct(1, 50, cartScope())},
			lines: stdCart(), wantLines: []int64{5000, 3000, 2000}, wantApplied: []applied{{1, 5000}, {2, 5000}}},
		{name: "priority beats id", rules: []Rule{fixed(1, 100, cartScope(), exclusive), fixed(2, 200, cartScope(), prio(1), exclusive)},
			lines: stdCart(), wantLines: []int64{100, 60, 40}, wantApplied: []applied{{2, 200}}},

		// exclusivity
		{name: "first exclusive applies alone", rules: []Rule{pct(1, 10, cartScope(), prio(5), exclusive), pct(2, 20, cartScope(), prio(1))},
			lines: stdCart(), wantLines: []int64{500, 300, 200}, wantApplied: []applied{{1, 1000}}},
		{name: "exclusive after a stackable is skipped, later stackables apply",
			rules: []Rule{pct(1, 10, cartScope(), prio(5)), fixed(2, 500, cartScope(), prio(3), exclusive), fixed(3, 90, variants(3), prio(1))},
			lines: stdCart(), wantLines: []int64{500, 300, 290}, wantApplied: []applied{{1, 1000}, {3, 90}}},
		{name: "exclusive without effect does not block", rules: []Rule{pct(1, 50, variants(99), prio(9), exclusive), pct(2, 10, cartScope())},
			lines: stdCart(), wantLines: []int64{500, 300, 200}, wantApplied: []applied{{2, 1000}}},
		{name: "ineligible exclusive does not block", rules: []Rule{pct(1, 50, cartScope(), prio(9), exclusive, minSub(usd(20000))), pct(2, 10, cartScope())},
			lines: stdCart(), wantLines: []int64{500, 300, 200}, wantApplied: []applied{{2, 1000}}},
		{name: "of two exclusives the lower id wins", rules: []Rule{fixed(2, 200, cartScope(), exclusive), fixed(1, 100, cartScope(), exclusive)},
			lines: stdCart(), wantLines: []int64{50, 30, 20}, wantApplied: []applied{{1, 100}}},

		// minimum subtotal
		{name: "min subtotal met exactly", rules: []Rule{fixed(1, 100, cartScope(), minSub(usd(10000)))},
			lines: stdCart(), wantLines: []int64{50, 30, 20}, wantApplied: []applied{{1, 100}}},
		{name: "min subtotal not met", rules: []Rule{fixed(1, 100, cartScope(), minSub(usd(10001)))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "min subtotal counts the whole cart, not the scope", rules: []Rule{fixed(1, 100, categories("hats"), minSub(usd(5000)))},
			lines: stdCart(), wantLines: []int64{0, 0, 100}, wantApplied: []applied{{1, 100}}},
		{name: "min subtotal in another currency is never met", rules: []Rule{fixed(1, 100, cartScope(), minSub(money.New(1, "EUR")))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},

		// currency
		{name: "fixed amount in another currency never applies", rules: []Rule{fixed(1, 100, cartScope(), currency("EUR"))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "percentage bound to another currency never applies", rules: []Rule{pct(1, 10, cartScope(), currency("EUR"))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},

		// time window [starts, ends)
		{name: "before the window", rules: []Rule{fixed(1, 100, cartScope(), starts(time.Second))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "at the window start", rules: []Rule{fixed(1, 100, cartScope(), starts(0))},
			lines: stdCart(), wantLines: []int64{50, 30, 20}, wantApplied: []applied{{1, 100}}},
		{name: "inside the window", rules: []Rule{fixed(1, 100, cartScope(), starts(-time.Hour), ends(time.Hour))},
			lines: stdCart(), wantLines: []int64{50, 30, 20}, wantApplied: []applied{{1, 100}}},
		{name: "at the window end", rules: []Rule{fixed(1, 100, cartScope(), ends(0))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "after the window", rules: []Rule{fixed(1, 100, cartScope(), starts(-2*time.Hour), ends(-time.Hour))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "inactive", rules: []Rule{fixed(1, 100, cartScope(), inactive)},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "malformed rules never apply",
			rules: []Rule{pct(1, 150, cartScope()), pct(2, 0, cartScope()), fixed(3, 100, cartScope(), currency("")),
				rule(4, "bogus", 10, cartScope()), pct(5, 10, Scope{Type: "shop"})},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},

		// coupons
		{name: "coupon exact", rules: []Rule{fixed(1, 100, cartScope(), code("SAVE10"))}, coupon: "SAVE10",
			lines: stdCart(), wantLines: []int64{50, 30, 20}, wantApplied: []applied{{1, 100}}, wantCouponApp: true},
		{name: "coupon is case-insensitive and trimmed", rules: []Rule{fixed(1, 100, cartScope(), code("SAVE10"))}, coupon: " save10 ",
			lines: stdCart(), wantLines: []int64{50, 30, 20}, wantApplied: []applied{{1, 100}}, wantCouponApp: true},
		{name: "coupon rule stored lower-case still matches", rules: []Rule{fixed(1, 100, cartScope(), code("Save10"))}, coupon: "sAVE10",
			lines: stdCart(), wantLines: []int64{50, 30, 20}, wantApplied: []applied{{1, 100}}, wantCouponApp: true},
		{name: "other coupon", rules: []Rule{fixed(1, 100, cartScope(), code("SAVE10"))}, coupon: "SAVE20",
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "coupon rule needs a coupon", rules: []Rule{fixed(1, 100, cartScope(), code("SAVE10"))},
			lines: stdCart(), wantLines: []int64{0, 0, 0}},
		{name: "coupon stacks with automatic", rules: []Rule{pct(1, 10, cartScope()), fixed(2, 500, cartScope(), code("VIP"), prio(1))},
			coupon: "vip", lines: stdCart(), wantLines: []int64{725, 435, 290},
			wantApplied: []applied{{2, 500}, {1, 950}}, wantCouponApp: true},
		{name: "coupon outranked by an exclusive automatic rule",
			rules:  []Rule{pct(1, 10, cartScope(), prio(5), exclusive), fixed(2, 500, cartScope(), code("VIP"))},
			coupon: "VIP", lines: stdCart(), wantLines: []int64{500, 300, 200}, wantApplied: []applied{{1, 1000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := Ruleset{Version: 7, Rules: tt.rules}
			p, err := Price(rs, tt.lines, tt.coupon, "USD", now0)
			if err != nil {
				t.Fatalf("Price: %v", err)
			}
			var got []int64
			for _, l := range p.Lines {
				got = append(got, l.Discount.Amount)
			}
			if !slices.Equal(got, tt.wantLines) {
				t.Errorf("line discounts = %v, want %v", got, tt.wantLines)
			}
			var gotApplied []applied
			for _, a := range p.Applied {
				gotApplied = append(gotApplied, applied{int(a.RuleID[2]), a.Amount.Amount})
			}
			if !slices.Equal(gotApplied, tt.wantApplied) {
				t.Errorf("applied = %v, want %v", gotApplied, tt.wantApplied)
			}
			if p.CouponApplied != tt.wantCouponApp {
				t.Errorf("CouponApplied = %v, want %v", p.CouponApplied, tt.wantCouponApp)
			}
			if p.CouponCode != NormalizeCode(tt.coupon) {
				t.Errorf("CouponCode = %q, want %q", p.CouponCode, NormalizeCode(tt.coupon))
			}
			if p.RulesetVersion != 7 {
				t.Errorf("RulesetVersion = %d, want 7", p.RulesetVersion)
			}
			checkInvariants(t, rs, tt.lines, tt.coupon, "USD", now0, p)
			checkDeterminism(t, rs, tt.lines, tt.coupon, "USD", now0, p, rand.New(rand.NewPCG(1, 1)))
		})
	}
}

func TestPriceAppliedFields(t *testing.T) {
	r := fixed(1, 100, cartScope(), code("SAVE10"))
	r.Name = "Summer"
	p, err := Price(Ruleset{Rules: []Rule{r}}, stdCart(), "save10", "USD", now0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Applied{{RuleID: r.ID, Name: "Summer", Code: "SAVE10", Amount: usd(100)}}
	if !reflect.DeepEqual(p.Applied, want) {
		t.Fatalf("Applied = %+v, want %+v", p.Applied, want)
	}
	if p.Subtotal != usd(10000) || p.DiscountTotal != usd(100) || p.Total != usd(9900) {
		t.Fatalf("totals = %v %v %v", p.Subtotal, p.DiscountTotal, p.Total)
	}
	if p.Lines[0].LineTotal != usd(5000) || p.Lines[0].Line != stdCart()[0] {
		t.Fatalf("line 0 = %+v", p.Lines[0])
	}
}

func TestPriceInvalidLines(t *testing.T) {
	tests := []struct {
		name     string
		lines    []Line
		currency string
	}{
		{"line in another currency", []Line{line(1, 1, "x", 1, 100), {VariantID: vid(2), Quantity: 1, UnitPrice: money.New(100, "EUR")}}, "USD"},
		{"invalid cart currency", []Line{{VariantID: vid(1), Quantity: 1, UnitPrice: money.New(100, "usd")}}, "usd"},
		{"zero quantity", []Line{line(1, 1, "x", 0, 100)}, "USD"},
		{"negative quantity", []Line{line(1, 1, "x", -1, 100)}, "USD"},
		{"negative price", []Line{line(1, 1, "x", 1, -1)}, "USD"},
		{"line total overflows", []Line{line(1, 1, "x", 2, math.MaxInt64/2+1)}, "USD"},
		{"subtotal overflows", []Line{line(1, 1, "x", 1, math.MaxInt64), line(2, 2, "x", 1, 1)}, "USD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Price(Ruleset{Rules: []Rule{pct(1, 10, cartScope())}}, tt.lines, "", tt.currency, now0)
			if !errors.Is(err, ErrInvalidLine) {
				t.Fatalf("err = %v, want ErrInvalidLine", err)
			}
			if !reflect.DeepEqual(p, Priced{}) {
				t.Fatalf("Priced = %+v, want zero", p)
			}
		})
	}
}

func TestPriceHugeAmounts(t *testing.T) {
	// No overflow in the percentage or the spread even near int64 limits.
	lines := []Line{line(1, 1, "x", 1, math.MaxInt64/2), line(2, 2, "x", 1, math.MaxInt64/2-1)}
	rs := Ruleset{Rules: []Rule{pct(1, 99, cartScope()), fixed(2, math.MaxInt64, cartScope())}}
	p, err := Price(rs, lines, "", "USD", now0)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rs, lines, "", "USD", now0, p)
	if p.Total.Amount != 0 {
		t.Fatalf("Total = %d, want 0", p.Total.Amount)
	}
	sub := new(big.Int).SetInt64(p.Subtotal.Amount)
	want := bigPercent(sub, 99)
	if got := p.Applied[0].Amount.Amount; got != want {
		t.Fatalf("99%% of %d = %d, want %d", p.Subtotal.Amount, got, want)
	}
}

// bigPercent is an independent round-half-even(n × pct / 100).
func bigPercent(n *big.Int, pct int64) int64 {
	num := new(big.Int).Mul(n, big.NewInt(pct))
	q, r := new(big.Int).QuoRem(num, big.NewInt(100), new(big.Int))
	switch c := new(big.Int).Mul(r, big.NewInt(2)).Cmp(big.NewInt(100)); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

func TestPercentOf(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := [][2]int64{{250, 5}, {270, 5}, {50, 1}, {150, 1}, {0, 50}, {math.MaxInt64, 100}, {math.MaxInt64, 99}, {math.MaxInt64, 1}}
	for range 5000 {
		cases = append(cases, [2]int64{r.Int64N(1 << (1 + r.IntN(62))), 1 + r.Int64N(100)})
	}
	for _, c := range cases {
		if got, want := percentOf(c[0], c[1]), bigPercent(big.NewInt(c[0]), c[1]); got != want {
			t.Fatalf("percentOf(%d, %d) = %d, want %d", c[0], c[1], got, want)
		}
	}
}

func TestFindCode(t *testing.T) {
	rs := Ruleset{Rules: []Rule{
		fixed(1, 100, cartScope(), code("SAVE10")),
		fixed(2, 100, cartScope(), code("OFF"), inactive),
		fixed(3, 100, cartScope()),
	}}
	tests := []struct {
		name, code string
		want       int // rule number, 0 for not found
	}{
		{"exact", "SAVE10", 1},
		{"lower case", "save10", 1},
		{"padded", "  Save10 ", 1},
		{"inactive is not found", "OFF", 0},
		{"unknown", "NOPE", 0},
		{"empty never finds an automatic rule", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := rs.FindCode(tt.code)
			if ok != (tt.want != 0) || (ok && r.ID != rid(tt.want)) {
				t.Fatalf("FindCode(%q) = %v, %v; want rule %d", tt.code, r.ID, ok, tt.want)
			}
		})
	}
}

func TestCouponApplicable(t *testing.T) {
	rs := Ruleset{Rules: []Rule{
		fixed(1, 100, cartScope(), code("SAVE10")),
		fixed(2, 100, cartScope(), code("LATER"), starts(time.Hour)),
		fixed(3, 100, cartScope(), code("OVER"), ends(0)),
		fixed(4, 100, cartScope(), code("BIGCART"), minSub(usd(10001))),
		fixed(5, 100, categories("bags"), code("BAGS")),
		fixed(6, 100, cartScope(), code("EURO"), currency("EUR")),
		fixed(7, 100, cartScope(), code("OFF"), inactive),
		pct(8, 1, variants(1), code("TINY")),
		fixed(9, 100, cartScope(), code("EXCL"), exclusive),
		pct(10, 50, cartScope(), prio(9), exclusive),
	}}
	tiny := []Line{line(1, 1, "x", 1, 40)} // 1% of 40 rounds to 0
	tests := []struct {
		name, code string
		lines      []Line
		want       error
	}{
		{"applicable", "SAVE10", stdCart(), nil},
		{"applicable in lower case", "save10", stdCart(), nil},
		{"applicable even if outranked in Price", "EXCL", stdCart(), nil},
		{"unknown", "NOPE", stdCart(), ErrCouponNotFound},
		{"empty", " ", stdCart(), ErrCouponNotFound},
		{"inactive", "OFF", stdCart(), ErrCouponNotFound},
		{"not started", "LATER", stdCart(), ErrCouponNotApplicable},
		{"ended", "OVER", stdCart(), ErrCouponNotApplicable},
		{"min subtotal not met", "BIGCART", stdCart(), ErrCouponNotApplicable},
		{"no line in scope", "BAGS", stdCart(), ErrCouponNotApplicable},
		{"other currency", "EURO", stdCart(), ErrCouponNotApplicable},
		{"empty cart", "SAVE10", nil, ErrCouponNotApplicable},
		{"rounds to nothing", "TINY", tiny, ErrCouponNotApplicable},
		{"invalid line", "SAVE10", []Line{line(1, 1, "x", 0, 100)}, ErrInvalidLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CouponApplicable(rs, tt.lines, tt.code, "USD", now0)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("CouponApplicable(%q) = %v, want %v", tt.code, err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := func(opts ...opt) Rule {
		r := pct(1, 10, cartScope(), opts...)
		return r
	}
	t0 := now0
	tests := []struct {
		name string
		rule Rule
		want []string // fields with an error
	}{
		{"valid percentage", valid(), nil},
		{"valid fixed with everything", fixed(1, 500, products(1, 2), code("summer_10"), minSub(usd(1000)),
			starts(0), ends(time.Hour), prio(3), exclusive), nil},
		{"valid category", pct(1, 100, categories("shoes")), nil},
		{"valid variant", pct(1, 1, variants(4)), nil},
		{"empty name", func() Rule { r := valid(); r.Name = "  "; return r }(), []string{"name"}},
		{"long name", func() Rule { r := valid(); r.Name = strings.Repeat("é", 201); return r }(), []string{"name"}},
		{"200-rune name", func() Rule { r := valid(); r.Name = strings.Repeat("é", 200); return r }(), nil},
		{"bad kind", rule(1, "bogus", 10, cartScope()), []string{"kind"}},
		{"percentage 0", pct(1, 0, cartScope()), []string{"value"}},
		{"percentage 101", pct(1, 101, cartScope()), []string{"value"}},
		{"percentage bad currency", pct(1, 10, cartScope(), currency("usd")), []string{"currency"}},
		{"fixed 0", fixed(1, 0, cartScope()), []string{"value"}},
		{"fixed without currency", fixed(1, 10, cartScope(), currency("")), []string{"currency"}},
		{"fixed bad currency", fixed(1, 10, cartScope(), currency("US")), []string{"currency"}},
		{"bad scope type", pct(1, 10, Scope{Type: "shop"}), []string{"scope.type"}},
		{"cart scope with ids", pct(1, 10, Scope{Type: ScopeCart, IDs: []string{"x"}}), []string{"scope.ids"}},
		{"product scope without ids", pct(1, 10, Scope{Type: ScopeProduct}), []string{"scope.ids"}},
		{"variant scope with a non-uuid", pct(1, 10, Scope{Type: ScopeVariant, IDs: []string{vid(1).String(), "42"}}), []string{"scope.ids"}},
		{"category scope without ids", pct(1, 10, Scope{Type: ScopeCategory}), []string{"scope.ids"}},
		{"category scope with empty id", pct(1, 10, categories("")), []string{"scope.ids"}},
		{"code too short", valid(code("ab")), []string{"code"}},
		{"code too long", valid(code(strings.Repeat("A", 33))), []string{"code"}},
		{"code with space", valid(code("SUM MER")), []string{"code"}},
		{"blank code", valid(code("  ")), []string{"code"}},
		{"ends before starts", valid(starts(time.Hour), ends(0)), []string{"ends_at"}},
		{"ends at starts", func() Rule { r := valid(); r.StartsAt, r.EndsAt = &t0, &t0; return r }(), []string{"ends_at"}},
		{"negative min subtotal", valid(minSub(usd(-1))), []string{"min_subtotal"}},
		{"min subtotal bad currency", valid(minSub(money.New(1, "dollars"))), []string{"min_subtotal"}},
		{"min subtotal other currency than fixed", fixed(1, 10, cartScope(), minSub(money.New(1, "EUR"))), []string{"min_subtotal"}},
		{"several", rule(1, "bogus", 0, Scope{Type: "x"}, code("?")), []string{"code", "kind", "scope.type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rule.Validate()
			var fields []string
			for f, msg := range got {
				if msg == "" {
					t.Errorf("field %s has an empty message", f)
				}
				fields = append(fields, f)
			}
			slices.Sort(fields)
			if !slices.Equal(fields, tt.want) {
				t.Fatalf("Validate() = %v, want errors on %v", got, tt.want)
			}
			if tt.want == nil && got != nil {
				t.Fatalf("Validate() = %#v, want nil", got)
			}
		})
	}
}

func TestEnums(t *testing.T) {
	for _, k := range []Kind{KindPercentage, KindFixedAmount} {
		if !k.Valid() {
			t.Errorf("%q not valid", k)
		}
	}
	for _, k := range []Kind{"", "Percentage", "free"} {
		if k.Valid() {
			t.Errorf("%q valid", k)
		}
	}
	for _, s := range []ScopeType{ScopeCart, ScopeProduct, ScopeCategory, ScopeVariant} {
		if !s.Valid() {
			t.Errorf("%q not valid", s)
		}
	}
	for _, s := range []ScopeType{"", "Cart", "shop"} {
		if s.Valid() {
			t.Errorf("%q valid", s)
		}
	}
}

// source is what genCase draws from: *rand.Rand in the property test, fuzz bytes in FuzzPrice.
type source interface {
	IntN(n int) int
	Int64() int64
}

// genCase builds a random cart and ruleset around "USD", mostly valid, with small pools
// of ids, priorities and codes so that ties, overlaps and exclusivity are common.
func genCase(s source) (Ruleset, []Line, string) {
	cats := []string{"shoes", "hats", "bags"}
	amount := func(max int64) int64 {
		switch s.IntN(40) {
		case 0:
			return -1 - int64(s.IntN(100))
		case 1:
			return s.Int64() >> s.IntN(64)
		case 2, 3, 4:
			return int64(s.IntN(10))
		}
		return int64(s.IntN(int(max) + 1))
	}
	var lines []Line
	seen := map[int]bool{}
	for range s.IntN(7) {
		v := 1 + s.IntN(40)
		if seen[v] && s.IntN(10) != 0 {
			continue // mostly one line per variant, like a cart
		}
		seen[v] = true
		q := int64(1 + s.IntN(5))
		if s.IntN(60) == 0 {
			q = int64(s.IntN(3)) - 1
		}
		l := line(v, 1+s.IntN(4), cats[s.IntN(len(cats))], q, amount(5000))
		if s.IntN(60) == 0 {
			l.UnitPrice.Currency = "EUR"
		}
		lines = append(lines, l)
	}
	scope := func() Scope {
		switch s.IntN(4) {
		case 0:
			return cartScope()
		case 1:
			return products(1+s.IntN(5), 1+s.IntN(5))
		case 2:
			return categories(cats[s.IntN(3)], "misc")
		}
		return variants(1+s.IntN(40), 1+s.IntN(40), 1+s.IntN(40))
	}
	codes := []string{"", "", "", "SAVE10", "vip", "Other"}
	var rules []Rule
	used := map[int]bool{}
	for range s.IntN(7) {
		n := 1 + s.IntN(30)
		if used[n] {
			continue
		}
		used[n] = true
		var r Rule
		if s.IntN(2) == 0 {
			v := int64(1 + s.IntN(100))
			if s.IntN(30) == 0 {
				v = int64(s.IntN(300)) - 100
			}
			r = pct(n, v, scope())
		} else {
			r = fixed(n, max(1, amount(6000)), scope())
			if s.IntN(15) == 0 {
				r.Currency = "EUR"
			}
		}
		r.Priority = s.IntN(3)
		r.Stackable = s.IntN(3) != 0
		r.Active = s.IntN(10) != 0
		r.Code = codes[s.IntN(len(codes))]
		if s.IntN(4) == 0 {
			m := usd(int64(s.IntN(15000)))
			if s.IntN(10) == 0 {
				m.Currency = "EUR"
			}
			r.MinSubtotal = &m
		}
		if s.IntN(4) == 0 {
			t := now0.Add(time.Duration(s.IntN(5)-2) * time.Hour)
			r.StartsAt = &t
		}
		if s.IntN(4) == 0 {
			t := now0.Add(time.Duration(s.IntN(5)-2) * time.Hour)
			r.EndsAt = &t
		}
		rules = append(rules, r)
	}
	coupons := []string{"", "save10", "VIP", " other ", "NOPE"}
	return Ruleset{Version: int64(s.IntN(100)), Rules: rules}, lines, coupons[s.IntN(len(coupons))]
}

// wantInvalid is an independent check of the line errors, in big integers.
func wantInvalid(lines []Line, currency string) bool {
	sub, maxI := new(big.Int), big.NewInt(math.MaxInt64)
	for _, l := range lines {
		if l.UnitPrice.Currency != currency || l.Quantity <= 0 || l.UnitPrice.Amount < 0 {
			return true
		}
		lt := new(big.Int).Mul(big.NewInt(l.UnitPrice.Amount), big.NewInt(l.Quantity))
		if sub.Add(sub, lt).Cmp(maxI) > 0 {
			return true
		}
	}
	return false
}

// checkInvariants asserts what every Priced must satisfy, whatever the rules.
func checkInvariants(t testing.TB, rs Ruleset, lines []Line, coupon, cur string, now time.Time, p Priced) {
	t.Helper()
	if len(p.Lines) != len(lines) {
		t.Fatalf("%d priced lines for %d lines", len(p.Lines), len(lines))
	}
	var sub, lineDisc, appliedSum int64
	for i, pl := range p.Lines {
		if pl.Line != lines[i] {
			t.Fatalf("line %d changed: %+v → %+v", i, lines[i], pl.Line)
		}
		if pl.LineTotal.Currency != cur || pl.Discount.Currency != cur {
			t.Fatalf("line %d currencies %q %q", i, pl.LineTotal.Currency, pl.Discount.Currency)
		}
		if pl.LineTotal.Amount != lines[i].UnitPrice.Amount*lines[i].Quantity {
			t.Fatalf("line %d total %d", i, pl.LineTotal.Amount)
		}
		if pl.Discount.Amount < 0 || pl.Discount.Amount > pl.LineTotal.Amount {
			t.Fatalf("line %d discount %d outside [0, %d]", i, pl.Discount.Amount, pl.LineTotal.Amount)
		}
		sub += pl.LineTotal.Amount
		lineDisc += pl.Discount.Amount
	}
	byID := map[uuid.UUID]Rule{}
	for _, r := range rs.Rules {
		byID[r.ID] = r
	}
	coupon = NormalizeCode(coupon)
	couponApplied := false
	for i, a := range p.Applied {
		r, ok := byID[a.RuleID]
		if !ok {
			t.Fatalf("applied rule %s not in the ruleset", a.RuleID)
		}
		if a.Amount.Amount <= 0 || a.Amount.Currency != cur {
			t.Fatalf("applied %+v has a non-positive amount or another currency", a)
		}
		if a.Name != r.Name || a.Code != r.Code {
			t.Fatalf("applied %+v does not match its rule %+v", a, r)
		}
		if !r.Active || (r.StartsAt != nil && now.Before(*r.StartsAt)) || (r.EndsAt != nil && !now.Before(*r.EndsAt)) {
			t.Fatalf("applied rule %+v is not active at %v", r, now)
		}
		if r.Code != "" {
			if NormalizeCode(r.Code) != coupon {
				t.Fatalf("applied coupon rule %q without its coupon (%q)", r.Code, coupon)
			}
			couponApplied = true
		}
		if r.MinSubtotal != nil && (r.MinSubtotal.Currency != cur || r.MinSubtotal.Amount > sub) {
			t.Fatalf("applied rule %+v below its minimum (subtotal %d)", r, sub)
		}
		if r.Kind == KindFixedAmount && (r.Currency != cur || a.Amount.Amount > r.Value) {
			t.Fatalf("applied fixed rule %+v took %d", r, a.Amount.Amount)
		}
		if !r.Stackable && len(p.Applied) != 1 {
			t.Fatalf("exclusive rule %s applied with %d others", r.ID, len(p.Applied)-1)
		}
		if i > 0 {
			prev := byID[p.Applied[i-1].RuleID]
			if prev.Priority < r.Priority || (prev.Priority == r.Priority && bytes.Compare(prev.ID[:], r.ID[:]) >= 0) {
				t.Fatalf("applied out of order: %s then %s", prev.ID, r.ID)
			}
		}
		appliedSum += a.Amount.Amount
	}
	if p.CouponApplied != couponApplied || p.CouponCode != coupon {
		t.Fatalf("coupon %q applied=%v, want %q %v", p.CouponCode, p.CouponApplied, coupon, couponApplied)
	}
	for _, m := range []money.Money{p.Subtotal, p.DiscountTotal, p.Total} {
		if m.Currency != cur {
			t.Fatalf("total in %q, want %q", m.Currency, cur)
		}
	}
	if p.Subtotal.Amount != sub {
		t.Fatalf("subtotal %d, Σ line totals %d", p.Subtotal.Amount, sub)
	}
	if p.DiscountTotal.Amount != lineDisc || p.DiscountTotal.Amount != appliedSum {
		t.Fatalf("discount total %d, Σ line discounts %d, Σ applied %d", p.DiscountTotal.Amount, lineDisc, appliedSum)
	}
	if p.Total.Amount != p.Subtotal.Amount-p.DiscountTotal.Amount {
		t.Fatalf("total %d != %d − %d", p.Total.Amount, p.Subtotal.Amount, p.DiscountTotal.Amount)
	}
	if p.Total.Amount < 0 || p.Total.Amount > p.Subtotal.Amount {
		t.Fatalf("total %d outside [0, %d]", p.Total.Amount, p.Subtotal.Amount)
	}
	if p.RulesetVersion != rs.Version {
		t.Fatalf("ruleset version %d, want %d", p.RulesetVersion, rs.Version)
	}
}

// checkDeterminism prices again with the rules shuffled and expects the identical result.
func checkDeterminism(t testing.TB, rs Ruleset, lines []Line, coupon, cur string, now time.Time, want Priced, r *rand.Rand) {
	t.Helper()
	shuffled := Ruleset{Version: rs.Version, Rules: slices.Clone(rs.Rules)}
	r.Shuffle(len(shuffled.Rules), func(i, j int) { shuffled.Rules[i], shuffled.Rules[j] = shuffled.Rules[j], shuffled.Rules[i] })
	got, err := Price(shuffled, lines, coupon, cur, now)
	if err != nil {
		t.Fatalf("shuffled: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("shuffling the rules changed the result:\n got %+v\nwant %+v", got, want)
	}
}

func TestPriceProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(20260601, 42))
	const n = 5000
	var priced, discounted, invalid int
	for i := range n {
		rs, lines, coupon := genCase(r)
		p, err := Price(rs, lines, coupon, "USD", now0)
		if bad := wantInvalid(lines, "USD"); bad || err != nil {
			if !bad || !errors.Is(err, ErrInvalidLine) {
				t.Fatalf("case %d: err = %v, want invalid = %v (lines %+v)", i, err, bad, lines)
			}
			invalid++
			continue
		}
		priced++
		if p.DiscountTotal.Amount > 0 {
			discounted++
		}
		checkInvariants(t, rs, lines, coupon, "USD", now0, p)
		checkDeterminism(t, rs, lines, coupon, "USD", now0, p, r)
		// With one rule per code (as the store guarantees), a coupon Price applied is one
		// CouponApplicable accepts.
		sameCode := 0
		for _, r := range rs.Rules {
			if r.Active && r.Code != "" && NormalizeCode(r.Code) == NormalizeCode(coupon) {
				sameCode++
			}
		}
		if err := CouponApplicable(rs, lines, coupon, "USD", now0); p.CouponApplied && sameCode == 1 && err != nil {
			t.Fatalf("case %d: coupon %q applied by Price but CouponApplicable says %v", i, coupon, err)
		}
	}
	// Guard against a generator that stopped exercising the engine.
	if priced < n*3/4 || discounted < priced/3 {
		t.Fatalf("weak generator: %d priced, %d discounted, %d invalid of %d", priced, discounted, invalid, n)
	}
	t.Logf("%d priced (%d with a discount), %d invalid", priced, discounted, invalid)
}

// byteSource turns fuzz input into genCase draws; exhausted input reads as zeros.
type byteSource struct{ b []byte }

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteSource) IntN(n int) int {
	v := int(s.next())<<8 | int(s.next())
	return v % n
}

func (s *byteSource) Int64() int64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(s.next())
	}
	return int64(v >> 1)
}

func FuzzPrice(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 16 {
		seed := make([]byte, 256)
		for i := range seed {
			seed[i] = byte(r.UintN(256))
		}
		f.Add(seed)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, lines, coupon := genCase(&byteSource{b: data})
		p, err := Price(rs, lines, coupon, "USD", now0)
		if bad := wantInvalid(lines, "USD"); bad || err != nil {
			if !bad || !errors.Is(err, ErrInvalidLine) {
				t.Fatalf("err = %v, want invalid = %v", err, bad)
			}
			return
		}
		checkInvariants(t, rs, lines, coupon, "USD", now0, p)
		checkDeterminism(t, rs, lines, coupon, "USD", now0, p, rand.New(rand.NewPCG(uint64(len(data)), 1)))
		_ = CouponApplicable(rs, lines, coupon, "USD", now0)
	})
}
