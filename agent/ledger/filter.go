package ledger

import (
	"slices"
	"time"
)

// Filter selects events for `kaoqin log` and `kaoqin export`. Zero fields match everything.
type Filter struct {
	Since, Until time.Time
	Session      string
	Trainee      string
	Kind         Kind
	Flag         Flag
}

// Match reports whether e passes the filter.
func (f *Filter) Match(e *Event) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Wall.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Time.Wall.Before(f.Until):
		return false
	case f.Session != "" && e.Session != f.Session:
		return false
	case f.Trainee != "" && e.Trainee != f.Trainee:
		return false
	case f.Kind != "" && e.Kind != f.Kind:
		return false
	case f.Flag != "" && !slices.Contains(e.Flags, f.Flag):
		return false
	}
	return true
}
