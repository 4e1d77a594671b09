package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
)

// decide is the decision loop, the only writer of the ledger's captures and of the History. Each
// turn decides what arrived (a burst of queued readings at most maxGroup long) and appends its
// events in one commit (group.go) before anyone is told.
func (a *Agent) decide(ctx context.Context, h *checkin.History) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	wd := watchdogInterval()
	lastPing := time.Now()
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case rq := <-a.requests:
			if err := a.burst(rq, h); err != nil {
				return err
			}
		case r := <-a.spotResults:
			if err := a.recordSpotCheck(r, h); err != nil {
				return err
			}
		case <-a.spotNow:
			a.spotNowAll(ctx, a.now().Wall)
		case ct := <-a.centralTime:
			a.anchorFromCentral(ct, h)
		case <-tick.C:
			if err := a.st.Fatal(); err != nil {
				return err // a commit failed elsewhere (the uplink's ack): stop before taking readings
			}
			clk := a.settle(h)
			if !clk.Untrusted {
				a.spotTick(ctx, clk.Wall)
			}
			for _, e := range a.rules.Expire(h, clk) {
				a.record(e, h) // a refusal under the disk reserve is logged with its alarm
			}
			if time.Since(lastPrune) > time.Hour {
				h.Prune(clk.Wall.Add(-24 * time.Hour))
				lastPrune = time.Now()
			}
			if wd > 0 && time.Since(lastPing) >= wd/2 {
				notify("WATCHDOG=1")
				lastPing = time.Now()
			}
		}
		if err := a.commit(); err != nil {
			return err
		}
	}
}

// burst decides rq and the readings queued behind it, maxGroup at most, for one commit.
func (a *Agent) burst(rq request, h *checkin.History) error {
	for n := 1; ; n++ {
		if err := a.handle(rq, h); err != nil {
			return err
		}
		if n == maxGroup {
			return nil
		}
		select {
		case rq = <-a.requests:
		default:
			return nil
		}
	}
}

// drain decides the readings still coming from stopping sources and the API until the sources
// have stopped, then what is left in the queue.
func (a *Agent) drain(h *checkin.History, stopped <-chan struct{}) error {
	for {
		var rq request
		select {
		case rq = <-a.requests:
		case <-stopped:
			select { // the sources are gone: what is queued, then done
			case rq = <-a.requests:
			default:
				return a.flush()
			}
		}
		if err := a.burst(rq, h); err != nil {
			return err
		}
		if err := a.commit(); err != nil {
			return err
		}
	}
}

// discard takes the readings still coming after the ledger failed until the sources have stopped,
// so that none stays blocked on the channel; API callers get err. They are logged, not recorded.
func (a *Agent) discard(stopped <-chan struct{}, err error) {
	n := 0
	for {
		select {
		case rq := <-a.requests:
			n++
			if rq.reply != nil {
				rq.reply <- checkin.Outcome{Err: err}
			}
			done(rq.reading, drivers.NotRecorded)
		case <-stopped:
			if n > 0 {
				a.log.Error("readings not recorded: the ledger failed", "readings", n, "err", err)
			}
			return
		}
	}
}

// handle decides one reading and queues its event in the group; the reading's source and the
// API's caller are answered once the group is durable (answer). Only a fatal store error is
// returned.
func (a *Agent) handle(rq request, h *checkin.History) error {
	rd := rq.reading
	if rd.Intent == drivers.Sighting {
		// A face seen by a camera: the rules remember it; it is not an event.
		if rd.Subject != "" {
			h.See(rd.Subject, rd.Source, rd.At)
		}
		done(rd, drivers.Recorded)
		return nil
	}
	if rd.Key != "" {
		if a.queued(rd.Key) {
			// Resent before its first copy was durable: flush, and it is found in the ledger.
			if err := a.flush(); err != nil {
				a.answer(rq, checkin.Outcome{Err: err})
				return err
			}
		}
		if seq, ok, err := a.st.RecordedKey(rd.Key); err != nil {
			a.log.Error("looking up a reading's key", "source", rd.Source, "err", err)
		} else if ok {
			// A device resent a reading the ledger holds: recorded once, answered as recorded.
			// Photos it brings now (a terminal uploads them after the punch) are attached to the
			// recorded event by an event of their own: nothing is rewritten.
			a.log.Debug("resent reading already recorded", "source", rd.Source, "key", rd.Key, "seq", seq)
			if len(rd.Evidence) > 0 {
				a.attach(rd, seq, h)
			}
			a.then(func(_ []ledger.Event, err error) {
				out := checkin.Outcome{Err: err}
				if err == nil {
					out.Note = fmt.Sprintf("already recorded as seq %d", seq)
				}
				a.answer(rq, out)
			})
			return nil
		}
	}
	clk := a.settle(h)
	d := a.rules.Decide(rd, a.roster.Load(), h, clk)
	var out checkin.Outcome
	if d.Event.Kind == ledger.Reading {
		out.Note = "recorded; decided once the box's time is trusted"
	}
	if !d.HasEvent() {
		h.Expect(*d.Pending)
		out.Pending = true
		out.Note = "voucher " + d.Pending.Code + " scanned; waiting for its holder"
		a.then(func(_ []ledger.Event, err error) {
			out.Err = err
			a.answer(rq, out)
		})
		return nil
	}
	d.Event.Key = rd.Key
	for _, f := range rd.Flags {
		if !d.Event.HasFlag(ledger.Flag(f)) {
			d.Event.Flags = append(d.Event.Flags, ledger.Flag(f))
		}
	}
	for _, ev := range rd.Evidence {
		d.Event.Evidence = append(d.Event.Evidence, photo(ev))
	}
	i, refused := a.record(d.Event, h)
	a.then(func(recs []ledger.Event, err error) {
		out.Event, out.Err = d.Event, cmp.Or(refused, err)
		if out.Err == nil {
			out.Event = recs[i]
		}
		a.answer(rq, out)
	})
	return nil
}

