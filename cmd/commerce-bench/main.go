// Command commerce-bench is the load generator of `make bench`: it starts the commerce
// service in-process on a fresh database and Redis key prefix (both removed at the end),
// on the PostgreSQL and Redis the environment names (the service's own variables), drives
// it over loopback HTTP, and writes bench/results/latest.{json,md}.
//
//	commerce-bench [--quick] [--out DIR] [--duration D] [--products N] [--concurrency N]
//	               [--only STEPS] [--cpuprofile FILE [--profile-step STEP]] [--pprof ADDR]
//
// BENCH_QUICK=1 in the environment (what `make bench BENCH_QUICK=1` sets) selects the run
// that completes in about a minute. It exits 1 when any step failed or any figure had
// errors (the report is still written and says which).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with --pprof
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"commerce/internal/app"
	"commerce/internal/bench"
)

// config is the service's configuration plus the generator's own switch.
type config struct {
	app.Config
	// Quick is the default of --quick.
	Quick bool `env:"BENCH_QUICK" envDefault:"false"`
}

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "commerce-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg, err := env.ParseAs[config]()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	fs := flag.NewFlagSet("commerce-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", cfg.Quick, "short phases and a smaller catalog (about a minute); default from BENCH_QUICK")
	out := fs.String("out", "bench/results", "directory for latest.json and latest.md (empty: do not write)")
	duration := fs.Duration("duration", 0, "measured duration of each timed phase (0: the mode's default)")
	products := fs.Int("products", 0, "catalog size of the read storm (0: the mode's default)")
	concurrency := fs.Int("concurrency", 0, "closed-loop clients (0: 64)")
	only := fs.String("only", "", "comma-separated steps to run: "+strings.Join(bench.StepNames, ","))
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (service and generator) to this file")
	profileStep := fs.String("profile-step", "", "with --cpuprofile: profile only this step (a name of --only)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (block and mutex profiles on) while the run lasts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pprofAddr != "" {
		if !strings.HasPrefix(*pprofAddr, "127.0.0.1:") && !strings.HasPrefix(*pprofAddr, "localhost:") {
			return fmt.Errorf("--pprof must be a loopback address (127.0.0.1:PORT)")
		}
		runtime.SetBlockProfileRate(10_000) // one sample per 10 µs blocked
		runtime.SetMutexProfileFraction(10)
		srv := &http.Server{Addr: *pprofAddr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.ListenAndServe() }()
		defer srv.Close()
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
			s = strings.TrimSpace(s)
			if !slices.Contains(bench.StepNames, s) {
				return fmt.Errorf("unknown step %q (steps: %s)", s, strings.Join(bench.StepNames, ","))
			}
			opt.Only = append(opt.Only, s)
		}
	}
	opt.CPUProfile = *cpuProfile
	if *profileStep != "" && !slices.Contains(bench.StepNames, *profileStep) {
		return fmt.Errorf("unknown step %q (steps: %s)", *profileStep, strings.Join(bench.StepNames, ","))
	}
	opt.ProfileStep = *profileStep
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	_, err = bench.Run(ctx, cfg.Config, log, opt)
	return err
}
