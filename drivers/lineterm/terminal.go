package lineterm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

var _ drivers.Source = (*Terminal)(nil)

// maxNoWait is how many reads in a row may return nothing at once, the hang-up probe passing,
// before Next gives up with ErrNoWait.
const maxNoWait = 20

// Terminal is an open line terminal. One goroutine calls Next; Health and Close may be called from
// any goroutine.
type Terminal struct {
	name   string
	log    *slog.Logger
	port   port
	framer *Framer
	dec    *decoder
	now    func() time.Time // stamps readings; replaced in tests
	// quick is the read duration below which an empty read is suspected of being a hang-up: half
	// the read timeout as tarm/serial applies it.
	quick   time.Duration
	noWait  int // empty quick reads in a row
	buf     []byte
	pending []line // framed lines not yet decoded

	closed atomic.Bool

	mu       sync.Mutex // guards health and drops
	health   drivers.Health
	drops    map[string]*dropLog // by reason
	logEvery time.Duration       // DropLogInterval; replaced in tests
}

// DropLogInterval is the least time between two log lines for one reason of dropping input: the
// first drop for a reason is logged at once, the next ones are counted, and the first drop after
// the interval logs a line with the count suppressed since. Close logs the counts left over.
const DropLogInterval = time.Minute

// dropLog is the rate limit of one reason's log lines.
type dropLog struct {
	last       time.Time // when a line was last logged for the reason
	suppressed uint64    // drops since then, not logged
}

// dropReason names why a line gave no reading, for the log: a short word per kind of bad input.
func dropReason(err error) string {
	switch {
	case errors.Is(err, errNoMatch):
		return "no-match" // garbage and noise end up here too
	case errors.Is(err, errScore):
		return "bad-score"
	case errors.Is(err, errDiscarded):
		return "overlong"
	case errors.Is(err, ErrEvenParity), errors.Is(err, ErrOddParity):
		return "wiegand-parity"
	case errors.Is(err, ErrFrame):
		return "wiegand-frame"
	}
	return "other"
}

// maxLogDetail bounds the error text (which quotes the line) in a log line.
const maxLogDetail = 160

// port is what a Terminal needs of its line: a *serialport.Port, whose Read returns (0, nil) when
// the read timeout passes.
type port interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// line is a framed, trimmed line and when its last byte was read.
type line struct {
	text string
	at   time.Time
}

// Open validates cfg, opens the serial line (discarding what the terminal sent before) and returns
// the Terminal. name is the source's configured name, used as Reading.Source and in errors and
// logs; log may be nil.
func Open(name string, cfg Config, log *slog.Logger) (*Terminal, error) {
	dec, err := cfg.compile()
	if err != nil {
		return nil, fmt.Errorf("lineterm: %s: %w", name, err)
	}
	cfg = cfg.withDefaults()
	p, err := serialport.Open(cfg.Port)
	if err != nil {
		return nil, fmt.Errorf("lineterm: %s: %w", name, err)
	}
	t := newTerminal(name, cfg, dec, p, log)
	t.log.Debug("line terminal open", "path", cfg.Port.Path, "framing", cfg.Framing, "wiegand", cfg.Wiegand)
	return t, nil
}

// newTerminal returns a Terminal reading p; cfg must have its defaults applied.
func newTerminal(name string, cfg Config, dec *decoder, p port, log *slog.Logger) *Terminal {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := cfg.Port.ReadTimeout
	if rt == 0 {
		rt = serialport.DefaultReadTimeout
	}
	rt = max(rt.Truncate(100*time.Millisecond), 100*time.Millisecond)
	t := &Terminal{
		name:   name,
		log:    log.With("source", name),
		port:   p,
		framer: NewFramer(cfg.Framing, cfg.MaxLine),
		dec:    dec,
		now:    time.Now,
		quick:  rt / 2,
		buf:    make([]byte, 512),

		drops:    map[string]*dropLog{},
		logEvery: DropLogInterval,
	}
	t.health = drivers.Health{State: drivers.StateOK, Since: t.now()}
	return t
}

// Next blocks until the terminal prints a line that yields a reading, ctx is done, or the line
// fails. Lines that do not match the pattern (garbage included), carry a score that is not a
// number, fail a Wiegand check or are too long are dropped, counted in Health and logged at Warn
// with their reason, at most one log line per reason per DropLogInterval; repeats within
// Config.Repeat are skipped silently. None of them ends Next. ctx is checked between reads, so Next returns within one read timeout of ctx being done,
// with ctx's error; the lines already read stay queued for the next call.
//
// Any other error means the Terminal is unusable: ErrClosed after Close, an error wrapping
// serialport.ErrHangup when the other end of the line is gone, ErrNoWait, or a read error. Next is
// not safe for concurrent use.
func (t *Terminal) Next(ctx context.Context) (drivers.Reading, error) {
	for {
		if err := ctx.Err(); err != nil {
			return drivers.Reading{}, err
		}
		if t.closed.Load() {
			return drivers.Reading{}, ErrClosed
		}
		if len(t.pending) == 0 {
			if err := t.read(); err != nil {
				return drivers.Reading{}, err
			}
			continue
		}
		l := t.pending[0]
		t.pending = t.pending[1:]
		r, err := t.dec.decode(l.text, l.at)
		if err != nil {
			t.drop(err)
			continue
		}
		r.Source = t.name
		t.mu.Lock()
		t.health.Readings++
		t.setState(drivers.StateOK)
		t.mu.Unlock()
		return r, nil
	}
}

