package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/drivers"
)

type fakeBackend struct {
	events    []ledger.Event
	submitted []drivers.Reading
}

func (f *fakeBackend) Status(context.Context) (ops.Status, error) {
	return ops.Status{Device: "box-1", Institution: "0001", Head: 3}, nil
}
func (f *fakeBackend) Submit(ctx context.Context, rd drivers.Reading) (checkin.Outcome, error) {
	f.submitted = append(f.submitted, rd)
	return checkin.Outcome{Event: ledger.Event{Seq: 4, Kind: ledger.SignIn, Trainee: rd.Subject}}, nil
}
func (f *fakeBackend) Events(ctx context.Context, flt ledger.Filter, from uint64, fn func(*ledger.Event) error) error {
	for i := range f.events {
		if flt.Match(&f.events[i]) {
			if err := fn(&f.events[i]); err != nil {
				return err
			}
		}
	}
	return nil
}
func (f *fakeBackend) Roster(context.Context) (ops.RosterSummary, error) {
	return ops.RosterSummary{}, errors.New("no roster")
}
func (f *fakeBackend) ImportDataset(ctx context.Context, req ops.ImportRequest) (ops.ImportResult, error) {
	return ops.ImportResult{}, nil
}
func (f *fakeBackend) AuthorizeOverride(ctx context.Context, req ops.OverrideRequest) (string, error) {
	return "", nil
}
func (f *fakeBackend) NextCert(ctx context.Context, req ops.CertRequest) (cert.Serial, error) {
	return cert.Serial{}, nil
}
func (f *fakeBackend) Enroll(ctx context.Context, req EnrollRequest, progress func(string)) (ledger.Event, error) {
	return ledger.Event{}, nil
}

func (f *fakeBackend) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	n, err := w.Write([]byte("bbolt file"))
	return int64(n), err
}

func (f *fakeBackend) SpotCheck(ctx context.Context) (int, error) {
	return 0, errors.New("no room camera")
}

func fixture() *fakeBackend {
	today := time.Now()
	return &fakeBackend{events: []ledger.Event{
		{Seq: 1, Kind: ledger.SignIn, Trainee: "T001", IDMasked: "370102********1234", Session: "S1", Time: ledger.Clock{Wall: today, Synced: true}, Flags: []ledger.Flag{ledger.FlagLate}},
		{Seq: 2, Kind: ledger.Refusal, Reason: ledger.ReasonNotHolder, Trainee: "T002", Time: ledger.Clock{Wall: today}},
		{Seq: 3, Kind: ledger.SignIn, Trainee: "T003", Time: ledger.Clock{Wall: today.AddDate(0, 0, -3)}},
	}}
}

func get(t *testing.T, h http.Handler, method, target, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestReadOnlyHandlerTakesNoWrites(t *testing.T) {
	b := fixture()
	if code, _ := get(t, Handler(b, false), "GET", "/v1/snapshot", ""); code != http.StatusNotFound {
		t.Errorf("GET /v1/snapshot on the read-only handler: %d, want 404 (it holds full ID numbers)", code)
	}
	for _, path := range []string{"/v1/signin", "/v1/roster", "/v1/cert/next", "/v1/enroll"} {
		code, _ := get(t, Handler(b, false), "POST", path, `{"trainee":"T001","operator":"x","reason":"y"}`)
		if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s on the read-only handler: %d, want 404 or 405", path, code)
		}
	}
	if len(b.submitted) != 0 {
		t.Fatalf("a write reached the backend through the read-only handler")
	}
}

func TestSignInRequestIsStrict(t *testing.T) {
	b := fixture()
	h := Handler(b, true)
	if code, _ := get(t, h, "POST", "/v1/signin", `{"trainee":"T001","operater":"x","reason":"y"}`); code != http.StatusBadRequest {
		t.Errorf("misspelled field: %d, want 400", code)
	}
	code, body := get(t, h, "POST", "/v1/signin", `{"trainee":"T001","operator":"王老师","reason":"dry finger"}`)
	if code != http.StatusOK || !strings.Contains(body, `"seq":4`) {
		t.Fatalf("signin: %d %s", code, body)
	}
	rd := b.submitted[0]
	if rd.Method != drivers.Manual || rd.Subject != "T001" || rd.Operator != "王老师" || rd.Reason != "dry finger" {
		t.Errorf("submitted reading %+v", rd)
	}
}

func TestEventsFilter(t *testing.T) {
	_, body := get(t, Handler(fixture(), false), "GET", "/v1/events?kind=refusal", "")
	if strings.Count(body, "\n") != 1 || !strings.Contains(body, `"trainee":"T002"`) {
		t.Errorf("kind=refusal: got %q, want only T002's refusal", body)
	}
	if code, _ := get(t, Handler(fixture(), false), "GET", "/v1/events?since=yesterday-ish", ""); code != http.StatusBadRequest {
		t.Errorf("bad since: %d, want 400", code)
	}
}
