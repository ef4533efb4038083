package resilience

import (
	"context"
	"strings"
	"testing"
	"time"

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

func TestDependencyCollector(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewDependencyCollector(map[string]Probe{
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	}, 200*time.Millisecond))
	want := func(up string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP commerce_dependency_up Whether the dependency answered a ping at scrape time (1) or not (0).
# TYPE commerce_dependency_up gauge
commerce_dependency_up{dependency="redis"} `+up+"\n"), "commerce_dependency_up"); err != nil {
			t.Fatal(err)
		}
	}
	want("1")
	srv.Kill()
	want("0")
	srv.Start()
	want("1")
}
