package bench

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/db"
)

// Healthz measures GET /healthz through the same HTTP stack as every scenario: the HTTP
// limit of this machine with this generator.
func Healthz(ctx context.Context, c *Client, l Load) (Result, error) {
	l.Name = "baseline: GET /healthz"
	return Drive(ctx, l, getOK(c, "/healthz"))
}

// PGReserve measures the reservation a shop without Redis would do: one conditional UPDATE
// of a hot inventory row per reservation, from l.Concurrency clients over a pool of
// poolSize connections. The row gets a stock so large that every UPDATE succeeds.
func PGReserve(ctx context.Context, dsn string, poolSize int32, currency string, l Load) (Result, error) {
	pool, err := db.Open(ctx, dsn, poolSize)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	cat, err := CreateProducts(ctx, pool, "pg-hot-"+randHex(3), 1, 1, 1_000_000_000_000, currency)
	if err != nil {
		return Result{}, err
	}
	hot := cat.Variants[0]
	l.Name = "baseline: PostgreSQL-only reserve (hot row)"
	res, err := Drive(ctx, l, func(ctx context.Context, _ int, _ int64) (int, error) {
		return 0, pgReserveOnce(ctx, pool, hot)
	})
	res.Note = fmt.Sprintf("UPDATE inventory SET on_hand = on_hand - 1 WHERE variant_id = $1 AND on_hand >= 1; %d clients over a pool of %d connections", l.Concurrency, poolSize)
	return res, err
}

// PGCommits measures PostgreSQL's commit throughput when nothing contends: the same
// conditional UPDATE, but each client on a row of its own, so commits only share the WAL
// flush (group commit). With synchronous_commit on, this is the disk's fsync rate times
// the group size: the bound of every path that commits per request.
func PGCommits(ctx context.Context, dsn string, poolSize int32, currency string, l Load) (Result, error) {
	pool, err := db.Open(ctx, dsn, poolSize)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	cat, err := CreateProducts(ctx, pool, "pg-rows-"+randHex(3), l.Concurrency, 1, 1_000_000_000_000, currency)
	if err != nil {
		return Result{}, err
	}
	l.Name = "baseline: PostgreSQL commits (a row per client)"
	res, err := Drive(ctx, l, func(ctx context.Context, w int, _ int64) (int, error) {
		return 0, pgReserveOnce(ctx, pool, cat.Variants[w])
	})
	var syncCommit string
	_ = pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&syncCommit)
	res.Note = fmt.Sprintf("the same UPDATE on %d distinct rows; %d clients over a pool of %d; synchronous_commit=%s",
		l.Concurrency, l.Concurrency, poolSize, syncCommit)
	return res, err
}

func pgReserveOnce(ctx context.Context, pool *pgxpool.Pool, variant uuid.UUID) error {
	tag, err := pool.Exec(ctx, "UPDATE inventory SET on_hand = on_hand - 1 WHERE variant_id = $1 AND on_hand >= 1", variant)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return errors.New("hot row out of stock")
	}
	return nil
}

// ScriptCall is one invocation of a Lua script: its source, keys and arguments. In Args,
// RandToken stands for a value that must differ between calls (a holder id); redis-benchmark
// replaces it with a random number, the Go loop with a counter.
type ScriptCall struct {
	Source string
	Keys   []string
	Args   []string
}

// RandToken is the redis-benchmark placeholder for a random 12-digit number.
const RandToken = "__rand_int__"

