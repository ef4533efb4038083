package fault

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestIsUnavailable(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("bug"), false},
		{"wrapped", Unavailable(errors.New("redis down")), true},
		{"statement timeout", pg("57014"), true},
		{"admin shutdown", pg("57P01"), true},
		{"crash shutdown", pg("57P02"), true},
		{"cannot connect now", pg("57P03"), true},
		{"connection failure", pg("08006"), true},
		{"connection does not exist", pg("08003"), true},
		{"too many connections", pg("53300"), true},
		{"disk full", pg("53100"), true},
		{"serialization failure", pg("40001"), true},
		{"deadlock", pg("40P01"), true},
		{"lock timeout", pg("55P03"), true},
		{"unique violation", pg("23505"), false},
		{"check violation", pg("23514"), false},
		{"syntax error", pg("42601"), false},
		{"division by zero", pg("22012"), false},
	}
	for _, tt := range tests {
		if got := IsUnavailable(tt.err); got != tt.want {
			t.Errorf("%s: IsUnavailable = %v, want %v", tt.name, got, tt.want)
		}
	}
	if Unavailable(nil) != nil {
		t.Error("Unavailable(nil) != nil")
	}
}
