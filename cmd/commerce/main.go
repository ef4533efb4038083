// Command commerce runs the commerce service and its operator subcommands.
//
//	commerce [serve]                      serve HTTP (default)
//	commerce migrate up|down              apply or roll back one step of the migrations
//	commerce seed                         load the demo catalog and discount rules (only into an empty catalog)
//	commerce token --customer ID [--ttl 1h]   print a customer JWT signed with AUTH_JWT_SECRET
//	commerce inventory import [--key K] FILE  sync stock from a CSV/JSON file of any size (resumable)
//	commerce events tail [--group G]          read the event stream as a consumer group, with acks
//
// The load generator is a command of its own, cmd/commerce-bench (make bench).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"commerce/internal/app"
	"commerce/internal/platform/auth"
	"commerce/internal/platform/db"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "commerce:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	switch cmd {
	case "serve":
		return serve(ctx, cfg, log)
	case "migrate":
		return migrate(ctx, cfg, args)
	case "seed":
		return seed(ctx, cfg, log)
	case "token":
		return token(cfg, args)
	case "inventory":
		return inventoryCmd(ctx, cfg, args)
	case "events":
		return eventsCmd(ctx, cfg, args)
	case "help", "-h", "--help":
		fmt.Println("usage: commerce [serve | migrate up|down | seed | token --customer ID [--ttl 1h] | inventory import [--key K] FILE | events tail [--group G]]")
		return nil
	}
	return fmt.Errorf("unknown command %q (serve, migrate, seed, token, inventory, events)", cmd)
}

func serve(ctx context.Context, cfg app.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("starting", slog.Any("config", cfg))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if cfg.SeedDemo {
		n, err := a.Seed(ctx)
		if err != nil {
			a.Close(ctx)
			return fmt.Errorf("seed: %w", err)
		}
		if n > 0 {
			log.Info("seeded demo data", slog.Int("records", n))
		}
	}
	l, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		a.Close(ctx)
		return err
	}
	return a.Serve(ctx, l)
}

func migrate(ctx context.Context, cfg app.Config, args []string) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down") {
		return errors.New("usage: commerce migrate up|down")
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := db.Migrate(pool, args[0]); err != nil {
		return err
	}
	fmt.Println("migrate", args[0], "done")
	return nil
}

func seed(ctx context.Context, cfg app.Config, log *slog.Logger) error {
	cfg.MigrateOnStart = true
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	n, err := a.Seed(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("seeded %d records\n", n)
	return nil
}

func token(cfg app.Config, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	customer := fs.String("customer", "", "customer id (1-64 characters of [A-Za-z0-9_-])")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.JWTSecret == "" {
		return errors.New("AUTH_JWT_SECRET is not set")
	}
	if *ttl <= 0 {
		return errors.New("--ttl must be positive")
	}
	t, err := auth.NewTokens(cfg.JWTSecret).Issue(*customer, *ttl)
	if err != nil {
		return err
	}
	fmt.Println(t)
	return nil
}
