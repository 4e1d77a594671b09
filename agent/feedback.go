package agent

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

// startFeedback starts a goroutine that shows the verdicts of src's readings on the device, if it
// can show them (drivers.Teller). The returned stop ends it and waits; call it before closing src.
// Only the newest verdict waits: a person is told about their own reading, not a queue of old ones.
func (a *Agent) startFeedback(name string, src drivers.Source, log *slog.Logger) (stop func()) {
	t, ok := src.(drivers.Teller)
	if !ok {
		return func() {}
	}
	ch := make(chan drivers.Verdict, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.tellers.Store(name, ch)
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case v := <-ch:
				tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
				if err := t.Tell(tctx, v); err != nil && !errors.Is(err, context.Canceled) {
					log.Warn("could not show the verdict on the device", "verdict", v, "err", err)
				}
				tcancel()
			}
		}
	}()
	return func() {
		a.tellers.Delete(name)
		cancel()
		<-done
	}
}

// tell shows the outcome of a reading at its source; a voucher scan waiting for its holder is
// shown at every reader of the scanner's station, where the holder is to identify.
func (a *Agent) tell(source string, out checkin.Outcome) {
	v := verdictOf(out)
	if v == 0 {
		return
	}
	if v != drivers.Waiting {
		a.tellOne(source, v)
		return
	}
	station := a.stationOf(source)
	for _, sc := range a.cfg.Sources {
		if a.stationOf(sc.Name) == station {
			a.tellOne(sc.Name, v)
		}
	}
}

func (a *Agent) stationOf(source string) string {
	for _, sc := range a.cfg.Sources {
		if sc.Name == source && sc.Station != "" {
			return sc.Station
		}
	}
	return source
}

// tellOne hands a verdict to the feedback goroutine of a source, replacing one not yet shown; it
// never blocks the decision loop.
func (a *Agent) tellOne(source string, v drivers.Verdict) {
	if c, ok := a.tellers.Load(source); ok {
		offerLatest(c.(chan drivers.Verdict), v)
	}
}

// offerLatest puts v on ch (a channel of capacity 1), replacing a value not yet taken: the reader
// gets the latest, and the sender never blocks.
func offerLatest[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

func verdictOf(out checkin.Outcome) drivers.Verdict {
	switch {
	case out.Pending:
		return drivers.Waiting
	case out.Err != nil:
		return drivers.NotRecorded
	case out.Event.Kind == ledger.Refusal:
		return drivers.Refused
	case out.Event.Kind.Counted() || out.Event.Kind == ledger.Duplicate || out.Event.Kind == ledger.Reading:
		return drivers.Recorded
	}
	return 0
}
