package checkin

import (
	"fmt"
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// TrustSlack is how far a synchronised wall clock may read behind the last trusted time the
// ledger knows and still be trusted (NTP slews by milliseconds; a clock set back is far more).
const TrustSlack = time.Second

// timeline is what the History knows of the box's time, from the events: the last trusted wall
// time, the latest trusted read and the latest time_anchor of each boot, and the readings still
// waiting for trusted time.
type timeline struct {
	last    time.Time               // the latest trusted wall time of any event
	trusted map[string]ledger.Clock // boot -> latest trusted read among its events
	anchors map[string]ledger.Clock // boot -> its latest time_anchor
	waiting []ledger.Event          // pending readings no event has decided yet, in seq order
}

func newTimeline() timeline {
	return timeline{trusted: map[string]ledger.Clock{}, anchors: map[string]ledger.Clock{}}
}

func (t *timeline) add(e *ledger.Event) {
	switch {
	case e.Kind == ledger.Reading:
		t.waiting = append(t.waiting, *e)
	case e.Kind == ledger.TimeAnchor && e.Time.Boot != "":
		t.anchors[e.Time.Boot] = e.Time
	}
	if e.Ref != "" {
		t.waiting = slices.DeleteFunc(t.waiting, func(w ledger.Event) bool { return w.ID == e.Ref })
	}
	// A trusted time moves the last trusted time forward, never back; a wall clock "synced" to a
	// time behind it (set back by someone, a wrong NTP server) teaches nothing.
	if e.Kind == ledger.Reading || !e.Time.Synced || e.Time.Wall.Before(t.last.Add(-TrustSlack)) {
		return
	}
	if e.Time.Wall.After(t.last) {
		t.last = e.Time.Wall
	}
	if b := e.Time.Boot; b != "" && !e.HasFlag(ledger.FlagTimeAnchored) {
		if old, ok := t.trusted[b]; !ok || e.Time.Mono >= old.Mono {
			t.trusted[b] = e.Time
		}
	}
}

// LastTrusted is the latest trusted wall time the events added so far show.
func (h *History) LastTrusted() time.Time { return h.time.last }

// Waiting lists the pending readings no event has decided yet, in ledger order.
func (h *History) Waiting() []ledger.Event { return slices.Clone(h.time.waiting) }

// Assess turns a read of the box's clock into the clock to decide at. The time is trusted when the
// kernel says the clock is synchronised and it does not read behind the last trusted time the
// ledger knows (TrustSlack). Otherwise, if the boot already has a time_anchor, its time is the
// anchor's moved by the monotonic clock (Anchored); if not, it is Untrusted and readings wait.
//
// A trusted c is remembered as its boot's latest trusted read.
//
// anchor, when not nil, is a time_anchor event to record before deciding anything at c: the boot's
// time is trusted now (or was, earlier in the boot) and either readings of the boot wait for it or
// c itself needs it.
func (h *History) Assess(c Clock) (at Clock, anchor *ledger.Event) {
	t := &h.time
	boot := c.Boot
	_, anchored := t.anchors[boot]
	if c.Synced && !c.Wall.Before(t.last.Add(-TrustSlack)) {
		t.trusted[boot] = c.Clock // should the kernel stop vouching later in this boot
		if !anchored && slices.ContainsFunc(t.waiting, func(w ledger.Event) bool { return w.Time.Boot == boot }) {
			anchor = anchorEvent(c.Clock, t.waiting)
		}
		return c, anchor
	}
	a, ok := t.anchors[boot]
	if !ok {
		if a, ok = t.trusted[boot]; !ok {
			return Untrusted(c), nil
		}
		// Trusted earlier in this boot, and no anchor recorded yet: the earlier trusted read
		// becomes the anchor, so that the times computed from it can be checked. Until it is
		// recorded (History.Add), the caller must not use at: Untrusted(c) is the fallback.
		anchor = anchorEvent(a, t.waiting)
	}
	at = c
	at.Clock, _ = clock.Anchored(a, c.Clock)
	at.Anchored, at.Jumped = true, false
	return at, anchor
}

// Untrusted is c marked as not trusted: readings at it wait.
func Untrusted(c Clock) Clock {
	c.Synced, c.Untrusted, c.Anchored = false, true, false
	return c
}

func anchorEvent(c ledger.Clock, waiting []ledger.Event) *ledger.Event {
	n := 0
	for _, w := range waiting {
		if w.Time.Boot == c.Boot {
			n++
		}
	}
	return &ledger.Event{Kind: ledger.TimeAnchor, Time: c,
		Note: fmt.Sprintf("boot %s: monotonic %v is %s; %d readings waited for trusted time", c.Boot,
			time.Duration(c.Mono), c.Wall.Format(time.RFC3339Nano), n)}
}

// Held is a pending reading ready to be decided: its boot has an anchor.
type Held struct {
	Event ledger.Event // the pending reading as recorded
	Clock Clock        // its time, from the anchor
}

// Decidable lists the waiting readings whose boot has a time_anchor, in ledger order. Readings of
// a boot that never got one stay waiting: their time cannot be known.
func (h *History) Decidable() []Held {
	var out []Held
	for _, w := range h.time.waiting {
		a, ok := h.time.anchors[w.Time.Boot]
		if !ok {
			continue
		}
		c, _ := clock.Anchored(a, w.Time)
		out = append(out, Held{Event: w, Clock: Clock{Clock: c, Anchored: true}})
	}
	return out
}

// DecideHeld decides a pending reading at the time its anchor gives it, against the schedule. The
// decision is a new event whose Ref names the reading; the reading itself is never rewritten.
func (r *Rules) DecideHeld(hd Held, x *roster.Index, h *History) ledger.Event {
	w := hd.Event
	rd := drivers.Reading{Source: w.Source, Method: drivers.Method(w.Method), Subject: w.Trainee, Score: w.Score,
		Margin: w.Margin, At: hd.Clock.Wall, Intent: drivers.Intent(w.Intent), Operator: w.Operator, Detail: w.Detail}
	if rd.Method == drivers.Manual {
		rd.Reason = w.Note
	}
	d := r.Decide(rd, x, h, hd.Clock)
	e := d.Event
	if !d.HasEvent() { // only a voucher scan waits, and a voucher scan is never held
		e = ledger.Event{Kind: ledger.Refusal, Reason: ledger.ReasonClockUntrusted, Time: hd.Clock.Clock, Source: w.Source, Method: w.Method}
	}
	e.Ref = w.ID
	for _, f := range w.Flags {
		switch f {
		case ledger.FlagTimePending, ledger.FlagClockUnsynced, ledger.FlagClockJump:
			// the time now comes from the anchor: the doubts about the wall clock are gone
		default:
			if !e.HasFlag(f) {
				e.Flags = append(e.Flags, f)
			}
		}
	}
	e.Evidence = w.Evidence
	return e
}
