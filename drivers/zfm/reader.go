package zfm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

var _ drivers.Source = (*Reader)(nil)

// Waking the module: a module powering up ignores commands for 50-500 ms, so Open presents the
// password with short timeouts until it answers or wakeWithin has passed.
const (
	wakeAttempt = 250 * time.Millisecond
	wakeWithin  = 2 * time.Second
)

// maxFailures is how many polls in a row may fail (no reply, a malformed reply) before Next gives
// the module up as unusable.
const maxFailures = 3

// Reader is a fingerprint module as a source of readings. It identifies fingers (Next), keeps the
// module's library in step with the roster (SyncTemplates) and enrolls new fingers (Enroll); the
// three may be called from different goroutines and take turns on the line.
type Reader struct {
	name string
	cfg  Config
	log  *slog.Logger
	port *serialport.Port
	mod  *Module
	para SysPara

	// flow is held by Enroll for its whole run, which uses both character buffers across several
	// commands, and by Next and SyncTemplates for each of their steps.
	flow   chan struct{}
	syncMu sync.Mutex // one SyncTemplates at a time

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	pages    map[int]assignment // library page -> the roster entry it holds
	lib      map[int][32]byte   // library page -> SHA-256 of its template, where known
	needLift bool               // the last touch gave a reading: wait for the finger to go
	failures int                // polls failed in a row
	health   drivers.Health
	stats    Stats
}

type assignment struct {
	trainee, finger string
}

// Stats counts what a Reader saw, beyond its Health.
type Stats struct {
	Readings    uint64 // readings returned by Next
	Unmatched   uint64 // of those, readings without a subject
	ImageErrors uint64 // touches too poor to search (messy, too few points): not readings
	Failures    uint64 // polls that failed (no reply, malformed reply) and were retried
	Module      ModuleStats
}

// Open opens the serial line, waits for the module to answer (presenting cfg.Password, for up to
// 2 s to cover its power-up) and reads its system parameters. The page -> trainee map is empty
// until SyncTemplates. name is the source name readings carry.
func Open(ctx context.Context, name string, cfg Config, log *slog.Logger) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("source", name)
	port, err := serialport.Open(cfg.Port)
	if err != nil {
		return nil, fmt.Errorf("zfm: %w", err)
	}
	r := &Reader{
		name:   name,
		cfg:    cfg,
		log:    log,
		port:   port,
		mod:    NewModule(port, cfg.Address, log),
		flow:   make(chan struct{}, 1),
		closed: make(chan struct{}),
		pages:  map[int]assignment{},
		lib:    map[int][32]byte{},
		health: drivers.Health{State: drivers.StateStarting, Since: time.Now()},
	}
	if err := r.wake(ctx); err != nil {
		r.Close()
		return nil, err
	}
	para, err := r.mod.ReadSysPara(ctx)
	if err != nil {
		r.Close()
		return nil, err
	}
	if para.PacketSize == 0 || para.Capacity == 0 {
		r.Close()
		return nil, fmt.Errorf("zfm: readsyspara: capacity %d, packet size %d: %w", para.Capacity, para.PacketSize, ErrBadReply)
	}
	r.para = para
	r.setState(drivers.StateOK, nil)
	log.Debug("zfm: module ready", "port", cfg.Port.Path, "capacity", para.Capacity,
		"packet_size", para.PacketSize, "security", para.SecurityLevel)
	return r, nil
}

func (r *Reader) wake(ctx context.Context) error {
	deadline := time.Now().Add(wakeWithin)
	for {
		err := r.mod.Do(ctx, func(s *Session) error {
			_, err := s.command(ctx, InstrVfyPwd, u32(r.cfg.Password), wakeAttempt, 0)
			return err
		})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrWrongPassword), ctx.Err() != nil, errors.Is(err, serialport.ErrHangup):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("zfm: no answer from a module at address %08X on %s within %v: %w",
				r.cfg.Address, r.cfg.Port.Path, wakeWithin, err)
		}
		if !errors.Is(err, ErrTimeout) {
			// An error code came at once: do not hammer.
			if err := r.sleep(ctx, 50*time.Millisecond); err != nil {
				return err
			}
		}
	}
}

// SysPara returns the system parameters read when the reader opened.
func (r *Reader) SysPara() SysPara { return r.para }

// Module returns the client of the module, for commands the Reader does not wrap (the LED ring,
// TemplateNum). Commands that use the character buffers must not be sent while Enroll runs.
func (r *Reader) Module() *Module { return r.mod }

// Next blocks until a finger touches the sensor and gives one reading for the touch: the trainee
// whose template the module matched, or a reading without a subject when nobody matched (Detail
// says why). It then waits, in the next call, for the finger to lift before reading again. Poor
// images are counted (Stats.ImageErrors) and retried, not reported. Next returns ctx's error when
// ctx is done, and any other error when the module is unusable (gone, closed, or not answering
// three polls in a row): close the reader then and open it again.
func (r *Reader) Next(ctx context.Context) (drivers.Reading, error) {
	for {
		rd, ok, err := r.poll(ctx)
		if err != nil || ok {
			return rd, err
		}
		if err := r.sleep(ctx, r.cfg.PollInterval); err != nil {
			return drivers.Reading{}, err
		}
	}
}

// errStillOn ends a poll while the finger of the last reading is still on the sensor.
var errStillOn = errors.New("finger still on the sensor")

