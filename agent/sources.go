package agent

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/face"
)

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
			a.open.Delete(sc.Name)
			src.Close()
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

// openSource opens a source through its driver, publishes its health (counting the reopens so
// far) and, if it keeps templates, brings them in step with the roster.
func (a *Agent) openSource(ctx context.Context, sc *SourceConfig, log *slog.Logger, reopens uint64) (drivers.Source, error) {
	src, err := sc.Driver.Open(ctx, drivers.Env{
		Name:         sc.Name,
		Log:          log,
		Evidence:     a.st,
		Expected:     func(at time.Time) []string { return a.expected(sc.Name, at) },
		ClockTrusted: a.clockTrusted, // the decision loop's assessment; a Read here would take its jump report
	})
	if err != nil {
		return nil, err
	}
	if hr, ok := src.(drivers.HealthReporter); ok {
		a.setHealth(sc.Name, hr.Health, reopens)
	} else {
		a.setHealth(sc.Name, func() drivers.Health { return drivers.Health{State: drivers.StateOK} }, reopens)
	}
	a.open.Store(sc.Name, src)
	if x := a.roster.Load(); x != nil {
		a.syncSource(ctx, sc.Name, src, x)
	}
	return src, nil
}

// expected lists the trainees of the sessions open at a source at a time.
func (a *Agent) expected(source string, at time.Time) []string {
	x := a.roster.Load()
	if x == nil {
		return nil
	}
	return x.ExpectedAt(source, at)
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

// Templates lists the roster's templates for the sources that keep them: fingerprints, and face
// descriptors in the face pipeline's template form (face.EncodeTemplate: the model's SHA-256 with
// each descriptor, so a camera refuses descriptors of another model). A face whose model sum or
// descriptor is malformed is left out (the roster's validation refuses such a roster anyway).
func Templates(x *roster.Index) []drivers.Template {
	var out []drivers.Template
	for _, t := range x.Trainees {
		for _, f := range t.Fingerprints {
			out = append(out, drivers.Template{Trainee: t.ID, Kind: drivers.FingerTemplate, Finger: f.Finger, Data: f.Template})
		}
		for _, f := range t.Faces {
			sum, err := hex.DecodeString(f.ModelSHA256)
			if err != nil || len(sum) != 32 || len(f.Descriptor) != 4*len(face.Descriptor{}) {
				continue
			}
			var d face.Descriptor
			for i := range d {
				d[i] = math.Float32frombits(binary.LittleEndian.Uint32(f.Descriptor[4*i:]))
			}
			out = append(out, drivers.Template{Trainee: t.ID, Kind: drivers.FaceTemplate, Data: face.EncodeTemplate([32]byte(sum), &d)})
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

// resyncEvery is how often sources are brought in step with the roster even when it has not
// changed: a terminal that was unreachable at the last sync, or changed by hand, catches up.
const resyncEvery = 10 * time.Minute

// syncTemplates keeps every open source that keeps templates or people in step with the roster.
func (a *Agent) syncTemplates(ctx context.Context) {
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.rosterChanged:
		case <-tick.C:
		}
		if a.roster.Load() == nil {
			continue
		}
		x := a.roster.Load()
		a.open.Range(func(name, src any) bool {
			a.syncSource(ctx, name.(string), src.(drivers.Source), x)
			return true
		})
	}
}

// syncSource brings one source in step with the roster: its templates if it keeps any, its list
// of people if it is a terminal that identifies people itself.
func (a *Agent) syncSource(ctx context.Context, name string, src drivers.Source, x *roster.Index) {
	if ts, ok := src.(drivers.TemplateSyncer); ok {
		if rep, err := ts.SyncTemplates(ctx, Templates(x)); err != nil {
			a.log.Error("template sync failed", "source", name, "err", err)
		} else {
			a.log.Info("templates in step with the roster", "source", name, "version", x.Version, "report", rep)
		}
	}
	if ps, ok := src.(drivers.PersonSyncer); ok {
		if rep, err := ps.SyncPersons(ctx, Persons(x, time.Now())); err != nil {
			a.log.Error("person sync failed", "source", name, "err", err)
		} else {
			a.log.Info("persons in step with the roster", "source", name, "version", x.Version, "report", rep)
		}
	}
}

// Persons lists the trainees a terminal should know: those enrolled in a class with a voucher
// that is usable now (or without one: an unsubsidised place), each valid for the voucher's
// period. A trainee whose voucher was revoked or expired is left out, so the terminal forgets them.
func Persons(x *roster.Index, now time.Time) []drivers.Person {
	var out []drivers.Person
	for _, t := range x.Roster.Trainees {
		p := drivers.Person{Trainee: t.ID, Name: t.Name}
		usable := false
		for _, e := range t.Enrolments {
			if e.Voucher == "" {
				usable, p.ValidFrom, p.ValidUntil = true, time.Time{}, time.Time{}
				break
			}
			v := x.Voucher(e.Voucher)
			if v == nil || v.Status == roster.Revoked || now.After(v.ValidTo) {
				continue
			}
			usable = true
			if p.ValidFrom.IsZero() || v.ValidFrom.Before(p.ValidFrom) {
				p.ValidFrom = v.ValidFrom
			}
			if v.ValidTo.After(p.ValidUntil) {
				p.ValidUntil = v.ValidTo
			}
		}
		if usable {
			out = append(out, p)
		}
	}
	return out
}

func (a *Agent) driverHealth() map[string]drivers.Health {
	out := map[string]drivers.Health{}
	a.health.Range(func(k, v any) bool {
		out[k.(string)] = v.(func() drivers.Health)()
		return true
	})
	return out
}
