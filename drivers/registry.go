package drivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Driver is one kind of source, as registered by its package.
type Driver struct {
	// Kind is the value of a [[source]] table's kind key that selects the driver ("zfm").
	Kind string
	// Config returns a new config for one [[source]] table, with its defaults set: a pointer to a
	// struct whose toml tags name the table's keys. The agent decodes the table strictly into it
	// (name, kind and station are the agent's and are not passed on), makes each Path field
	// absolute against the config file's folder, then calls Validate.
	Config func() SourceConfig
}

// SourceConfig is a driver's typed [[source]] table.
type SourceConfig interface {
	// Validate checks every value without opening anything and returns every problem: each one a
	// *FieldError naming the key as written in the table, several joined with errors.Join.
	Validate() error
	// Open opens the device. It returns when the device answers, ctx is done, or opening fails;
	// the agent backs off and calls Open again after an error.
	Open(ctx context.Context, env Env) (Source, error)
}

// Env is what the agent gives a source when it opens it.
type Env struct {
	// Name is the source's configured name; readings are stamped with it by the agent.
	Name string
	// Log is the agent's logger, already carrying the source's name and kind.
	Log *slog.Logger
	// Evidence keeps photos durably before a reading names them; nil when the box keeps none.
	Evidence EvidenceStore
	// Expected lists the trainees expected at this source at a time (those of the sessions open
	// there), for drivers that match against the people expected in the room; nil when unknown.
	Expected func(at time.Time) []string
	// ClockTrusted reports whether the box's own wall clock is synchronised, for drivers that set
	// a device's clock from the box's.
	ClockTrusted func() bool
}

// EvidenceStore keeps evidence photos. PutEvidence returns only once the photo is durable; over the
// evidence budget or the disk reserve it refuses loudly and keeps every old photo.
type EvidenceStore interface {
	PutEvidence(kind EvidenceKind, jpeg []byte) (EvidenceRef, error)
}

// HealthReporter is implemented by sources that keep counters of their own; the agent shows them
// in `kaoqin status`, the state message and the inspector page.
type HealthReporter interface {
	Health() Health
}

// Person is one trainee as a terminal that identifies people itself should know them.
type Person struct {
	Trainee string // the ID the terminal reports back (a ZKTeco PIN, a Hikvision employeeNo)
	Name    string
	// ValidFrom and ValidUntil bound when the person may sign in (the voucher's validity); zero
	// means unbounded.
	ValidFrom, ValidUntil time.Time
	Photo                 []byte // a registration face photo (JPEG) where the roster carries one
}

// PersonSyncer is implemented by terminals that keep their own list of people (networked face
// terminals): SyncPersons makes the terminal's list equal to ps and returns a one-line report. The
// agent calls it after each open and whenever the roster changes.
type PersonSyncer interface {
	SyncPersons(ctx context.Context, ps []Person) (report string, err error)
}

// FieldError is a problem with one key of a driver's config table.
type FieldError struct {
	Key string // as written in the table; dotted below a nested table ("map.0042")
	Err error
}

// Field makes a *FieldError.
func Field(key, format string, a ...any) *FieldError {
	return &FieldError{Key: key, Err: fmt.Errorf(format, a...)}
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors lists every *FieldError in err (a joined or wrapped error). An error that carries
// none is returned as one FieldError with an empty Key: it is about the table as a whole.
func FieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var out []*FieldError
	var walk func(error) bool
	walk = func(e error) bool {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return true
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			found := false
			for _, x := range u.Unwrap() {
				if walk(x) {
					found = true
				} else if x != nil {
					out = append(out, &FieldError{Err: x})
					found = true
				}
			}
			return found
		case interface{ Unwrap() error }:
			return walk(u.Unwrap())
		}
		return false
	}
	if !walk(err) {
		out = append(out, &FieldError{Err: err})
	}
	return out
}

// Path is a file path in a driver's config. The agent makes a relative one absolute against the
// config file's folder, so a config and the files it names can move together.
type Path string

// Duration is a time.Duration written as a string in the config ("150ms", "2m"). A bare number is
// refused by the agent's decoder (it would be nanoseconds), as is a negative duration.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration like \"150ms\" or \"2m\": %w", err)
	}
	if v < 0 {
		return errors.New("a duration cannot be negative")
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

var registry = struct {
	sync.Mutex
	drivers map[string]Driver
	missing map[string]string
}{drivers: map[string]Driver{}, missing: map[string]string{}}

// Register makes a driver available under its kind. Driver packages call it from init; the binary
// selects drivers with blank imports. Registering a kind twice panics: it is a build mistake.
func Register(d Driver) {
	registry.Lock()
	defer registry.Unlock()
	if d.Kind == "" || d.Config == nil {
		panic("drivers: Register: a driver needs a kind and a config")
	}
	if _, dup := registry.drivers[d.Kind]; dup {
		panic("drivers: Register: kind " + d.Kind + " registered twice")
	}
	registry.drivers[d.Kind] = d
	delete(registry.missing, d.Kind)
}

// RegisterMissing records that a kind exists but this build left it out, and why (say which build
// has it), so that a config naming it fails with that sentence rather than "unknown kind".
func RegisterMissing(kind, why string) {
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.drivers[kind]; !ok {
		registry.missing[kind] = why
	}
}

// Lookup finds the driver of a kind. The error says which kinds this build has, or why a known
// kind is not in it.
func Lookup(kind string) (Driver, error) {
	registry.Lock()
	defer registry.Unlock()
	if d, ok := registry.drivers[kind]; ok {
		return d, nil
	}
	if why, ok := registry.missing[kind]; ok {
		return Driver{}, fmt.Errorf("kind %q is not in this build: %s", kind, why)
	}
	return Driver{}, fmt.Errorf("unknown kind %q: this build has %s", kind, strings.Join(kindsLocked(), ", "))
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	registry.Lock()
	defer registry.Unlock()
	return kindsLocked()
}

func kindsLocked() []string {
	out := make([]string, 0, len(registry.drivers))
	for k := range registry.drivers {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
