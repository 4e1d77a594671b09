package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// SpotCheckConfig is the [spot_check] table: random spot checks by the room cameras (every open
// source that is a drivers.Capturer) during each session.
type SpotCheckConfig struct {
	// PerSession is how many spot checks each session gets, at times drawn at random (crypto/rand)
	// when the session starts; 0 turns the random checks off (the central system's spotcheck
	// command still takes one).
	PerSession int `toml:"per_session"`
	// Edge keeps the checks out of the first and the last minutes of a session: people are still
	// arriving or already packing.
	Edge Duration `toml:"edge"`
	// HeadcountTolerance: a check that counts fewer faces than sign-ins by more than this carries
	// the flag headcount_short (a face turned away, a trainee at the board).
	HeadcountTolerance int `toml:"headcount_tolerance"`
	// AbsentShare: a trainee not seen in at least this share of a session's checks gets
	// absent_at_spot_check on their sign-out.
	AbsentShare float64 `toml:"absent_share"`
}

// Spot-check defaults.
const (
	DefaultSpotChecks         = 3
	DefaultSpotEdge           = 10 * time.Minute
	DefaultHeadcountTolerance = 1
)

// DefaultSpotCheck is the [spot_check] table's defaults.
func DefaultSpotCheck() SpotCheckConfig {
	return SpotCheckConfig{PerSession: DefaultSpotChecks, Edge: Duration(DefaultSpotEdge),
		HeadcountTolerance: DefaultHeadcountTolerance, AbsentShare: checkin.DefaultAbsentShare}
}

func (c *SpotCheckConfig) validate(bad func(key, format string, a ...any)) {
	if c.PerSession < 0 || c.PerSession > 20 {
		bad("spot_check.per_session", "%d is outside 0 (off)..20", c.PerSession)
	}
	if e := time.Duration(c.Edge); e < 0 || e > 2*time.Hour {
		bad("spot_check.edge", "%v is outside 0..2h", e)
	}
	if c.HeadcountTolerance < 0 || c.HeadcountTolerance > 100 {
		bad("spot_check.headcount_tolerance", "%d is outside 0..100", c.HeadcountTolerance)
	}
	if !(c.AbsentShare > 0 && c.AbsentShare <= 1) {
		bad("spot_check.absent_share", "%v is outside (0, 1]", c.AbsentShare)
	}
}

// spotPlan is the spot checks still to come in one session.
type spotPlan struct {
	end   time.Time
	times []time.Time // sorted, future
}

// spotResult is one camera's burst, back from its goroutine to the decision loop.
type spotResult struct {
	source   string
	sessions []string // the sessions running at the source when the check was asked for
	readings []drivers.Reading
	err      error
	asked    time.Time
}

// drawTimes draws n times uniformly from [from, to) with crypto/rand, sorted: nothing in the
// schedule or in earlier checks predicts them. An empty span draws none.
func drawTimes(n int, from, to time.Time) []time.Time {
	span := to.Sub(from)
	if span <= 0 {
		return nil
	}
	out := make([]time.Time, 0, n)
	for range n {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(span)))
		if err != nil {
			panic("agent: crypto/rand failed: " + err.Error()) // the kernel's random source is gone
		}
		out = append(out, from.Add(time.Duration(v.Int64())))
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// spotTick plans the spot checks of sessions that have started, and asks for those that are due.
// It runs on the decision loop's tick, with the box's trusted time.
func (a *Agent) spotTick(ctx context.Context, now time.Time) {
	x := a.roster.Load()
	if x == nil {
		return
	}
	if a.spotPlans == nil {
		a.spotPlans = map[string]*spotPlan{}
	}
	for i := range x.Roster.Sessions {
		s := &x.Roster.Sessions[i]
		if now.Before(s.Start) || !now.Before(s.End) {
			continue
		}
		if _, ok := a.spotPlans[s.ID]; ok {
			continue
		}
		// Drawn over the whole session, then the past dropped: a restart in the middle of a
		// session neither fires a burst of missed checks nor makes the rest predictable.
		edge := time.Duration(a.cfg.SpotCheck.Edge)
		p := &spotPlan{end: s.End}
		for _, t := range drawTimes(a.cfg.SpotCheck.PerSession, s.Start.Add(edge), s.End.Add(-edge)) {
			if t.After(now) {
				p.times = append(p.times, t)
			}
		}
		a.spotPlans[s.ID] = p
		a.log.Debug("spot checks planned", "session", s.ID, "checks", len(p.times))
	}
	for id, p := range a.spotPlans {
		if !now.Before(p.end) {
			delete(a.spotPlans, id)
			continue
		}
		if len(p.times) > 0 && !now.Before(p.times[0]) {
			p.times = p.times[1:]
			if n := a.askSpotCheck(ctx, x, id, now); n > 0 {
				a.log.Info("spot check due", "session", id, "cameras", n)
			} else {
				a.log.Debug("spot check due, but no room camera serves the session", "session", id)
			}
		}
	}
}

