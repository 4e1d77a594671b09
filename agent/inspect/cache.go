package inspect

import (
	"context"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// recent holds the decoded events of the last days, so that an inspector going from page to page
// pays for decoding each record once: the ledger is append-only, so a later request reads only
// the records appended since (by seq). A request for an older span reads the ledger as before.
// The integrity page never uses it: it verifies the records in the store.
type recent struct {
	mu    sync.Mutex
	since time.Time // the events with a wall time from since on are held
	next  uint64    // the next seq to read
	evs   []ledger.Event
}

// window is how far back the cache reaches: the day before today, in the zone.
func (s *Server) window() time.Time {
	return startOfDay(s.opt.Now(), s.opt.Zone).AddDate(0, 0, -1)
}

// events returns the events f selects, in seq order, without enrolled templates.
func (s *Server) events(ctx context.Context, f ledger.Filter) ([]ledger.Event, error) {
	win := s.window()
	if f.Since.IsZero() || f.Since.Before(win) {
		return s.read(ctx, f)
	}
	c := &s.recent
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.since.Equal(win) { // a new day (or the first request): start again from the new window
		c.since, c.next, c.evs = win, 1, nil
	}
	st, err := s.b.Status(ctx)
	if err != nil {
		return nil, err
	}
	last := st.Head
	err = s.b.Events(ctx, ledger.Filter{Since: c.since}, c.next, func(e *ledger.Event) error {
		if e.Seq < c.next {
			return nil
		}
		c.evs = append(c.evs, pageCopy(e))
		last = max(last, e.Seq)
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.next = last + 1
	var out []ledger.Event
	for i := range c.evs {
		if f.Match(&c.evs[i]) {
			out = append(out, c.evs[i])
		}
	}
	return out, nil
}

// read reads the events f selects from the ledger.
func (s *Server) read(ctx context.Context, f ledger.Filter) ([]ledger.Event, error) {
	var out []ledger.Event
	err := s.b.Events(ctx, f, 0, func(e *ledger.Event) error {
		out = append(out, pageCopy(e))
		return nil
	})
	return out, err
}

// pageCopy is an event as the pages hold it: an enrolled template is dropped (no page shows one);
// the data of a spot check (its counts) is kept for the report.
func pageCopy(e *ledger.Event) ledger.Event { return e.WithoutTemplate() }
