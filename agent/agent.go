// Package agent wires the classroom attendance daemon: it owns every goroutine and the shutdown
// order. Data flows one way: sources (drivers) produce readings; one decision loop turns each into
// an event (agent/checkin) and appends it to the ledger (agent/store) before anyone is told it is
// recorded; the uplink (sync/uplink) sends the ledger to the central system. The local API
// (agent/web) on a unix socket feeds manual sign-ins into the same loop and serves the CLI.
//
// Run reads top to bottom as the daemon's life: open the store, rebuild the rules' memory, start
// the API, the uplink and the sources, tell systemd we are ready, decide until cancelled, then stop
// in the reverse order, draining the readings still in flight into the ledger.
package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/web"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/lineterm"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// ManualSource is the source name of sign-ins entered through the local API (the override path).
const ManualSource = "manual"

// Version is the agent's version, set by the build.
var Version = "dev"

// Agent is the daemon. Create it with New and run it with Run, once.
type Agent struct {
	cfg *Config
	log *slog.Logger
	key ed25519.PrivateKey

	st     *store.Store
	roster atomic.Pointer[roster.Index]
	rules  checkin.Rules
	clock  *clock.System

	requests      chan request  // readings from sources and the API, to the decision loop
	rosterChanged chan struct{} // wakes the template sync
	health        sync.Map      // source name -> func() drivers.Health
	readers       sync.Map      // source name -> *zfm.Reader while open (template sync, enrolment)
	tellers       sync.Map      // source name -> chan drivers.Verdict, for sources that show verdicts
	decided       chan struct{} // closed when the decision loop has taken its last request
	lastDiskAlarm time.Time     // the last disk_full alarm recorded; only Run's goroutine (record) uses it
}

type request struct {
	reading drivers.Reading
	reply   chan<- web.Outcome // nil for device readings
}

// New checks the key and prepares an agent; nothing is opened until Run.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	key, err := ledger.LoadPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("agent: device key (make one with `kaoqin keygen --out %s`): %w", filepath.Dir(cfg.Key), err)
	}
	return &Agent{
		cfg: cfg, log: log, key: key,
		rules:         cfg.rules(),
		clock:         clock.New(10 * time.Minute),
		requests:      make(chan request, 64),
		rosterChanged: make(chan struct{}, 1),
		decided:       make(chan struct{}),
	}, nil
}

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
	if loopErr != nil {
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
	recent, err := a.st.Recent(time.Now().Add(-24 * time.Hour))
	if err != nil {
		return nil, err
	}
	for i := range recent {
		h.Add(&recent[i])
	}
	return h, nil
}

// decide is the decision loop, the only writer of the ledger's captures and of the History.
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
			if err := a.handle(rq, h); err != nil {
				return err
			}
		case <-tick.C:
			if err := a.st.Fatal(); err != nil {
				return err // a commit failed elsewhere (the uplink's ack): stop before taking readings
			}
			clk := a.read()
			for _, e := range a.rules.Expire(h, clk) {
				if _, err := a.record(e, h); err != nil && errors.Is(err, store.ErrFatal) {
					return err
				}
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
				return nil
			}
		}
		if err := a.handle(rq, h); err != nil {
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
				rq.reply <- web.Outcome{Err: err}
			}
		case <-stopped:
			if n > 0 {
				a.log.Error("readings not recorded: the ledger failed", "readings", n, "err", err)
			}
			return
		}
	}
}

// handle decides one reading and records the outcome. Only a fatal store error is returned.
func (a *Agent) handle(rq request, h *checkin.History) error {
	clk := a.read()
	d := a.rules.Decide(rq.reading, a.roster.Load(), h, clk)
	var out web.Outcome
	if !d.Record() {
		h.Expect(*d.Pending)
		out.Pending = true
		out.Note = "voucher " + d.Pending.Code + " scanned; waiting for its holder"
	} else {
		for _, ev := range rq.reading.Evidence {
			d.Event.Evidence = append(d.Event.Evidence, ledger.Photo{SHA256: ev.SHA256, Kind: string(ev.Kind), Size: ev.Size})
		}
		out.Event, out.Err = a.record(d.Event, h)
	}
	if rq.reply != nil {
		rq.reply <- out
	}
	if errors.Is(out.Err, store.ErrFatal) {
		return out.Err
	}
	a.tell(rq.reading.Source, out)
	return nil
}

