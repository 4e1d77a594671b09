package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/web"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/zfm"
)

// ErrStopping refuses API writes while the daemon shuts down.
var ErrStopping = errors.New("agent: shutting down")

// backend serves the local API from the running agent.
type backend struct {
	a       *Agent
	started time.Time
}

var _ web.Backend = (*backend)(nil)

func (b *backend) Status() web.Status {
	a := b.a
	head, _ := a.st.Head()
	acked, _ := a.st.Acked()
	s := web.Status{Device: a.cfg.Device, Institution: a.cfg.Institution, Version: Version, Epoch: a.st.Epoch(),
		Head: head, Acked: acked, Sources: a.driverHealth(), Started: b.started}
	if x := a.roster.Load(); x != nil {
		s.RosterVersion, s.Trainees = x.Version, x.Len()
	}
	return s
}

// Submit hands a reading to the decision loop and waits until it is recorded.
func (b *backend) Submit(ctx context.Context, rd drivers.Reading) (web.Outcome, error) {
	reply := make(chan web.Outcome, 1)
	select {
	case b.a.requests <- request{reading: rd, reply: reply}:
	case <-b.a.decided:
		return web.Outcome{}, ErrStopping
	case <-ctx.Done():
		return web.Outcome{}, ctx.Err()
	}
	select {
	case out := <-reply:
		return out, out.Err
	case <-b.a.decided:
		select { // the loop may have answered just before it finished
		case out := <-reply:
			return out, out.Err
		default:
			return web.Outcome{}, ErrStopping
		}
	case <-ctx.Done():
		return web.Outcome{}, ctx.Err()
	}
}

func (b *backend) Events(f ledger.Filter, from uint64, fn func(*ledger.Event) error) error {
	return Events(b.a.st, f, from, fn)
}

// Events scans a store for events matching f; shared by the API and the CLI's offline path.
func Events(st *store.Store, f ledger.Filter, from uint64, fn func(*ledger.Event) error) error {
	return st.Scan(from, func(seq uint64, r ledger.Record) error {
		e, err := r.Event()
		if err != nil {
			return fmt.Errorf("seq %d: %w (run kaoqin verify)", seq, err)
		}
		if !f.Match(&e) {
			return nil
		}
		return fn(&e)
	})
}

func (b *backend) Roster() (web.RosterSummary, error) { return RosterSummary(b.a.st) }

func (b *backend) Snapshot(w io.Writer) (int64, error) { return b.a.st.Snapshot(w) }

// RosterSummary returns the active roster of a store, masked for display.
func RosterSummary(st *store.Store) (web.RosterSummary, error) {
	r, info, err := st.Roster()
	if err != nil {
		return web.RosterSummary{}, err
	}
	if r == nil {
		return web.RosterSummary{}, errors.New("no roster has been imported yet (kaoqin roster import FILE)")
	}
	s := web.Summarize(r)
	s.SHA256, s.Applied, s.From = info.SHA256, info.Applied, info.From
	return s, nil
}

func (b *backend) ImportRoster(raw []byte) (web.RosterSummary, error) {
	x, err := ImportRoster(b.a.st, raw)
	if err != nil {
		return web.RosterSummary{}, err
	}
	b.a.setRoster(x)
	b.a.log.Info("roster imported", "version", x.Version, "trainees", x.Len())
	return RosterSummary(b.a.st)
}

// ImportRoster validates a roster and makes it the store's active one; on any problem the old
// roster stays and the error lists every problem.
func ImportRoster(st *store.Store, raw []byte) (*roster.Index, error) {
	r, err := roster.Decode(raw)
	if err != nil {
		return nil, err
	}
	x, err := roster.Build(r, time.Now())
	if err != nil {
		return nil, err
	}
	if _, err := st.SetRoster(raw, r, "import"); err != nil {
		return nil, err
	}
	return x, nil
}

func (b *backend) NextCert(req web.CertRequest) (cert.Serial, error) {
	return NextCert(b.a.st, req)
}

// NextCert allocates a certificate serial for an institution of the active roster.
func NextCert(st *store.Store, req web.CertRequest) (cert.Serial, error) {
	cat, err := cert.ParseCategory(req.Category)
	if err != nil {
		return cert.Serial{}, err
	}
	r, _, err := st.Roster()
	if err != nil {
		return cert.Serial{}, err
	}
	if r == nil {
		return cert.Serial{}, errors.New("cert: no roster: the institution's city and county come from it")
	}
	for _, in := range r.Institutions {
		if in.Code != req.Institution {
			continue
		}
		if in.Retired {
			return cert.Serial{}, fmt.Errorf("%w: %s (%s)", cert.ErrRetired, in.Code, in.Name)
		}
		year := req.Year
		if year == 0 {
			year = time.Now().Year()
		}
		return st.NextCert(cert.Issuer{City: in.City, County: in.County, Institution: in.Code}, year, cat)
	}
	return cert.Serial{}, fmt.Errorf("cert: institution %q is not in the active roster", req.Institution)
}

// Enroll captures a finger at a fingerprint reader and records the template as an enrolment event
// for the central system, which adds it to the roster it sends back.
func (b *backend) Enroll(ctx context.Context, req web.EnrollRequest, progress func(string)) (ledger.Event, error) {
	a := b.a
	x := a.roster.Load()
	if x == nil || x.Trainee(req.Trainee) == nil {
		return ledger.Event{}, fmt.Errorf("agent: enroll: trainee %q is not in the roster", req.Trainee)
	}
	if req.Source == "" {
		a.readers.Range(func(k, _ any) bool { req.Source = k.(string); return false })
	}
	r, ok := a.readers.Load(req.Source)
	if !ok {
		return ledger.Event{}, fmt.Errorf("agent: enroll: no fingerprint reader %q is open", req.Source)
	}
	tmpl, err := r.(*zfm.Reader).Enroll(ctx, progress)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("agent: enroll: %w", err)
	}
	t := x.Trainee(req.Trainee)
	e := ledger.Event{Kind: ledger.Enrollment, Time: a.read().Clock, Source: req.Source, Method: string(drivers.Fingerprint),
		Trainee: t.ID, IDMasked: roster.MaskID(t.IDNumber), Institution: a.cfg.Institution, Detail: req.Finger, Data: tmpl,
		Note: "template enrolled on site; the central system adds it to the roster"}
	return a.st.Append(e)
}
