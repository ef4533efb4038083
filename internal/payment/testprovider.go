package payment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"commerce/internal/platform/money"
)

// Test payment methods. Stripe's test payment method ids behave the same way, so one
// storefront script works with both providers.
const (
	TokenOK       = "tok_ok"       // succeeds (also pm_card_visa)
	TokenDeclined = "tok_declined" // declined (also pm_card_chargeDeclined)
	Token3DS      = "tok_3ds"      // requires_action (also pm_card_threeDSecure2Required)
)

// Op names a provider operation, for failure scripts.
type Op string

// Operations of the test provider.
const (
	OpCreate   Op = "create"
	OpConfirm  Op = "confirm"
	OpCapture  Op = "capture"
	OpCancel   Op = "cancel"
	OpRefund   Op = "refund"
	OpRetrieve Op = "retrieve"
	// OpRetrieveRefund is RetrieveRefund.
	OpRetrieveRefund Op = "retrieve_refund"
)

// Failure is a scripted failure of the next call of an operation.
type Failure int

// Failures: Before fails without doing anything (the provider was unreachable); After
// does the work and then fails (the reply was lost). Both return ErrUnavailable.
const (
	FailBefore Failure = iota + 1
	FailAfter
)

// TestProvider is the built-in payment provider for development and tests, and a scripted
// fake for behaviour a stateless mock cannot show: declines, 3-D Secure, lost replies.
// It keeps intents in memory and counts every capture (money taken) and refund, so tests
// can prove "charged once". An intent it does not know (created by another replica or
// before a restart) is treated as a fresh one for the amount its id encodes, so it works
// behind a load balancer too. It honours idempotency keys like Stripe: a repeated key
// answers the first outcome without acting again.
type TestProvider struct {
	// ManualCapture makes confirmation authorize only (requires_capture); Capture then
	// takes the money.
	ManualCapture bool
	// PendingRefunds makes every new refund start pending, as a bank transfer's does at
	// Stripe; SettleRefund ends it later.
	PendingRefunds bool
	// MinAmount, when positive, is the smallest intent it opens (a smaller one is
	// ErrAmountTooSmall, as Stripe refuses a charge under its minimum).
	MinAmount int64

	mu       sync.Mutex
	intents  map[string]*testIntent
	refunds  map[string]Refund // by the service's refund id
	replies  map[string]reply  // by idempotency key
	fail     map[Op][]Failure
	captures int
	calls    map[Op]int
	// hook, when set, runs (without the lock) at the start of every call.
	hook func(op Op, intentID string)
}

type testIntent struct {
	in       Intent
	captures int
	refunded int64
}

type reply struct {
	in  Intent
	err error
}

// NewTestProvider returns an empty test provider (automatic capture).
func NewTestProvider() *TestProvider {
	return &TestProvider{intents: map[string]*testIntent{}, refunds: map[string]Refund{},
		replies: map[string]reply{}, fail: map[Op][]Failure{}, calls: map[Op]int{}}
}

// Name is "test".
func (p *TestProvider) Name() string { return "test" }

// FailNext scripts the next call of op to fail with f (calls queue up in order).
func (p *TestProvider) FailNext(op Op, f Failure) {
	p.mu.Lock()
	p.fail[op] = append(p.fail[op], f)
	p.mu.Unlock()
}

// SetHook installs f, run at the start of every call (tests use it to slow calls down or
// to act in between).
func (p *TestProvider) SetHook(f func(op Op, intentID string)) {
	p.mu.Lock()
	p.hook = f
	p.mu.Unlock()
}

// Captures returns how many times money was taken (confirmations with automatic
// capture and captures), over all intents.
func (p *TestProvider) Captures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.captures
}

// Calls returns how many calls of op reached the provider (scripted FailBefore ones
// excluded).
func (p *TestProvider) Calls(op Op) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

// Refunds returns the refunds made, by the service's refund id.
func (p *TestProvider) Refunds() map[string]Refund {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Refund, len(p.refunds))
	for k, v := range p.refunds {
		out[k] = v
	}
	return out
}