// read reads the clock; a backwards jump seen for the first time is recorded as an alarm.
func (a *Agent) read() checkin.Clock {
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

// record appends an event and updates the History. A full disk refuses the capture loudly, with
// an alarm at most once a minute.
func (a *Agent) record(e ledger.Event, h *checkin.History) (ledger.Event, error) {
	rec, err := a.st.Append(e)
	switch {
	case err == nil:
		h.Add(&rec)
		a.log.Debug("recorded", "seq", rec.Seq, "kind", rec.Kind, "trainee", rec.Trainee, "reason", rec.Reason)
		return rec, nil
	case errors.Is(err, store.ErrDiskFull):
		a.log.Error("capture refused: disk reserve reached", "source", e.Source, "err", err)
		if now := time.Now(); now.Sub(a.lastDiskAlarm) >= time.Minute {
			a.lastDiskAlarm = now
			if _, aerr := a.st.Append(ledger.Event{Kind: ledger.Alarm, Reason: ledger.AlarmDiskFull, Time: e.Time, Note: err.Error()}); aerr != nil {
				a.log.Error("recording the disk alarm", "err", aerr)
			}
		}
	default:
		a.log.Error("ledger append failed", "err", err)
	}
	return e, err
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// runSource owns one device: open, read until an error, close, back off with jitter, reopen.
func (a *Agent) runSource(ctx context.Context, sc *SourceConfig) {
	log := a.log.With("source", sc.Name, "kind", sc.Kind)
	backoff := time.Second
	var reopens uint64
	for ctx.Err() == nil {
		src, err := a.openSource(ctx, sc, log, reopens)
		if err == nil {
			backoff = time.Second
			stopTelling := a.startFeedback(sc.Name, src, log)
			err = a.pump(ctx, sc.Name, src)
			stopTelling()
			src.Close()
			a.readers.Delete(sc.Name)
		}
		if ctx.Err() != nil {
			return
		}
		reopens++
		a.health.Store(sc.Name, func() drivers.Health {
			return drivers.Health{State: drivers.StateDown, LastErr: err.Error(), Reopens: reopens}
		})
		wait := backoff/2 + rand.N(backoff)
		log.Warn("source down; reopening", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// openSource opens a source and publishes its health, counting the reopens so far.
func (a *Agent) openSource(ctx context.Context, sc *SourceConfig, log *slog.Logger, reopens uint64) (drivers.Source, error) {
	switch sc.Kind {
	case KindZFM:
		cfg, err := sc.zfm()
		if err != nil {
			return nil, err
		}
		r, err := zfm.Open(ctx, sc.Name, cfg, log)
		if err != nil {
			return nil, err
		}
		a.readers.Store(sc.Name, r)
		a.setHealth(sc.Name, r.Health, reopens)
		if x := a.roster.Load(); x != nil {
			if rep, err := r.SyncTemplates(ctx, Templates(x)); err != nil {
				log.Error("template sync failed", "err", err)
			} else {
				log.Info("templates in step with the roster", "report", fmt.Sprintf("%+v", rep))
			}
		}
		return r, nil
	case KindLineterm:
		cfg, err := sc.lineterm()
		if err != nil {
			return nil, err
		}
		t, err := lineterm.Open(sc.Name, cfg, log)
		if err != nil {
			return nil, err
		}
		a.setHealth(sc.Name, t.Health, reopens)
		return t, nil
	}
	return nil, fmt.Errorf("agent: unknown source kind %q", sc.Kind)
}

// setHealth publishes a source's health; the driver starts its counters at zero on each open, the
// agent counts the reopens.
func (a *Agent) setHealth(name string, health func() drivers.Health, reopens uint64) {
	a.health.Store(name, func() drivers.Health {
		h := health()
		h.Reopens = reopens
		return h
	})
}

// pump moves readings from a source to the decision loop until the source fails or ctx ends.
// When ctx ends, the readings the source already holds still go to the decision loop (drainSource).
func (a *Agent) pump(ctx context.Context, name string, src drivers.Source) error {
	for {
		rd, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				a.drainSource(name, src)
				return nil
			}
			return err
		}
		rq := request{reading: stamp(name, rd)}
		select {
		case a.requests <- rq:
		case <-ctx.Done():
			// Shutting down with a reading in hand: it still goes to the ledger.
			a.requests <- rq
			a.drainSource(name, src)
			return nil
		}
	}
}

// Draining a source at shutdown: each Next gets sourceGrace to return a reading, and the drain
// ends at the first that returns none, or after drainLimit in all (a device that never goes quiet).
const (
	sourceGrace = 250 * time.Millisecond
	drainLimit  = 5 * time.Second
)

// drainSource hands the decision loop the readings a stopping source already holds: a line
// terminal returns the lines it has read, and those waiting on the line, only from Next, which
// returns at once when its ctx is done. Closing the source without asking would lose them.
func (a *Agent) drainSource(name string, src drivers.Source) {
	for end := time.Now().Add(drainLimit); time.Now().Before(end); {
		ctx, cancel := context.WithTimeout(context.Background(), sourceGrace)
		rd, err := src.Next(ctx)
		cancel()
		if err != nil {
			return
		}
		a.requests <- request{reading: stamp(name, rd)}
	}
}

// stamp names the source of a reading and dates it if the driver did not.
func stamp(name string, rd drivers.Reading) drivers.Reading {
	rd.Source = name
	if rd.At.IsZero() {
		rd.At = time.Now()
	}
	return rd
}

// Templates lists the roster's fingerprint templates for the modules.
func Templates(x *roster.Index) []drivers.Template {
	var out []drivers.Template
	for _, t := range x.Trainees {
		for _, f := range t.Fingerprints {
			out = append(out, drivers.Template{Trainee: t.ID, Finger: f.Finger, Data: f.Template})
		}
	}
	return out
}

// setRoster makes x the active roster and wakes the template sync.
func (a *Agent) setRoster(x *roster.Index) {
	a.roster.Store(x)
	select {
	case a.rosterChanged <- struct{}{}:
	default:
	}
}

// syncTemplates keeps every open fingerprint module in step with the roster.
func (a *Agent) syncTemplates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.rosterChanged:
		}
		x := a.roster.Load()
		a.readers.Range(func(name, r any) bool {
			rep, err := r.(*zfm.Reader).SyncTemplates(ctx, Templates(x))
			if err != nil {
				a.log.Error("template sync failed", "source", name, "err", err)
			} else {
				a.log.Info("templates in step with the roster", "source", name, "version", x.Version, "report", fmt.Sprintf("%+v", rep))
			}
			return true
		})
	}
}

