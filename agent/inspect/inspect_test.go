package inspect

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
)

type fakeBackend struct{ events []ledger.Event }

func (f *fakeBackend) Status(context.Context) (ops.Status, error) {
	return ops.Status{Device: "box-1", Institution: "0001", Head: 3}, nil
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

func TestInspectorPageShowsTodaysLog(t *testing.T) {
	code, body := get(t, Handler(fixture()), "GET", "/", "")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	for _, want := range []string{"box-1", "T001", "370102********1234", `class="flag">late`, "not_voucher_holder", "T002",
		"In the room now, session S1:</b> 1 of 1 signed in today: T001."} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "T003") {
		t.Error("page shows an event of another day")
	}
}
