package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
)

// maxGroup is the most events the decision loop appends in one transaction. A terminal's backlog
// (10,000 punches after a week offline) is written 256 to an fsync instead of one; a reading that
// arrives alone is a group of one, appended at once.
const maxGroup = 256

// group is the decision loop's group commit: the events decided since the last commit, waiting to
// be appended together (store.AppendBatch: one transaction, one fsync), and what to do once they
// are durable: nobody is told an event is recorded before its commit returns.
//
// A commit runs on a goroutine of its own while the loop decides the next group (a pipeline one
// group deep: the signing and the fsync of one group overlap the deciding of the next). The
// rules' History is updated as each event is decided, so a reading is decided against every
// event before it, committed or not (a second sign-in in the same burst is a duplicate). That is
// safe because a group is written whole or the daemon stops: a failed commit is fatal, and the
// History is rebuilt from the ledger at the next start.
type group struct {
	events  []ledger.Event
	keys    map[string]bool                        // the reading keys of events
	after   []func(recs []ledger.Event, err error) // in order, once the group is durable or has failed
	reserve error                                  // the disk reserve, checked once a group (see record)
	checked bool
}

// inflight is the group being committed.
type inflight struct {
	keys map[string]bool
	err  chan error // the commit's error, once it has returned and its group's after functions have run
}

// record decides to append e: it is queued in the group and the History learns it now. It
// returns e's place in the group (the recs handed to a then function) or, for a capture refused
// under the disk reserve, ErrDiskFull (with an alarm, at most once a minute).
func (a *Agent) record(e ledger.Event, h *checkin.History) (int, error) {
	g := &a.group
	if store.Captured(e.Kind) {
		if !g.checked {
			g.reserve, g.checked = a.st.CheckReserve(), true
		}
		if g.reserve != nil {
			a.log.Error("capture refused: disk reserve reached", "source", e.Source, "err", g.reserve)
			if now := time.Now(); now.Sub(a.lastDiskAlarm) >= time.Minute {
				a.lastDiskAlarm = now
				a.queue(ledger.Event{Kind: ledger.Alarm, Reason: ledger.AlarmDiskFull, Time: e.Time, Note: g.reserve.Error()})
			}
			return -1, g.reserve
		}
	}
	if e.ID == "" {
		e.ID = ledger.NewID(e.Time.Wall) // the History refers to events by ID before they have a seq
	}
	h.Add(&e)
	return a.queue(e), nil
}

// queue adds e to the group without telling the History (an alarm the rules do not read).
func (a *Agent) queue(e ledger.Event) int {
	g := &a.group
	if e.Key != "" {
		if g.keys == nil {
			g.keys = map[string]bool{}
		}
		g.keys[e.Key] = true
	}
	g.events = append(g.events, e)
	return len(g.events) - 1
}

// then runs fn once the events decided so far are durable (recs: their group as appended) or
// their commit failed (err). fn runs on the committing goroutine: it must not touch the
// decision loop's state.
func (a *Agent) then(fn func(recs []ledger.Event, err error)) {
	a.group.after = append(a.group.after, fn)
}

// queued reports whether an event of the reading key is decided but not yet durable.
func (a *Agent) queued(key string) bool {
	return a.group.keys[key] || (a.flying != nil && a.flying.keys[key])
}

// commit starts appending the group, once the group before it is durable, and returns without
// waiting for it (flush waits). A failed commit of the group before is returned, and the group's
// after functions get it: the daemon must stop.
func (a *Agent) commit() error {
	if err := a.wait(); err != nil {
		a.fail(err)
		return err
	}
	g := a.group
	a.group = group{}
	if len(g.events) == 0 && len(g.after) == 0 {
		return nil
	}
	a.flying = &inflight{keys: g.keys, err: make(chan error, 1)}
	go func(done chan<- error) {
		done <- a.write(g)
	}(a.flying.err)
	return nil
}

// flush commits the group and waits until it is durable.
func (a *Agent) flush() error {
	if err := a.commit(); err != nil {
		return err
	}
	return a.wait()
}

// wait waits for the group being committed, if any, and returns its error; the error of a failed
// commit is kept and returned again.
func (a *Agent) wait() error {
	if a.flying != nil {
		if err := <-a.flying.err; err != nil && a.commitErr == nil {
			a.commitErr = err
		}
		a.flying = nil
	}
	return a.commitErr
}

// fail answers what waits in the group with err, without appending it.
func (a *Agent) fail(err error) {
	g := a.group
	a.group = group{}
	for _, fn := range g.after {
		fn(nil, err)
	}
}

// write appends g in one transaction, then runs what waited for it, in order. Any failure is
// fatal: the History already counts the group.
func (a *Agent) write(g group) error {
	recs, err := a.st.AppendBatch(g.events)
	if err != nil {
		a.log.Error("ledger append failed", "events", len(g.events), "err", err)
		if !errors.Is(err, store.ErrFatal) {
			err = fmt.Errorf("%w: %v", store.ErrFatal, err)
		}
		recs = nil
	}
	for _, rec := range recs {
		a.log.Debug("recorded", "seq", rec.Seq, "kind", rec.Kind, "trainee", rec.Trainee, "reason", rec.Reason)
	}
	for _, fn := range g.after {
		fn(recs, err)
	}
	return err
}
