package httpx

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/labstack/echo/v4"
)

// The paging limits of every list route.
const (
	MaxPage        = 1_000_000
	MaxPerPage     = 100
	DefaultPerPage = 20
)

// Page is the one shape of every paged list: the items of page `page` (from 1) of
// `per_page`, and how many items all pages hold.
type Page[T any] struct {
	Items   []T   `json:"items"`
	Page    int   `json:"page"`
	PerPage int   `json:"per_page"`
	Total   int64 `json:"total"`
}

// Paging reads the page and per_page query parameters with the rule every list route
// shares: a value that is not an integer is a 400; an integer out of range (page
// 1..MaxPage, per_page 1..MaxPerPage) a 422 naming each bad field.
func Paging(c echo.Context) (page, perPage int, err error) {
	fields := map[string]string{}
	read := func(name string, def, hi int) (int, error) {
		s := c.QueryParam(name)
		if s == "" {
			return def, nil
		}
		n, err := strconv.Atoi(s)
		switch {
		case errors.Is(err, strconv.ErrRange):
			fields[name] = fmt.Sprintf("must be between 1 and %d", hi)
		case err != nil:
			return 0, BadRequest(name + " must be an integer")
		case n < 1 || n > hi:
			fields[name] = fmt.Sprintf("must be between 1 and %d", hi)
		}
		return n, nil
	}
	if page, err = read("page", 1, MaxPage); err != nil {
		return 0, 0, err
	}
	if perPage, err = read("per_page", DefaultPerPage, MaxPerPage); err != nil {
		return 0, 0, err
	}
	if len(fields) > 0 {
		return 0, 0, Validation(fields)
	}
	return page, perPage, nil
}
