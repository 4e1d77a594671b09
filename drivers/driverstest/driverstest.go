// Package driverstest is a source for tests that need no hardware: a test pushes readings into a
// named feed and sees what the agent did with them (the verdicts it told, the templates it
// synced). Importing the package registers the kind "driverstest"; a [[source]] of that kind
// names its feed:
//
//	[[source]]
//	name = "door"
//	kind = "driverstest"
//	feed = "door"
package driverstest

import (
	"context"
	"errors"
	"sync"

	"github.com/kaoqin/kaoqin/drivers"
)

// Kind is the [[source]] kind of a test feed.
const Kind = "driverstest"

func init() {
	drivers.Register(drivers.Driver{Kind: Kind, Config: func() drivers.SourceConfig { return &Config{} }})
}

// Config is a [[source]] table of kind driverstest.
type Config struct {
	Feed string `toml:"feed"`
}

// Validate implements drivers.SourceConfig.
func (c *Config) Validate() error {
	if c.Feed == "" {
		return drivers.Field("feed", "required: the name a test pushes readings to")
	}
	return nil
}

// Open implements drivers.SourceConfig: the feed, opened.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Source, error) {
	f := Get(c.Feed)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOpen != nil {
		err := f.failOpen
		f.failOpen = nil
		return nil, err
	}
	f.opens++
	f.env = env
	f.closed = make(chan struct{})
	return &source{f: f, closed: f.closed}, nil
}

var feeds sync.Map // name -> *Feed

// Feed is the test's end of a source.
type Feed struct {
	readings chan drivers.Reading
	told     chan drivers.Verdict

	mu         sync.Mutex
	env        drivers.Env
	opens      int
	closed     chan struct{}
	failOpen   error
	templates  []drivers.Template
	persons    []drivers.Person
	capture    []drivers.Reading
	captureSet bool
}

// Get returns the feed of a name, making it on first use.
func Get(name string) *Feed {
	f, _ := feeds.LoadOrStore(name, &Feed{readings: make(chan drivers.Reading, 64), told: make(chan drivers.Verdict, 64)})
	return f.(*Feed)
}

// Push hands the source a reading; the agent takes it from Next.
func (f *Feed) Push(rd drivers.Reading) { f.readings <- rd }

// Told is where the verdicts the agent shows at the device arrive (drivers.Teller).
func (f *Feed) Told() <-chan drivers.Verdict { return f.told }

// Env is what the agent gave the source when it last opened it.
func (f *Feed) Env() drivers.Env {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.env
}

// Opens counts the times the agent opened the source.
func (f *Feed) Opens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens
}

// FailNextOpen makes the next Open fail with err.
func (f *Feed) FailNextOpen(err error) {
	f.mu.Lock()
	f.failOpen = err
	f.mu.Unlock()
}

// Templates are those the agent last synced (drivers.TemplateSyncer).
func (f *Feed) Templates() []drivers.Template {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.templates
}

// Persons are those the agent last synced (drivers.PersonSyncer).
func (f *Feed) Persons() []drivers.Person {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.persons
}

// SetCapture sets what the next Capture returns (drivers.Capturer). Until it is called, Capture
// fails (ErrNoCapture): a feed nobody gave a capture cannot look, so an agent test that does not
// deal in spot checks never gets one by chance.
func (f *Feed) SetCapture(rds []drivers.Reading) {
	f.mu.Lock()
	f.capture, f.captureSet = rds, true
	f.mu.Unlock()
}

// ErrNoCapture is Capture's error before SetCapture.
var ErrNoCapture = errors.New("driverstest: no capture set")

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("driverstest: closed")

type source struct {
	f      *Feed
	once   sync.Once
	closed chan struct{}
}

var (
	_ drivers.Source         = (*source)(nil)
	_ drivers.Teller         = (*source)(nil)
	_ drivers.TemplateSyncer = (*source)(nil)
	_ drivers.Capturer       = (*source)(nil)
	_ drivers.PersonSyncer   = (*source)(nil)
)

func (s *source) Next(ctx context.Context) (drivers.Reading, error) {
	select {
	case rd := <-s.f.readings:
		return rd, nil
	case <-s.closed:
		return drivers.Reading{}, ErrClosed
	case <-ctx.Done():
		return drivers.Reading{}, ctx.Err()
	}
}

func (s *source) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *source) Tell(ctx context.Context, v drivers.Verdict) error {
	select {
	case s.f.told <- v:
	default: // a test that does not read verdicts never blocks the agent
	}
	return nil
}

func (s *source) SyncTemplates(ctx context.Context, ts []drivers.Template) (string, error) {
	s.f.mu.Lock()
	s.f.templates = append([]drivers.Template(nil), ts...)
	s.f.mu.Unlock()
	return "test feed: templates taken", nil
}

func (s *source) SyncPersons(ctx context.Context, ps []drivers.Person) (string, error) {
	s.f.mu.Lock()
	s.f.persons = append([]drivers.Person(nil), ps...)
	s.f.mu.Unlock()
	return "test feed: persons taken", nil
}

func (s *source) Capture(ctx context.Context) ([]drivers.Reading, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if !s.f.captureSet {
		return nil, ErrNoCapture
	}
	return append([]drivers.Reading(nil), s.f.capture...), nil
}
