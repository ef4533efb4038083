package jobs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

func newParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// parse parses spec in UTC (unless it names its zone) and aligns "@every" schedules.
func (s *Scheduler) parse(spec string) (cron.Schedule, error) { return parseSpec(s.parser, spec) }

func parseSpec(parser cron.Parser, spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		if !strings.Contains(spec, " ") {
			return nil, errors.New("a time zone prefix must be followed by a schedule")
		}
	} else if spec != "" {
		spec = "CRON_TZ=UTC " + spec
	}
	sched, err := parser.Parse(spec)
	if err != nil {
		return nil, err
	}
	if cd, ok := sched.(cron.ConstantDelaySchedule); ok {
		return alignedEvery{cd.Delay}, nil
	}
	return sched, nil
}

// alignedEvery is "@every d" aligned to multiples of d since the zero time, so every
// replica ticks at the same instants.
type alignedEvery struct{ d time.Duration }

func (e alignedEvery) Next(t time.Time) time.Time { return t.Truncate(e.d).Add(e.d) }

// Period returns the interval between two consecutive activations of spec after now
// (for a spec with a regular period, its period), e.g. to size a cache TTL from a warm
// schedule. Errors: a bad spec.
func Period(spec string) (time.Duration, error) {
	sched, err := parseSpec(newParser(), spec)
	if err != nil {
		return 0, fmt.Errorf("jobs: spec %q: %w", spec, err)
	}
	return period(sched), nil
}

// period estimates a schedule's period from two consecutive activations.
func period(s cron.Schedule) time.Duration {
	a := s.Next(time.Now())
	b := s.Next(a)
	if a.IsZero() || b.IsZero() {
		return maxTickWindow
	}
	return b.Sub(a)
}