// read reads once from the port, waiting at most the read timeout, and queues the lines completed.
func (t *Terminal) read() error {
	start := time.Now()
	n, err := t.port.Read(t.buf)
	if err != nil {
		// A read pending when the line hangs up fails with serialport.ErrHangup; the reads after
		// it return nothing at once, which the probe below catches.
		return t.fail(err)
	}
	if n == 0 {
		if time.Since(start) >= t.quick {
			t.noWait = 0
			return nil
		}
		// Nothing, at once: a hung-up tty, which refuses writes. A zero-length write sends no byte.
		if _, err := t.port.Write(nil); err != nil {
			return t.fail(err)
		}
		if t.noWait++; t.noWait >= maxNoWait {
			return t.fail(ErrNoWait)
		}
		return nil
	}
	t.noWait = 0
	at := t.now()
	texts, discarded := t.framer.Feed(t.buf[:n])
	for range discarded {
		t.drop(errDiscarded)
	}
	for _, s := range texts {
		if s = trim(s); s != "" {
			t.pending = append(t.pending, line{text: s, at: at})
		}
	}
	return nil
}

// drop records a line that yields no reading, and logs it at Warn with its reason, at most one
// line per reason per DropLogInterval. Repeats are expected: neither counted nor logged.
func (t *Terminal) drop(reason error) {
	if reason == nil || errors.Is(reason, errRepeat) {
		return
	}
	why := dropReason(reason)
	now := t.now()
	t.mu.Lock()
	t.health.Dropped++
	t.health.LastErr = reason.Error()
	if t.health.State == drivers.StateOK {
		t.setState(drivers.StateDegraded)
	}
	d := t.drops[why]
	if d == nil {
		d = &dropLog{}
		t.drops[why] = d
	} else if now.Sub(d.last) < t.logEvery {
		d.suppressed++
		t.mu.Unlock()
		return
	}
	suppressed := d.suppressed
	d.last, d.suppressed = now, 0
	total := t.health.Dropped
	t.mu.Unlock()
	t.log.Warn("lineterm: input dropped", "reason", why, "err", clip(reason.Error(), maxLogDetail),
		"suppressed", suppressed, "dropped_total", total)
}

// flushDrops logs the drops suppressed since each reason's last line.
func (t *Terminal) flushDrops() {
	type left struct {
		why string
		n   uint64
	}
	var rest []left
	t.mu.Lock()
	for why, d := range t.drops {
		if d.suppressed > 0 {
			rest = append(rest, left{why, d.suppressed})
			d.suppressed = 0
		}
	}
	total := t.health.Dropped
	t.mu.Unlock()
	slices.SortFunc(rest, func(a, b left) int { return strings.Compare(a.why, b.why) })
	for _, l := range rest {
		t.log.Warn("lineterm: input dropped", "reason", l.why, "suppressed", l.n, "dropped_total", total)
	}
}

// clip shortens s to at most n bytes, on a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// fail marks the terminal down and returns err with its origin, or ErrClosed if Close caused it.
func (t *Terminal) fail(err error) error {
	if t.closed.Load() {
		return ErrClosed
	}
	err = fmt.Errorf("lineterm: %s: %w", t.name, err)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.health.LastErr = err.Error()
	t.setState(drivers.StateDown)
	return err
}

// setState changes the state, stamping Since. t.mu must be held.
func (t *Terminal) setState(s drivers.State) {
	if t.health.State != s {
		t.health.State, t.health.Since = s, t.now()
	}
}

// Health returns a snapshot of the terminal's state and counters. Reopens is left to the agent,
// which opens a new Terminal each time.
func (t *Terminal) Health() drivers.Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.health
}

// Close closes the line. It returns within one read timeout even while Next is blocked in a read,
// and that Next then returns ErrClosed. Closing again does nothing.
func (t *Terminal) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.mu.Lock()
	t.setState(drivers.StateDown)
	t.mu.Unlock()
	t.flushDrops()
	if err := t.port.Close(); err != nil {
		return fmt.Errorf("lineterm: %s: close: %w", t.name, err)
	}
	return nil
}