// askSpotCheck asks every open room camera that serves session (every one, when session is
// empty: the central system's spotcheck command) for a burst, each from a goroutine of its own:
// dlib takes seconds, and the decision loop never waits for it. The results come back on
// spotResults.
func (a *Agent) askSpotCheck(ctx context.Context, x *roster.Index, session string, now time.Time) int {
	n := 0
	a.open.Range(func(k, v any) bool {
		name := k.(string)
		c, ok := v.(drivers.Capturer)
		if !ok {
			return true
		}
		sessions := runningAt(x, name, now)
		if session != "" {
			if !slices.Contains(sessions, session) {
				return true
			}
			sessions = []string{session}
		}
		if a.spotBusy[name] {
			a.log.Warn("spot check skipped: the camera's last one is still running", "source", name)
			return true
		}
		a.spotBusy[name] = true
		n++
		go func() {
			rds, err := c.Capture(ctx)
			select {
			case a.spotResults <- spotResult{source: name, sessions: sessions, readings: rds, err: err, asked: now}:
			case <-a.decided:
			}
		}()
		return true
	})
	return n
}

// runningAt lists the sessions served by source that run at t (between start and end).
func runningAt(x *roster.Index, source string, t time.Time) []string {
	var out []string
	if x == nil {
		return nil
	}
	for i := range x.Roster.Sessions {
		s := &x.Roster.Sessions[i]
		if s.Serves(source) && !t.Before(s.Start) && t.Before(s.End) {
			out = append(out, s.ID)
		}
	}
	return out
}

// spotNowAll takes a spot check at every room camera at once (the central system's command).
func (a *Agent) spotNowAll(ctx context.Context, now time.Time) {
	if n := a.askSpotCheck(ctx, a.roster.Load(), "", now); n == 0 {
		a.log.Warn("spot check asked for, but no open source is a room camera")
	}
}

// recordSpotCheck turns one camera's burst into one spot_check event per session it served (one,
// in a classroom with one session at a time; none running: one event without a session), appended
// by the decision loop's next commit.
func (a *Agent) recordSpotCheck(r spotResult, h *checkin.History) error {
	delete(a.spotBusy, r.source)
	if r.err != nil {
		a.log.Error("spot check failed: the camera took no burst", "source", r.source, "err", r.err)
		return nil
	}
	clk := a.settle(h)
	faces := make([]string, len(r.readings))
	var photos []ledger.Photo
	have := map[string]bool{}
	for i, rd := range r.readings {
		faces[i] = rd.Subject
		for _, ev := range rd.Evidence {
			if !have[ev.SHA256] {
				have[ev.SHA256] = true
				photos = append(photos, photo(ev))
			}
		}
	}
	sessions := r.sessions
	if len(sessions) == 0 {
		sessions = []string{""}
	}
	for _, session := range sessions {
		d, short := h.SpotCheck(session, faces, a.cfg.SpotCheck.HeadcountTolerance)
		data, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("agent: spot check: %w", err)
		}
		e := ledger.Event{Kind: ledger.SpotCheck, Time: clk.Clock, Source: r.source, Method: string(drivers.Face),
			Session: session, Data: data, Evidence: photos,
			Detail: fmt.Sprintf("headcount %d, signed in %d: seen %d, not seen %d, unsure %d",
				d.Headcount, d.SignedIn, len(d.Seen), len(d.NotSeen), len(d.Unsure))}
		if short {
			e.Flags = append(e.Flags, ledger.FlagHeadcountShort)
		}
		if len(photos) == 0 && len(r.readings) > 0 {
			e.Note = "no photos: the evidence store refused them (budget or disk reserve reached)"
		}
		if !clk.Synced {
			e.Flags = append(e.Flags, ledger.FlagClockUnsynced)
		}
		i, err := a.record(e, h)
		if err != nil {
			continue // refused under the disk reserve, logged with its alarm
		}
		a.then(func(recs []ledger.Event, err error) {
			if err == nil {
				a.log.Info("spot check recorded", "source", r.source, "session", session, "seq", recs[i].Seq,
					"headcount", d.Headcount, "signed_in", d.SignedIn, "seen", len(d.Seen), "not_seen", len(d.NotSeen), "unsure", len(d.Unsure))
			}
		})
	}
	return nil
}