// Tamper changes what the provider says the intent charges (amount-mismatch tests).
func (p *TestProvider) Tamper(intentID string, amount money.Money) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ti := p.intents[intentID]; ti != nil {
		ti.in.Amount = amount
	}
}

// ConfirmClientSide confirms the intent as the storefront would with Stripe.js (no
// idempotency key, no service involved); for Token3DS it also completes the
// authentication, so the intent succeeds.
func (p *TestProvider) ConfirmClientSide(intentID, paymentMethod string) (Intent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ti, err := p.lookup(intentID)
	if err != nil {
		return Intent{}, err
	}
	if paymentMethod == Token3DS || paymentMethod == "pm_card_threeDSecure2Required" {
		paymentMethod = TokenOK
	}
	return p.confirmLocked(ti, paymentMethod)
}

// begin runs the hook and pops a scripted failure of op (FailBefore answers at once).
func (p *TestProvider) begin(op Op, intentID string) (Failure, error) {
	p.mu.Lock()
	h := p.hook
	p.mu.Unlock()
	if h != nil {
		h(op, intentID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var f Failure
	if q := p.fail[op]; len(q) > 0 {
		f, p.fail[op] = q[0], q[1:]
	}
	if f == FailBefore {
		return f, fmt.Errorf("test provider %s: %w", op, ErrUnavailable)
	}
	p.calls[op]++
	return f, nil
}

func (p *TestProvider) after(op Op, f Failure, in Intent, err error) (Intent, error) {
	if f == FailAfter {
		return Intent{}, fmt.Errorf("test provider %s (reply lost): %w", op, ErrUnavailable)
	}
	return in, err
}

func newID(prefix string) (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("test provider: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// CreateIntent returns a new intent pi_<hex>_<amount><currency> (the suffix lets another
// replica answer for it).
func (p *TestProvider) CreateIntent(_ context.Context, cp CreateParams) (Intent, error) {
	f, err := p.begin(OpCreate, "")
	if err != nil {
		return Intent{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.replies[cp.IdempotencyKey]; ok && cp.IdempotencyKey != "" {
		return p.after(OpCreate, f, r.in, r.err)
	}
	if cp.Amount.Amount < p.MinAmount {
		return Intent{}, fmt.Errorf("test provider: intent of %d is under the minimum %d: %w",
			cp.Amount.Amount, p.MinAmount, ErrAmountTooSmall)
	}
	id, err := newID("pi_")
	if err != nil {
		return Intent{}, err
	}
	id += "_" + strconv.FormatInt(cp.Amount.Amount, 10) + strings.ToLower(cp.Amount.Currency)
	in := Intent{ID: id, Status: StatusRequiresPaymentMethod, Amount: cp.Amount, ClientSecret: id + "_secret_test",
		CheckoutID: cp.CheckoutID.String()}
	p.intents[id] = &testIntent{in: in}
	if cp.IdempotencyKey != "" {
		p.replies[cp.IdempotencyKey] = reply{in: in}
	}
	return p.after(OpCreate, f, in, nil)
}

// lookup returns the intent, rebuilding an unknown one from its id.
func (p *TestProvider) lookup(id string) (*testIntent, error) {
	if ti := p.intents[id]; ti != nil {
		return ti, nil
	}
	i := strings.LastIndexByte(id, '_')
	if !strings.HasPrefix(id, "pi_") || i < 0 || len(id)-i < 5 {
		return nil, fmt.Errorf("intent %q: %w", id, ErrNotFound)
	}
	suffix := id[i+1:]
	cur := strings.ToUpper(suffix[len(suffix)-3:])
	amount, err := strconv.ParseInt(suffix[:len(suffix)-3], 10, 64)
	if err != nil || !money.ValidCurrency(cur) {
		return nil, fmt.Errorf("intent %q: %w", id, ErrNotFound)
	}
	ti := &testIntent{in: Intent{ID: id, Status: StatusRequiresPaymentMethod, Amount: money.New(amount, cur),
		ClientSecret: id + "_secret_test"}}
	p.intents[id] = ti
	return ti, nil
}

func (p *TestProvider) confirmLocked(ti *testIntent, method string) (Intent, error) {
	switch ti.in.Status {
	case StatusSucceeded, StatusRequiresCapture, StatusCanceled, StatusProcessing:
		return ti.in, fmt.Errorf("intent %s is %s: %w", ti.in.ID, ti.in.Status, ErrInvalidState)
	}
	switch method {
	case TokenOK, "pm_card_visa":
		ti.in.NextAction, ti.in.DeclineReason = nil, ""
		if p.ManualCapture {
			ti.in.Status = StatusRequiresCapture
		} else {
			ti.in.Status = StatusSucceeded
			ti.in.AmountReceived = ti.in.Amount.Amount
			ti.captures++
			p.captures++
		}
		return ti.in, nil
	case Token3DS, "pm_card_threeDSecure2Required":
		ti.in.Status = StatusRequiresAction
		ti.in.NextAction = &NextAction{Type: "use_stripe_sdk"}
		return ti.in, &ActionError{Intent: ti.in}
	default:
		ti.in.Status = StatusRequiresPaymentMethod
		ti.in.DeclineReason = "card_declined"
		return ti.in, fmt.Errorf("intent %s: %w", ti.in.ID, ErrDeclined)
	}
}

// Confirm succeeds for tok_ok (pm_card_visa), needs action for tok_3ds, and declines
// every other payment method.
func (p *TestProvider) Confirm(_ context.Context, intentID, method, key string) (Intent, error) {
	f, err := p.begin(OpConfirm, intentID)
	if err != nil {
		return Intent{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.replies[key]; ok && key != "" {
		return p.after(OpConfirm, f, r.in, r.err)
	}
	ti, err := p.lookup(intentID)
	if err != nil {
		return Intent{}, err
	}
	in, err := p.confirmLocked(ti, method)
	if key != "" {
		p.replies[key] = reply{in: in, err: err}
	}
	return p.after(OpConfirm, f, in, err)
}

// Capture takes the money of a requires_capture intent.
func (p *TestProvider) Capture(_ context.Context, intentID, key string) (Intent, error) {
	f, err := p.begin(OpCapture, intentID)
	if err != nil {
		return Intent{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.replies[key]; ok && key != "" {
		return p.after(OpCapture, f, r.in, r.err)
	}
	ti, err := p.lookup(intentID)
	if err != nil {
		return Intent{}, err
	}
	var rerr error
	if ti.in.Status != StatusRequiresCapture {
		rerr = fmt.Errorf("capture intent %s in %s: %w", intentID, ti.in.Status, ErrInvalidState)
	} else {
		ti.in.Status = StatusSucceeded
		ti.in.AmountReceived = ti.in.Amount.Amount
		ti.captures++
		p.captures++
	}
	if key != "" {
		p.replies[key] = reply{in: ti.in, err: rerr}
	}
	return p.after(OpCapture, f, ti.in, rerr)
}

// Cancel voids an intent that took no money.
func (p *TestProvider) Cancel(_ context.Context, intentID, key string) (Intent, error) {
	f, err := p.begin(OpCancel, intentID)
	if err != nil {
		return Intent{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.replies[key]; ok && key != "" {
		return p.after(OpCancel, f, r.in, r.err)
	}
	ti, err := p.lookup(intentID)
	if err != nil {
		return Intent{}, err
	}
	var rerr error
	switch ti.in.Status {
	case StatusSucceeded:
		rerr = fmt.Errorf("cancel intent %s: succeeded: %w", intentID, ErrInvalidState)
	case StatusCanceled:
	default:
		ti.in.Status = StatusCanceled
		ti.in.NextAction = nil
	}
	if key != "" {
		p.replies[key] = reply{in: ti.in, err: rerr}
	}
	return p.after(OpCancel, f, ti.in, rerr)
}

// Refund refunds part or all of a succeeded intent, once per refund id.
func (p *TestProvider) Refund(_ context.Context, rp RefundParams) (Refund, error) {
	f, err := p.begin(OpRefund, rp.IntentID)
	if err != nil {
		return Refund{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.refunds[rp.ID.String()]; ok {
		if f == FailAfter {
			return Refund{}, fmt.Errorf("test provider refund (reply lost): %w", ErrUnavailable)
		}
		return r, nil
	}
	ti, err := p.lookup(rp.IntentID)
	if err != nil {
		return Refund{}, err
	}
	if ti.in.Status != StatusSucceeded {
		return Refund{}, fmt.Errorf("refund intent %s in %s: %w", rp.IntentID, ti.in.Status, ErrInvalidState)
	}
	if rp.Amount.Amount <= 0 || ti.refunded+rp.Amount.Amount > ti.in.AmountReceived {
		return Refund{}, fmt.Errorf("refund %d of intent %s (received %d, refunded %d): %w", rp.Amount.Amount,
			rp.IntentID, ti.in.AmountReceived, ti.refunded, ErrInvalid)
	}
	pid, err := newID("re_")
	if err != nil {
		return Refund{}, err
	}
	ti.refunded += rp.Amount.Amount
	r := Refund{ProviderID: pid, RefundID: rp.ID.String(), IntentID: rp.IntentID, Amount: rp.Amount, Status: RefundSucceeded}
	if p.PendingRefunds {
		r.Status = RefundPending
	}
	p.refunds[rp.ID.String()] = r
	if f == FailAfter {
		return Refund{}, fmt.Errorf("test provider refund (reply lost): %w", ErrUnavailable)
	}
	return r, nil
}

// SettleRefund ends a pending refund (by the provider's refund id) with status, as the
// bank's answer would; a failed or canceled refund gives its amount back to the intent.
// It reports whether it found the refund pending.
func (p *TestProvider) SettleRefund(providerID string, status RefundStatus) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, r, ok := p.refundByProvider(providerID)
	if !ok || r.Status != RefundPending {
		return false
	}
	r.Status = status
	p.refunds[k] = r
	if status == RefundFailed || status == RefundCanceled {
		if ti := p.intents[r.IntentID]; ti != nil {
			ti.refunded -= r.Amount.Amount
		}
	}
	return true
}

// refundByProvider finds a refund by the provider's id (p.mu held); k is the service's
// refund id it is kept under.
func (p *TestProvider) refundByProvider(providerID string) (k string, r Refund, ok bool) {
	for k, r := range p.refunds {
		if r.ProviderID == providerID {
			return k, r, true
		}
	}
	return "", Refund{}, false
}

// RetrieveRefund returns a refund as the provider sees it, by the provider's refund id.
func (p *TestProvider) RetrieveRefund(_ context.Context, providerID string) (Refund, error) {
	f, err := p.begin(OpRetrieveRefund, providerID)
	if err != nil {
		return Refund{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, r, ok := p.refundByProvider(providerID)
	switch {
	case !ok:
		return Refund{}, fmt.Errorf("refund %q: %w", providerID, ErrNotFound)
	case f == FailAfter:
		return Refund{}, fmt.Errorf("test provider retrieve refund (reply lost): %w", ErrUnavailable)
	}
	return r, nil
}

// Retrieve returns the intent as the provider sees it.
func (p *TestProvider) Retrieve(_ context.Context, intentID string) (Intent, error) {
	f, err := p.begin(OpRetrieve, intentID)
	if err != nil {
		return Intent{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ti, err := p.lookup(intentID)
	if err != nil {
		return Intent{}, err
	}
	return p.after(OpRetrieve, f, ti.in, nil)
}

// CapturesOf returns how many times money was taken for one intent.
func (p *TestProvider) CapturesOf(intentID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ti := p.intents[intentID]; ti != nil {
		return ti.captures
	}
	return 0
}
