package checkout

import (
	"fmt"
	"testing"
)

func TestCanTransition(t *testing.T) {
	all := []State{StateReserving, StateAwaitingPayment, StateCompleting, StateCompleted, StateCancelled, StateExpired}
	allowed := map[[2]State]bool{
		{StateReserving, StateAwaitingPayment}:  true,
		{StateReserving, StateCancelled}:        true,
		{StateReserving, StateExpired}:          true,
		{StateAwaitingPayment, StateCompleting}: true,
		{StateAwaitingPayment, StateCancelled}:  true,
		{StateAwaitingPayment, StateExpired}:    true,
		{StateCompleting, StateCompleted}:       true,
		{StateCompleting, StateAwaitingPayment}: true,
		{StateCompleting, StateCancelled}:       true,
		{StateCompleting, StateExpired}:         true,
	}
	n := 0
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]State{from, to}]
			if want {
				n++
			}
			t.Run(fmt.Sprintf("%s->%s", from, to), func(t *testing.T) {
				if got := CanTransition(from, to); got != want {
					t.Fatalf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
				}
			})
		}
	}
	if n != len(allowed) {
		t.Fatalf("table names %d allowed transitions, %d checked", len(allowed), n)
	}
	for _, bad := range []State{"", "paid", "COMPLETED"} {
		if CanTransition(bad, StateCancelled) || CanTransition(StateReserving, bad) {
			t.Fatalf("unknown state %q accepted", bad)
		}
	}
}

func TestStateFinal(t *testing.T) {
	tests := []struct {
		s     State
		final bool
	}{
		{StateReserving, false}, {StateAwaitingPayment, false}, {StateCompleting, false},
		{StateCompleted, true}, {StateCancelled, true}, {StateExpired, true},
	}
	for _, tt := range tests {
		if tt.s.Final() != tt.final || !tt.s.Valid() {
			t.Errorf("%s: Final() = %v, Valid() = %v", tt.s, tt.s.Final(), tt.s.Valid())
		}
	}
}

func TestValidEmail(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"a@example.com", true}, {"", false}, {"no-at", false}, {"Bob <bob@example.com>", false},
		{" a@example.com", false}, {"a@b", true},
	}
	for _, tt := range tests {
		if got := validEmail(tt.s); got != tt.want {
			t.Errorf("validEmail(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
