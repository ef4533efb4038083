package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"commerce/internal/app"
	"commerce/internal/bench"
)

// benchCmd runs `commerce bench [--quick] [--out DIR] [--duration D] [--products N]
// [--concurrency N] [--only STEPS] [--cpuprofile FILE]`: the load scenarios and baselines of internal/bench against a service
// started in-process on a fresh database and Redis key prefix (both removed at the end),
// on the PostgreSQL and Redis of cfg. BENCH_QUICK=1 in the environment (what `make bench
// BENCH_QUICK=1` sets) selects the run that completes in under a minute.
func benchCmd(ctx context.Context, cfg app.Config, log *slog.Logger, args []string) error {
	quickEnv, _ := strconv.ParseBool(os.Getenv("BENCH_QUICK"))
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", quickEnv, "short phases and a smaller catalog (under a minute); default from BENCH_QUICK")
	out := fs.String("out", "bench/results", "directory for latest.json and latest.md (empty: do not write)")
	duration := fs.Duration("duration", 0, "measured duration of each timed phase (0: the mode's default)")
	products := fs.Int("products", 0, "catalog size of the read storm (0: the mode's default)")
	concurrency := fs.Int("concurrency", 0, "closed-loop clients (0: 64)")
	only := fs.String("only", "", "comma-separated steps to run: "+strings.Join(bench.StepNames, ","))
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (service and generator) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opt := bench.DefaultOptions(*quick)
	opt.OutDir = *out
	opt.Out = os.Stdout
	if *duration > 0 {
		opt.Phase = *duration
	}
	if *products > 0 {
		opt.Products = *products
	}
	if *concurrency > 0 {
		opt.Concurrency = *concurrency
	}
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			if s = strings.TrimSpace(s); !slices.Contains(bench.StepNames, s) {
				return fmt.Errorf("bench: unknown step %q (steps: %s)", s, strings.Join(bench.StepNames, ","))
			}
			opt.Only = append(opt.Only, strings.TrimSpace(s))
		}
	}
	opt.CPUProfile = *cpuProfile
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := bench.Run(ctx, cfg, log, opt)
	return err
}
