package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/caarlos0/env/v11"

	"commerce/internal/app"
)

// loadConfig reads the environment: the one place in the service that does.
func loadConfig() (app.Config, error) {
	cfg, err := env.ParseAs[app.Config]()
	if err != nil {
		return app.Config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
