package checkout

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the checkout figures an operator watches.
type metrics struct {
	created         *prometheus.CounterVec
	completes       *prometheus.CounterVec
	transitions     *prometheus.CounterVec
	completeSeconds prometheus.Histogram
	orders          prometheus.Counter
	cancelled       prometheus.Counter
	expired         prometheus.Counter
	retaken         prometheus.Counter
	recovered       prometheus.Counter
	published       prometheus.Counter
	provider        *prometheus.CounterVec
	amountMismatch  prometheus.Counter
	actions         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commerce_checkout_create_total",
			Help: "POST /v1/checkouts outcomes: created, existing, insufficient_stock, cart_empty, below_minimum, in_progress, error."},
			[]string{"outcome"}),
		completes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commerce_checkout_complete_total",
			Help: "Checkout completions by outcome: ok, declined, expired, conflict, error."}, []string{"outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commerce_checkout_transitions_total",
			Help: "Checkout state transitions committed, by from and to state."}, []string{"from", "to"}),
		completeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "commerce_checkout_complete_seconds",
			Help:    "Time to complete a checkout (payment, stock commit, order).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		orders: prometheus.NewCounter(prometheus.CounterOpts{Name: "commerce_orders_placed_total",
			Help: "Orders placed."}),
		cancelled: prometheus.NewCounter(prometheus.CounterOpts{Name: "commerce_checkout_cancelled_total",
			Help: "Checkouts cancelled by their owner."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "commerce_checkout_expired_total",
			Help: "Checkouts expired (past CHECKOUT_TTL, or holds lost at completion)."}),
		retaken: prometheus.NewCounter(prometheus.CounterOpts{Name: "commerce_checkout_holds_retaken_total",
			Help: "Completions that took lapsing holds again before charging."}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "commerce_checkout_recovered_total",
			Help: "Checkouts repaired by recovery after a crashed request."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "commerce_outbox_published_total",
			Help: "Outbox events published to the order events stream."}),
		provider: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commerce_payment_provider_calls_total",
			Help: "Payment provider calls by operation and outcome (ok, declined, requires_action, invalid_state, not_found, invalid, amount_too_small, unavailable)."},
			[]string{"op", "outcome"}),
		amountMismatch: prometheus.NewCounter(prometheus.CounterOpts{Name: "commerce_payment_amount_mismatch_total",
			Help: "Payment intents whose amount or currency differed from the checkout total (no order placed, refunded, flagged)."}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commerce_payment_actions_total",
			Help: "Refunds and voids by kind and outcome at the provider (confirmed, failed, retry, accepted, still_pending)."},
			[]string{"kind", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.created, m.completes, m.transitions,
		m.completeSeconds, m.orders, m.cancelled, m.expired, m.retaken, m.recovered, m.published,
		m.provider, m.amountMismatch, m.actions} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("checkout: metrics already registered on this registerer")
			}
			return nil, err
		}
	}
	return m, nil
}
