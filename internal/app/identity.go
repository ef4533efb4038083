package app

import (
	"github.com/labstack/echo/v4"

	"commerce/internal/platform/auth"
)

func identify(a *App) echo.MiddlewareFunc { return auth.Identify(a.Tokens, a.Sessions) }

func sessionHandler(a *App) echo.HandlerFunc { return auth.SessionHandler(a.Sessions) }
