package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// Run runs the daemon until ctx is cancelled or the ledger fails. A non-nil error means the
// process must exit non-zero (systemd restarts it).
func (a *Agent) Run(ctx context.Context) error {
	sc := a.cfg.LedgerConfig()
	sc.Key = a.key
	st, err := store.Open(sc, a.log.With("component", "store"))
	if err != nil {
		return err
	}
	defer st.Close()
	a.st = st
	a.ops = ops.New(st, a.cfg.Institution)
	a.ops.OnRoster = a.setRoster
	if a.ops.Trust, err = a.cfg.OpsTrust(); err != nil {
		return err
	}
	if a.cfg.Trust.AllowUnsigned {
		a.log.Warn("unsigned datasets are accepted (trust.allow_unsigned_datasets): every event is flagged unsigned_dataset")
	}
	a.log.Info("ledger open", "file", sc.Path, "device", st.Device(), "epoch", st.Epoch())

	h, err := a.loadState()
	if err != nil {
		return err
	}

	// Sources stop first (srcCtx); the API, the uplink and the template sync (svcCtx) only once
	// the readings in flight are in the ledger.
	srcCtx, cancelSources := context.WithCancel(ctx)
	defer cancelSources()
	var sources, services sync.WaitGroup
	svcCtx, cancelServices := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelServices()

	api, err := a.serveAPI(&services)
	if err != nil {
		return err
	}
	defer api.Close()

	if a.cfg.Uplink.Enabled {
		up, err := a.newUplink()
		if err != nil {
			return err
		}
		services.Add(1)
		go func() {
			defer services.Done()
			if err := up.Run(svcCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("uplink stopped", "err", err)
			}
		}()
	}

	services.Add(1)
	go func() {
		defer services.Done()
		a.syncTemplates(svcCtx)
	}()
	services.Add(1)
	go func() {
		defer services.Done()
		a.pruneEvidence(svcCtx)
	}()

	for i := range a.cfg.Sources {
		sources.Add(1)
		go func() {
			defer sources.Done()
			a.runSource(srcCtx, &a.cfg.Sources[i])
		}()
	}

	notify("READY=1\nSTATUS=recording")
	a.log.Info("kaoqin running", "version", Version, "sources", len(a.cfg.Sources), "socket", a.cfg.Socket)
	loopErr := a.decide(ctx, h)

	// Shutdown: sources first, then what they already read goes into the ledger, then the API
	// and the uplink (one bounded flush) stop.
	notify("STOPPING=1")
	cancelSources()
	stopped := make(chan struct{})
	go func() {
		sources.Wait()
		close(stopped)
	}()
	if loopErr == nil {
		loopErr = a.drain(h, stopped)
	}
	if err := a.wait(); loopErr == nil {
		loopErr = err // the group being committed when the loop stopped
	}
	if loopErr != nil {
		a.fail(loopErr) // what waited in the group is answered: not recorded
		// The ledger failed: nothing more can be recorded, but every source still stops and
		// closes its device before Run returns.
		a.discard(stopped, loopErr)
	}
	close(a.decided) // API callers still waiting get ErrStopping: their reading was not recorded
	api.Close()
	cancelServices()
	services.Wait()
	a.log.Info("kaoqin stopped", "err", loopErr)
	return loopErr
}

// loadState loads the active roster and rebuilds the rules' memory from the last day of events.
func (a *Agent) loadState() (*checkin.History, error) {
	r, info, err := a.st.Roster()
	if err != nil {
		return nil, err
	}
	if r != nil {
		x, err := roster.Build(r, time.Now())
		if err != nil {
			// A roster accepted once but refused now (a birth date passed the clock?): say so, run without.
			a.log.Error("active roster no longer validates; running without a roster until a new one arrives", "version", info.Version, "err", err)
		} else {
			a.roster.Store(x)
			a.log.Info("roster loaded", "version", info.Version, "trainees", x.Len())
		}
	}
	h := checkin.NewHistory()
	bound, err := a.st.Bindings()
	if err != nil {
		return nil, err
	}
	h.Restore(bound)
	recent, err := a.tail()
	if err != nil {
		return nil, err
	}
	for i := range recent {
		h.Add(&recent[i])
	}
	if w := h.Waiting(); len(w) > 0 {
		a.log.Warn("readings wait for trusted time", "readings", len(w), "first_seq", w[0].Seq, "last_trusted", h.LastTrusted())
	}
	return h, nil
}

// tail returns, in seq order, the events the rules must remember at start: those of the last day
// of trusted time before the last trusted time the ledger knows, and every pending reading and
// time anchor among them or after them, whatever their wall time (a box restarted while its clock
// still reads 1970 has readings of 1970 waiting, and no "last day" by its own clock).
//
// It reads back from the head. A trusted event more than a day before the latest trusted time
// seen so far is old; like store.Recent it stops after tailSlack old events (clocks jump). A
// reading already decided is left out: its decision, after it in the ledger, was read first, even
// when the decision's own (anchored) time is too old to be returned.
func (a *Agent) tail() ([]ledger.Event, error) {
	const tailSlack, page = 1000, 256
	var (
		back    []ledger.Event      // newest first
		last    time.Time           // the latest trusted wall time seen
		decided = map[string]bool{} // readings named by a later event, old or not
		olds    int
		trust   = func(e *ledger.Event) bool { return e.Time.Synced && e.Kind != ledger.Reading }
		old     = func(e *ledger.Event) bool {
			return e.Kind != ledger.Reading && e.Kind != ledger.TimeAnchor && e.Time.Wall.Before(last.Add(-24*time.Hour))
		}
	)
	head, _ := a.st.Head()
	for to := head; to > 0 && olds < tailSlack; {
		from := uint64(1)
		if to > page {
			from = to - page + 1
		}
		recs, err := a.st.Range(from, int(to-from+1))
		if err != nil {
			return nil, err
		}
		for i := len(recs) - 1; i >= 0 && olds < tailSlack; i-- {
			e, err := recs[i].Record.Event()
			if err != nil {
				return nil, fmt.Errorf("agent: seq %d: %w", recs[i].Seq, err)
			}
			if trust(&e) && e.Time.Wall.After(last) {
				last = e.Time.Wall
			}
			if e.Ref != "" {
				decided[e.Ref] = true
			}
			if e.Kind == ledger.Reading && decided[e.ID] {
				continue // its decision came later, maybe with a time too old to be read back
			}
			if old(&e) {
				olds++
				continue
			}
			back = append(back, e)
		}
		to = from - 1
	}
	var out []ledger.Event
	for i := len(back) - 1; i >= 0; i-- {
		if !old(&back[i]) { // the latest trusted time may have moved past it since
			out = append(out, back[i])
		}
	}
	return out, nil
}

func (a *Agent) newUplink() (*uplink.Uplink, error) {
	cfg, err := a.cfg.uplink()
	if err != nil {
		return nil, err
	}
	cfg.AgentVersion = Version
	cfg.Downlink = a
	cfg.Drivers = a.driverHealth
	return uplink.New(cfg, a.st, a.log.With("component", "uplink"))
}
