package checkin_test

import (
	"testing"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// When one session's sign-out window overlaps the next one's sign-in window, a trainee who has
// signed out of the first signs in to the second instead of being told "already signed out".
func TestOverlappingSessionsGoToTheUnfinishedOne(t *testing.T) {
	r := fixtureRoster()
	for i := range r.Sessions {
		if r.Sessions[i].ID == "S-elec-pm" {
			r.Sessions[i].Start, r.Sessions[i].End = at(12, 15), at(15, 0) // sign-in opens 11:45
		}
	}
	x, err := roster.Build(r, at(6, 0))
	if err != nil {
		t.Fatal(err)
	}
	rules := testRules()
	h := historyOf(signIn("in-am", "T-plain", "S-elec-am", "room1", at(8, 55)))

	d := rules.Decide(fp("T-plain", "room1", at(11, 50)), x, h, clk(at(11, 50)))
	if d.Event.Kind != ledger.SignOut || d.Event.Session != "S-elec-am" {
		t.Fatalf("at 11:50: got %s of %s, want sign_out of S-elec-am", d.Event.Kind, d.Event.Session)
	}
	d.Event.ID = "out-am"
	h.Add(&d.Event)

	d = rules.Decide(fp("T-plain", "room1", at(12, 5)), x, h, clk(at(12, 5)))
	if d.Event.Kind != ledger.SignIn || d.Event.Session != "S-elec-pm" {
		t.Fatalf("at 12:05 after signing out of the morning: got %s of %s (%s), want sign_in of S-elec-pm", d.Event.Kind, d.Event.Session, d.Event.Note)
	}
}
