package resilience

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"commerce/internal/platform/testenv"
)

func TestRedisPoolCollector(t *testing.T) {
	rdb, space := testenv.Redis(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewRedisPoolCollector(rdb))
	for i := 0; i < 5; i++ {
		if err := rdb.Set(context.Background(), space.Key("k"), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP commerce_redis_pool_conns Connections in the pool.
# TYPE commerce_redis_pool_conns gauge
commerce_redis_pool_conns 1
`), "commerce_redis_pool_conns"); err != nil && !testenv.Cluster() {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n != 8 {
		t.Fatalf("%d series (%v), want 8", n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "commerce_redis_pool_hits_total" && mf.GetMetric()[0].GetCounter().GetValue() < 4 {
			t.Fatalf("hits %v after 5 sequential commands on one connection, want >= 4", mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
}