// RedisBenchmark runs `redis-benchmark -n n -c clients -P 1 --csv EVALSHA …` against the
// server at addr and returns its throughput and latency figures. It returns exec.ErrNotFound
// (wrapped) when redis-benchmark is not installed.
func RedisBenchmark(ctx context.Context, addr, password string, cluster bool, sha string, call ScriptCall, n, clients int) (Result, error) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return Result{}, fmt.Errorf("redis-benchmark: %w", err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Result{}, err
	}
	args := []string{"-h", host, "-p", port, "-n", strconv.Itoa(n), "-c", strconv.Itoa(clients), "-P", "1", "--csv",
		"-r", "1000000000"}
	if cluster {
		args = append(args, "--cluster")
	}
	args = append(args, "EVALSHA", sha, strconv.Itoa(len(call.Keys)))
	args = append(args, call.Keys...)
	args = append(args, call.Args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	if password != "" {
		cmd.Env = append(cmd.Environ(), "REDISCLI_AUTH="+password)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("redis-benchmark: %w: %s", err, truncate(stderr.String()+stdout.String(), 300))
	}
	elapsed := time.Since(start)
	res, err := parseRedisBenchmarkCSV(stdout.String())
	if err != nil {
		return Result{}, err
	}
	res.Name = "baseline: redis-benchmark EVALSHA reserve"
	res.Concurrency = clients
	res.Requests = int64(n)
	res.ElapsedSec = elapsed.Seconds()
	shown := make([]string, len(call.Keys))
	for i, k := range call.Keys {
		if t := hashTag(k); t != "" {
			k = k[strings.IndexByte(k, '{'):]
			k = strings.Replace(k, "{"+t+"}", "{v}", 1)
		}
		shown[i] = k
	}
	res.Note = "redis-benchmark -n " + strconv.Itoa(n) + " -c " + strconv.Itoa(clients) + " -P 1 -r 1000000000 EVALSHA <sha> " +
		strconv.Itoa(len(call.Keys)) + " " + strings.Join(shown, " ") + " " + strings.Join(call.Args, " ") +
		" (keys under the run's prefix; the script is inv_lib.lua + reserve.lua as the service loads it)"
	if strings.Contains(stdout.String(), "Error") || strings.Contains(stderr.String(), "Error") {
		res.Errors = 1
		res.ErrorSamples = []string{truncate(stderr.String()+stdout.String(), 200)}
	}
	return res, nil
}

// parseRedisBenchmarkCSV reads the --csv output of redis-benchmark (Redis 7: test, rps,
// avg, min, p50, p95, p99, max latency in ms).
func parseRedisBenchmarkCSV(out string) (Result, error) {
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		return Result{}, fmt.Errorf("redis-benchmark output: %w: %s", err, truncate(out, 200))
	}
	if len(recs) < 2 {
		return Result{}, fmt.Errorf("redis-benchmark printed no result: %s", truncate(out, 200))
	}
	head, row := recs[0], recs[len(recs)-1]
	col := map[string]float64{}
	for i, h := range head {
		if i < len(row) {
			if v, err := strconv.ParseFloat(row[i], 64); err == nil {
				col[h] = v
			}
		}
	}
	rps, ok := col["rps"]
	if !ok || rps <= 0 {
		return Result{}, fmt.Errorf("redis-benchmark output has no rps: %s", truncate(out, 200))
	}
	return Result{RPS: rps, P50ms: col["p50_latency_ms"], P99ms: col["p99_latency_ms"], MaxMs: col["max_latency_ms"],
		MeanMs: col["avg_latency_ms"]}, nil
}

// GoEvalSha measures the same script call through go-redis from l.Concurrency goroutines,
// one EVALSHA round trip per operation (what redis-benchmark -P 1 does): the Redis side of
// the reservation path as the service sees it, and the fallback when redis-benchmark is
// missing.
func GoEvalSha(ctx context.Context, rdb redis.UniversalClient, sha string, call ScriptCall, l Load) (Result, error) {
	return Drive(ctx, l, func(ctx context.Context, _ int, i int64) (int, error) {
		args := make([]any, len(call.Args))
		for j, a := range call.Args {
			if a == RandToken {
				args[j] = fmt.Sprintf("g%011d", i&0x7fffffffff)
			} else {
				args[j] = a
			}
		}
		return 0, rdb.EvalSha(ctx, sha, call.Keys, args...).Err()
	})
}

// LoadScript loads src (SCRIPT LOAD, on every master in Cluster) and returns its SHA1.
func LoadScript(ctx context.Context, rdb redis.UniversalClient, src string) (string, error) {
	sum := sha1.Sum([]byte(src))
	sha := hex.EncodeToString(sum[:])
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return sha, cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.ScriptLoad(ctx, src).Err()
		})
	}
	return sha, rdb.ScriptLoad(ctx, src).Err()
}
