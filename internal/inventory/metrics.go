package inventory

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of one Service, registered on the Registerer given to NewService.
type metrics struct {
	reservations *prometheus.CounterVec // outcome: ok | insufficient | error
	reclaimed    prometheus.Counter
	recovered    *prometheus.CounterVec // outcome: sold | returned
	driftFound   prometheus.Counter
	driftFixed   prometheus.Counter
	fallbacks    prometheus.Counter
	finalizeLag  prometheus.Counter
	scripts      *prometheus.HistogramVec // script
	lowStock     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reservations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commerce_inventory_reservations_total",
			Help: "Reserve calls by outcome (ok, insufficient, error).",
		}, []string{"outcome"}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commerce_inventory_holds_reclaimed_total",
			Help: "Expired holds returned to available (by reserve's lazy reclaim and by sweep).",
		}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commerce_inventory_commits_recovered_total",
			Help: "Committing holds of dead commits decided by recovery (sold: finalized; returned: stock given back).",
		}, []string{"outcome"}),
		driftFound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commerce_inventory_drift_found_total",
			Help: "Variants whose Redis counter disagreed with PostgreSQL at reconcile.",
		}),
		driftFixed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commerce_inventory_drift_fixed_total",
			Help: "Variants whose Redis counter reconcile set from PostgreSQL.",
		}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commerce_inventory_availability_fallback_total",
			Help: "Availability reads answered from PostgreSQL on_hand because Redis failed.",
		}),
		finalizeLag: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commerce_inventory_finalize_deferred_total",
			Help: "Sales committed in PostgreSQL whose Redis step 3 failed and was left to recovery.",
		}),
		scripts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "commerce_inventory_script_duration_seconds",
			Help:    "Latency of the inventory Lua scripts, by script.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"script"}),
		lowStock: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commerce_inventory_low_stock_events_total",
			Help: "inventory.low_stock events written to the outbox (a reservation took available below the variant's threshold).",
		}),
	}
	for _, o := range []string{"ok", "insufficient", "error"} {
		m.reservations.WithLabelValues(o)
	}
	for _, o := range []string{"sold", "returned"} {
		m.recovered.WithLabelValues(o)
	}
	for _, c := range []prometheus.Collector{m.reservations, m.reclaimed, m.recovered, m.driftFound,
		m.driftFixed, m.fallbacks, m.finalizeLag, m.scripts, m.lowStock} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
