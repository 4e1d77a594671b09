package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/inspect"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// ErrStopping refuses API writes while the daemon shuts down.
var ErrStopping = errors.New("agent: shutting down")

// backend serves the local API and the inspector's pages from the running agent: the ledger
// service for what the store answers, the decision loop for what must be decided.
type backend struct {
	*ops.Service
	a       *Agent
	started time.Time
	insp    *inspect.Server // the inspector's pages, nil without listen
}

var (
	_ api.Backend     = (*backend)(nil)
	_ inspect.Backend = (*backend)(nil)
)

// Status adds what only the running daemon knows to the ledger's status.
func (b *backend) Status(ctx context.Context) (ops.Status, error) {
	s, err := b.Service.Status(ctx)
	if err != nil {
		return s, err
	}
	s.Running, s.Version, s.Sources, s.Started = true, Version, b.a.driverHealth(), b.started
	return s, nil
}

// Submit hands a reading to the decision loop and waits until it is recorded.
func (b *backend) Submit(ctx context.Context, rd drivers.Reading) (checkin.Outcome, error) {
	reply := make(chan checkin.Outcome, 1)
	select {
	case b.a.requests <- request{reading: rd, reply: reply}:
	case <-b.a.decided:
		return checkin.Outcome{}, ErrStopping
	case <-ctx.Done():
		return checkin.Outcome{}, ctx.Err()
	}
	select {
	case out := <-reply:
		return out, out.Err
	case <-b.a.decided:
		select { // the loop may have answered just before it finished
		case out := <-reply:
			return out, out.Err
		default:
			return checkin.Outcome{}, ErrStopping
		}
	case <-ctx.Done():
		return checkin.Outcome{}, ctx.Err()
	}
}

// Enroll captures a template at a reader that can enrol (drivers.Enroller) and records it as an
// enrolment event for the central system, which adds it to the roster it sends back.
func (b *backend) Enroll(ctx context.Context, req api.EnrollRequest, progress func(string)) (ledger.Event, error) {
	a := b.a
	op, err := b.Authenticate(ctx, ops.Credentials{Operator: req.Operator, Secret: req.Secret}, roster.RightEnrol, "enrolment of "+req.Trainee)
	if err != nil {
		return ledger.Event{}, err
	}
	x := a.roster.Load()
	if x == nil || x.Trainee(req.Trainee) == nil {
		return ledger.Event{}, fmt.Errorf("agent: enroll: trainee %q is not in the roster", req.Trainee)
	}
	// The identity check: the ID number read from the trainee's card, typed by the operator, is
	// the roster's. Anyone's finger is not taken for anyone.
	if want := x.Trainee(req.Trainee).IDNumber; req.IDNumber != want {
		return ledger.Event{}, b.Deny(ledger.DeniedIdentityCheck, op.Name, "enrolment of "+req.Trainee,
			fmt.Sprintf("agent: enroll: the ID number typed (%s) is not trainee %s's (%s): check the ID card", roster.MaskID(req.IDNumber), req.Trainee, roster.MaskID(want)))
	}
	var en drivers.Enroller
	a.open.Range(func(k, v any) bool {
		if e, ok := v.(drivers.Enroller); ok && (req.Source == "" || req.Source == k.(string)) {
			en, req.Source = e, k.(string)
			return false
		}
		return true
	})
	if en == nil {
		if req.Source != "" {
			return ledger.Event{}, fmt.Errorf("agent: enroll: no reader %q that can enrol is open", req.Source)
		}
		return ledger.Event{}, errors.New("agent: enroll: no reader that can enrol is open")
	}
	tmpl, err := en.Enroll(ctx, progress)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("agent: enroll: %w", err)
	}
	t := x.Trainee(req.Trainee)
	method := drivers.Fingerprint
	if tmpl.Kind == drivers.FaceTemplate {
		method = drivers.Face
	}
	e := ledger.Event{Kind: ledger.Enrollment, Time: a.now().Clock, Source: req.Source, Method: string(method),
		Trainee: t.ID, IDMasked: roster.MaskID(t.IDNumber), Institution: a.cfg.Institution, Detail: req.Finger, Data: tmpl.Data,
		Operator: op.Name,
		Note:     "template enrolled on site, identity checked: the ID number typed is the roster's; the central system adds it to the roster"}
	return a.st.Append(e)
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
	b := &backend{Service: a.ops, a: a, started: time.Now()}
	if a.cfg.Listen != "" {
		b.insp = inspect.New(b, inspect.Options{Log: a.log.With("component", "inspect")})
	}
	servers := &serverSet{}
	servers.add(&http.Server{Handler: api.Handler(b, true), ReadHeaderTimeout: 5 * time.Second}, ln, wg, a.log)
	if a.cfg.Listen != "" {
		tl, err := net.Listen("tcp", a.cfg.Listen)
		if err != nil {
			servers.Close()
			return nil, fmt.Errorf("agent: listen %s: %w", a.cfg.Listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/v1/", b.insp.Protect(api.Handler(b, false)))
		mux.Handle("/", b.insp.Handler())
		servers.add(&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, tl, wg, a.log)
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

// SpotCheck asks the decision loop for a spot check at every open room camera (a drivers.Capturer)
// now, as the central system's spotcheck command does.
func (b *backend) SpotCheck(ctx context.Context) (int, error) {
	n := 0
	b.a.open.Range(func(_, v any) bool {
		if _, ok := v.(drivers.Capturer); ok {
			n++
		}
		return true
	})
	if n == 0 {
		return 0, errors.New("agent: no open source is a room camera")
	}
	b.a.SpotCheckNow()
	return n, nil
}