// answer tells a reading's caller (the API), its source (Reading.Done) and the person at the
// device (tell) what became of it, once that is durable.
func (a *Agent) answer(rq request, out checkin.Outcome) {
	if rq.reply != nil {
		rq.reply <- out
	}
	done(rq.reading, cmp.Or(verdictOf(out), drivers.Recorded)) // an event the person is not told about is recorded
	if !errors.Is(out.Err, store.ErrFatal) {
		a.tell(rq.reading.Source, out)
	}
}

// attach records the photos of a resent reading that its recorded event (seq) lacks: a terminal
// uploads a punch's photo after the punch. The attachment refers to the event; nothing is
// rewritten. A resend with no new photo records nothing.
func (a *Agent) attach(rd drivers.Reading, seq uint64, h *checkin.History) {
	recs, err := a.st.Range(seq, 1)
	if err == nil && len(recs) == 0 {
		err = errors.New("not in the ledger")
	}
	var orig ledger.Event
	if err == nil {
		orig, err = recs[0].Record.Event()
	}
	if err != nil {
		a.log.Error("attaching photos: the recorded event cannot be read", "seq", seq, "err", err)
		return
	}
	have := map[string]bool{}
	for _, p := range orig.Evidence {
		have[p.SHA256] = true
	}
	e := ledger.Event{Kind: ledger.Attachment, Time: a.now().Clock, Source: rd.Source, Trainee: orig.Trainee,
		IDMasked: orig.IDMasked, Session: orig.Session, Ref: orig.ID, Detail: fmt.Sprintf("photos for seq %d", seq)}
	for _, ev := range rd.Evidence {
		if !have[ev.SHA256] {
			e.Evidence = append(e.Evidence, photo(ev))
		}
	}
	if len(e.Evidence) == 0 {
		return
	}
	e.Key = rd.Key + "#" + e.Evidence[0].SHA256
	if _, ok, _ := a.st.RecordedKey(e.Key); ok || a.queued(e.Key) {
		return // attached already
	}
	a.record(e, h) // a refusal under the disk reserve is logged with its alarm
}

// photo is how an event names a photo its source stored.
func photo(ev drivers.EvidenceRef) ledger.Photo {
	return ledger.Photo{SHA256: ev.SHA256, Kind: string(ev.Kind), Size: ev.Size}
}

// done tells a reading's source, if it asked (Reading.Done), what became of it.
func done(rd drivers.Reading, v drivers.Verdict) {
	if rd.Done != nil {
		rd.Done(v)
	}
}

// now reads the clock; a backwards jump seen for the first time is recorded as an alarm.
func (a *Agent) now() checkin.Clock {
	r := a.clock.Read()
	if r.JumpNow > 0 {
		a.log.Error("wall clock jumped backwards", "by", r.JumpNow)
		if _, err := a.st.Append(ledger.Event{Kind: ledger.Alarm, Reason: ledger.AlarmClockJump, Time: r.Clock,
			Note: fmt.Sprintf("wall clock fell back %v against the monotonic clock", r.JumpNow)}); err != nil {
			a.log.Error("recording the clock alarm", "err", err)
		}
	}
	return checkin.Clock{Clock: r.Clock, Jumped: r.Jumped}
}

// settle reads the clock and assesses it against the time the ledger knows (checkin.History.Assess).
// When the time has become trusted it queues the boot's time_anchor, then decides the readings
// that waited for it, oldest first, each as a new event naming its reading.
func (a *Agent) settle(h *checkin.History) checkin.Clock {
	raw := a.now()
	clk, anchor := h.Assess(raw)
	if anchor != nil {
		if _, err := a.record(*anchor, h); err != nil {
			if clk.Anchored {
				clk = checkin.Untrusted(raw) // no anchor in the ledger, no time computed from it
			}
		} else {
			a.log.Info("time trusted: boot anchored", "boot", anchor.Time.Boot, "wall", anchor.Time.Wall)
		}
	}
	state := timeTrusted
	if clk.Untrusted {
		state = timeUntrusted
	}
	if was := a.timeState.Swap(state); was != state && state == timeUntrusted {
		a.log.Warn("the box's time is not trusted: readings are recorded and decided once it is",
			"wall", raw.Wall, "synced", raw.Synced, "last_trusted", h.LastTrusted())
	}
	held := h.Decidable()
	n := 0
	for _, hd := range held {
		e := a.rules.DecideHeld(hd, a.roster.Load(), h)
		if _, err := a.record(e, h); err != nil {
			break // the disk reserve: the rest wait for the next try
		}
		n++
		a.log.Debug("pending reading decided", "reading", hd.Event.ID, "kind", e.Kind, "reason", e.Reason,
			"trainee", e.Trainee, "wall", e.Time.Wall)
	}
	if n > 0 {
		a.log.Info("pending readings decided at their anchored time", "decided", n, "left", len(h.Waiting()))
	}
	return clk
}