// poll makes one identify attempt. It reports a reading, nothing (no finger, a poor image, a
// failure worth retrying), or a fatal error.
func (r *Reader) poll(ctx context.Context) (drivers.Reading, bool, error) {
	r.mu.Lock()
	lift := r.needLift
	r.mu.Unlock()
	dropped := r.mod.Stats().Dropped
	var hit Hit
	err := r.exclusive(ctx, func(s *Session) error {
		if err := s.GenImg(ctx); err != nil {
			return err
		}
		if lift {
			return errStillOn
		}
		if err := s.Img2Tz(ctx, Buffer1); err != nil {
			return err
		}
		var err error
		hit, err = s.Search(ctx, Buffer1, 0, r.para.Capacity)
		return err
	})
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		rd := r.reading(hit, err == nil)
		r.mu.Lock()
		r.needLift = true
		r.failures = 0
		r.stats.Readings++
		r.health.Readings++
		if rd.Subject == "" {
			r.stats.Unmatched++
		}
		r.mu.Unlock()
		r.settle(dropped)
		return rd, true, nil
	case errors.Is(err, ErrNoFinger):
		r.mu.Lock()
		r.needLift = false
		r.failures = 0
		r.mu.Unlock()
		r.settle(dropped)
		return drivers.Reading{}, false, nil
	case errors.Is(err, errStillOn), lift && errors.Is(err, ErrCapture):
		r.mu.Lock()
		r.failures = 0
		r.mu.Unlock()
		r.settle(dropped)
		return drivers.Reading{}, false, nil
	case errors.Is(err, ErrImageMessy), errors.Is(err, ErrFewPoints), errors.Is(err, ErrCapture), errors.Is(err, ErrNoImage):
		r.mu.Lock()
		r.stats.ImageErrors++
		r.failures = 0
		r.mu.Unlock()
		r.settle(dropped)
		r.log.Debug("zfm: poor image, not a reading", "err", err)
		return drivers.Reading{}, false, nil
	case ctx.Err() != nil:
		return drivers.Reading{}, false, err
	case errors.Is(err, ErrClosed), errors.Is(err, serialport.ErrHangup):
		r.setState(drivers.StateDown, err)
		return drivers.Reading{}, false, err
	}
	r.mu.Lock()
	r.failures++
	r.stats.Failures++
	failures := r.failures
	r.mu.Unlock()
	if failures >= maxFailures {
		err = fmt.Errorf("%w (%d polls failed in a row)", err, failures)
		r.setState(drivers.StateDown, err)
		return drivers.Reading{}, false, err
	}
	r.setState(drivers.StateDegraded, err)
	return drivers.Reading{}, false, nil
}

// reading builds the reading for a search result.
func (r *Reader) reading(hit Hit, found bool) drivers.Reading {
	rd := drivers.Reading{Source: r.name, Method: drivers.Fingerprint, At: time.Now()}
	if !found {
		rd.Detail = "no match in the library"
		return rd
	}
	rd.Score = float64(hit.Score)
	r.mu.Lock()
	a, ok := r.pages[hit.Page]
	r.mu.Unlock()
	switch {
	case !ok:
		rd.Detail = fmt.Sprintf("page %d is not assigned to a trainee", hit.Page)
	default:
		rd.Subject = a.trainee
		rd.Detail = fmt.Sprintf("page %d", hit.Page)
	}
	return rd
}

// settle records a poll that worked: the source is OK unless it had to drop input meanwhile.
func (r *Reader) settle(droppedBefore uint64) {
	if r.mod.Stats().Dropped > droppedBefore {
		r.setState(drivers.StateDegraded, errors.New("zfm: dropped corrupt input"))
		return
	}
	r.setState(drivers.StateOK, nil)
}

func (r *Reader) setState(st drivers.State, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.health.State == drivers.StateDown && st != drivers.StateDown {
		return // only reopening revives a source
	}
	if r.health.State != st {
		r.health.State = st
		r.health.Since = time.Now()
	}
	if err != nil {
		r.health.LastErr = err.Error()
	}
}

// exclusive runs fn as one Do, waiting first for a running Enroll to finish.
func (r *Reader) exclusive(ctx context.Context, fn func(s *Session) error) error {
	if err := r.acquire(ctx); err != nil {
		return err
	}
	defer r.release()
	return r.mod.Do(ctx, fn)
}

func (r *Reader) acquire(ctx context.Context) error {
	select {
	case r.flow <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zfm: %w", ctx.Err())
	case <-r.closed:
		return fmt.Errorf("zfm: %w", ErrClosed)
	}
}

func (r *Reader) release() { <-r.flow }

func (r *Reader) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zfm: %w", ctx.Err())
	case <-r.closed:
		return fmt.Errorf("zfm: %w", ErrClosed)
	}
}

// Health reports the reader's state and counters. Dropped counts corrupt or unexpected input.
func (r *Reader) Health() drivers.Health {
	r.mu.Lock()
	h := r.health
	r.mu.Unlock()
	h.Dropped = r.mod.Stats().Dropped
	return h
}

// Stats returns the reader's counters.
func (r *Reader) Stats() Stats {
	r.mu.Lock()
	s := r.stats
	r.mu.Unlock()
	s.Module = r.mod.Stats()
	return s
}

// Close stops the module's owner goroutine and closes the line. A Next, SyncTemplates or Enroll in
// progress returns ErrClosed within one read timeout of the line. Close may be called more than
// once.
func (r *Reader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.closed)
		r.mod.Close()
		if cerr := r.port.Close(); cerr != nil {
			err = fmt.Errorf("zfm: close %s: %w", r.cfg.Port.Path, cerr)
		}
		r.setState(drivers.StateDown, nil)
	})
	return err
}

func templateSum(data []byte) [32]byte { return sha256.Sum256(data) }