func (a *Agent) newUplink() (*uplink.Uplink, error) {
	cfg, err := a.cfg.uplink()
	if err != nil {
		return nil, err
	}
	cfg.AgentVersion = Version
	cfg.OnRoster = a.setRoster
	cfg.Drivers = a.driverHealth
	return uplink.New(cfg, a.st, a.log.With("component", "uplink"))
}

func (a *Agent) driverHealth() map[string]drivers.Health {
	out := map[string]drivers.Health{}
	a.health.Range(func(k, v any) bool {
		out[k.(string)] = v.(func() drivers.Health)()
		return true
	})
	return out
}

// serveAPI starts the local API on the unix socket (and the read-only inspector view on Listen).
func (a *Agent) serveAPI(wg *sync.WaitGroup) (*serverSet, error) {
	if err := os.MkdirAll(filepath.Dir(a.cfg.Socket), 0o750); err != nil {
		return nil, fmt.Errorf("agent: socket dir: %w", err)
	}
	if c, err := net.Dial("unix", a.cfg.Socket); err == nil {
		c.Close()
		return nil, fmt.Errorf("agent: %s is in use: is another kaoqin running?", a.cfg.Socket)
	}
	os.Remove(a.cfg.Socket)
	ln, err := net.Listen("unix", a.cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("agent: listen %s: %w", a.cfg.Socket, err)
	}
	if err := os.Chmod(a.cfg.Socket, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	b := &backend{a: a, started: time.Now()}
	servers := &serverSet{}
	servers.add(&http.Server{Handler: web.Handler(b, true), ReadHeaderTimeout: 5 * time.Second}, ln, wg, a.log)
	if a.cfg.Listen != "" {
		tl, err := net.Listen("tcp", a.cfg.Listen)
		if err != nil {
			servers.Close()
			return nil, fmt.Errorf("agent: listen %s: %w", a.cfg.Listen, err)
		}
		servers.add(&http.Server{Handler: web.Handler(b, false), ReadHeaderTimeout: 5 * time.Second}, tl, wg, a.log)
	}
	return servers, nil
}

type serverSet struct {
	once    sync.Once
	servers []*http.Server
}

func (s *serverSet) add(srv *http.Server, ln net.Listener, wg *sync.WaitGroup, log *slog.Logger) {
	s.servers = append(s.servers, srv)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server stopped", "err", err)
		}
	}()
}

// Close stops the servers, letting requests in progress finish for up to 5 s.
func (s *serverSet) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			srv.Shutdown(ctx)
		}
	})
	return nil
}
