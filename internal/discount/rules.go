package discount

import (
	"bytes"
	"cmp"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// Kind is how a rule computes its discount.
type Kind string

const (
	// KindPercentage takes Value whole percent (1..100) off the in-scope amount.
	KindPercentage Kind = "percentage"
	// KindFixedAmount takes Value minor units of Currency off the in-scope amount, at most
	// the whole of it.
	KindFixedAmount Kind = "fixed_amount"
)

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k == KindPercentage || k == KindFixedAmount }

// ScopeType names what a rule's Scope.IDs refer to.
type ScopeType string

const (
	// ScopeCart covers every line; Scope.IDs is empty.
	ScopeCart ScopeType = "cart"
	// ScopeProduct covers the lines whose ProductID is in Scope.IDs (UUIDs).
	ScopeProduct ScopeType = "product"
	// ScopeCategory covers the lines whose Category is in Scope.IDs (exact match).
	ScopeCategory ScopeType = "category"
	// ScopeVariant covers the lines whose VariantID is in Scope.IDs (UUIDs).
	ScopeVariant ScopeType = "variant"
)

// Valid reports whether t is one of the defined scope types.
func (t ScopeType) Valid() bool {
	switch t {
	case ScopeCart, ScopeProduct, ScopeCategory, ScopeVariant:
		return true
	}
	return false
}

// Scope selects the cart lines a rule discounts.
type Scope struct {
	Type ScopeType
	IDs  []string
}

// Rule is one discount as the operator defined it. The store loads only non-deleted rules
// into a Ruleset; Active is the operator's on/off switch.
type Rule struct {
	ID   uuid.UUID
	Name string
	// Code is "" for an automatic rule, else the coupon code that enables it. Codes are
	// stored as NormalizeCode returns them and compared after normalising both sides, so
	// matching is case-insensitive.
	Code string
	Kind Kind
	// Value is whole percent (1..100) for KindPercentage and minor units for KindFixedAmount.
	Value int64
	// Currency is required for KindFixedAmount. A rule whose Currency is set and differs
	// from the cart's never applies (this also holds for a percentage rule that carries one).
	Currency string
	Scope    Scope
	// MinSubtotal, when set, is the cart subtotal (before any discount) the rule needs; a
	// minimum in another currency than the cart's is never met.
	MinSubtotal *money.Money
	// StartsAt and EndsAt bound the half-open window [StartsAt, EndsAt); nil is open.
	StartsAt, EndsAt *time.Time
	// Priority orders rules: higher first; equal priorities fall back to ID byte order.
	Priority int
	// Stackable rules combine with each other; an exclusive (non-stackable) rule applies
	// only alone. See Price for the exact rule.
	Stackable bool
	Active    bool
}

// Ruleset is the versioned set of non-deleted rules that prices a cart. Rules may be in
// any order: Price and FindCode sort a copy deterministically (see Price), so two
// Rulesets holding the same rules price every cart identically. Rule IDs are unique.
type Ruleset struct {
	Version int64
	Rules   []Rule
}

// NormalizeCode returns a coupon code as it is stored and compared: trimmed and upper-case.
func NormalizeCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// FindCode returns the active rule whose code matches code case-insensitively (after
// NormalizeCode). An empty code, an unknown code or a code whose rule is inactive reports
// false. It does not check the time window, minimum or scope: CouponApplicable does.
// Should two rules share a code, the first in application order wins.
func (rs Ruleset) FindCode(code string) (Rule, bool) {
	code = NormalizeCode(code)
	if code == "" {
		return Rule{}, false
	}
	for _, r := range ordered(rs.Rules) {
		if r.Active && NormalizeCode(r.Code) == code {
			return r, true
		}
	}
	return Rule{}, false
}

// ordered returns a copy of rules in application order: Priority descending, then ID
// ascending in byte order. The sort is stable, so only duplicate IDs (which a Ruleset must
// not hold) could make the order depend on the stored order.
func ordered(rules []Rule) []Rule {
	out := slices.Clone(rules)
	slices.SortStableFunc(out, func(a, b Rule) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// ineligible returns why r cannot apply to a cart in currency whose subtotal (minor
// units, before discounts) is subtotal at instant now, or "" when it can. It ignores the
// coupon code and the scope.
func (r Rule) ineligible(currency string, subtotal int64, now time.Time) string {
	switch {
	case !r.Active:
		return "the discount is not active"
	case !r.wellFormed():
		return "the discount is misconfigured"
	case r.StartsAt != nil && now.Before(*r.StartsAt):
		return "the discount has not started yet"
	case r.EndsAt != nil && !now.Before(*r.EndsAt):
		return "the discount has ended"
	case r.Currency != "" && r.Currency != currency:
		return "the discount is for another currency"
	case r.MinSubtotal != nil && r.MinSubtotal.Currency != currency:
		return "the discount's minimum subtotal is in another currency"
	case r.MinSubtotal != nil && subtotal < r.MinSubtotal.Amount:
		return "the cart subtotal is below the discount's minimum"
	}
	return ""
}

// wellFormed is the part of Validate the engine relies on: a stored rule that fails it
// never applies rather than breaking a total.
func (r Rule) wellFormed() bool {
	switch r.Kind {
	case KindPercentage:
		if r.Value < 1 || r.Value > 100 {
			return false
		}
	case KindFixedAmount:
		if r.Value <= 0 || r.Currency == "" {
			return false
		}
	default:
		return false
	}
	return r.Scope.Type.Valid()
}

// matcher reports whether a line is in a rule's scope.
type matcher struct {
	typ  ScopeType
	ids  map[uuid.UUID]struct{}
	cats map[string]struct{}
}

// matcher builds r's scope test. Scope IDs that are not UUIDs never match a product or
// variant scope.
func (r Rule) matcher() matcher {
	m := matcher{typ: r.Scope.Type}
	switch r.Scope.Type {
	case ScopeProduct, ScopeVariant:
		m.ids = make(map[uuid.UUID]struct{}, len(r.Scope.IDs))
		for _, s := range r.Scope.IDs {
			if id, err := uuid.Parse(s); err == nil {
				m.ids[id] = struct{}{}
			}
		}
	case ScopeCategory:
		m.cats = make(map[string]struct{}, len(r.Scope.IDs))
		for _, s := range r.Scope.IDs {
			m.cats[s] = struct{}{}
		}
	}
	return m
}

func (m matcher) match(l Line) bool {
	var ok bool
	switch m.typ {
	case ScopeCart:
		ok = true
	case ScopeProduct:
		_, ok = m.ids[l.ProductID]
	case ScopeVariant:
		_, ok = m.ids[l.VariantID]
	case ScopeCategory:
		_, ok = m.cats[l.Category]
	}
	return ok
}

var codeRe = regexp.MustCompile(`^[A-Z0-9_-]{3,32}$`)

// Validate checks r as the admin API accepts it and returns field → message for each
// problem, keyed by the JSON field names of the API ("name", "kind", "value", "currency",
// "scope.type", "scope.ids", "code", "ends_at", "min_subtotal"); nil when r is valid.
// The code is checked after NormalizeCode, so the caller stores NormalizeCode(r.Code).
func (r Rule) Validate() map[string]string {
	errs := map[string]string{}
	if n := utf8.RuneCountInString(strings.TrimSpace(r.Name)); n < 1 || n > 200 || !utf8.ValidString(r.Name) {
		errs["name"] = "must be 1 to 200 characters"
	}
	switch r.Kind {
	case KindPercentage:
		if r.Value < 1 || r.Value > 100 {
			errs["value"] = "must be a whole percentage from 1 to 100"
		}
		if r.Currency != "" && !money.ValidCurrency(r.Currency) {
			errs["currency"] = "must be a 3-letter ISO 4217 code"
		}
	case KindFixedAmount:
		if r.Value <= 0 {
			errs["value"] = "must be a positive amount in minor units"
		}
		if !money.ValidCurrency(r.Currency) {
			errs["currency"] = "is required for fixed_amount and must be a 3-letter ISO 4217 code"
		}
	default:
		errs["kind"] = "must be percentage or fixed_amount"
	}
	switch r.Scope.Type {
	case ScopeCart:
		if len(r.Scope.IDs) > 0 {
			errs["scope.ids"] = "must be empty for a cart scope"
		}
	case ScopeProduct, ScopeVariant:
		if len(r.Scope.IDs) == 0 {
			errs["scope.ids"] = "must list at least one id"
		}
		for _, s := range r.Scope.IDs {
			if _, err := uuid.Parse(s); err != nil {
				errs["scope.ids"] = "must all be UUIDs"
				break
			}
		}
	case ScopeCategory:
		if len(r.Scope.IDs) == 0 {
			errs["scope.ids"] = "must list at least one category"
		}
		if slices.Contains(r.Scope.IDs, "") {
			errs["scope.ids"] = "must not contain an empty category"
		}
	default:
		errs["scope.type"] = "must be cart, product, category or variant"
	}
	if r.Code != "" && !codeRe.MatchString(NormalizeCode(r.Code)) {
		errs["code"] = "must be 3 to 32 characters of A-Z, 0-9, _ or -"
	}
	if r.StartsAt != nil && r.EndsAt != nil && !r.EndsAt.After(*r.StartsAt) {
		errs["ends_at"] = "must be after starts_at"
	}
	if ms := r.MinSubtotal; ms != nil {
		switch {
		case ms.Amount < 0:
			errs["min_subtotal"] = "amount must be zero or more"
		case !money.ValidCurrency(ms.Currency):
			errs["min_subtotal"] = "currency must be a 3-letter ISO 4217 code"
		case r.Currency != "" && ms.Currency != r.Currency:
			errs["min_subtotal"] = "currency must be the discount's currency"
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
