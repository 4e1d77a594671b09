package checkin_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

var spotAt = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func spotSignIn(h *checkin.History, trainee, session string) {
	h.Add(&ledger.Event{Kind: ledger.SignIn, Trainee: trainee, Session: session, Method: "fingerprint", ID: trainee + "-in",
		Time: ledger.Clock{Wall: spotAt.Add(-time.Hour), Synced: true}})
}

// A spot check judges the faces against the sign-ins: identified is seen; not identified is
// unsure while a face stayed unidentified, else not seen; too few faces is short.
func TestSpotCheckJudgement(t *testing.T) {
	h := checkin.NewHistory()
	for _, id := range []string{"T1", "T2", "T3", "T4"} {
		spotSignIn(h, id, "S")
	}
	spotSignIn(h, "T9", "other")
	d, short := h.SpotCheck("S", []string{"T1", "T9", ""}, 0)
	if d.Headcount != 3 || d.SignedIn != 4 || !slices.Equal(d.Seen, []string{"T1"}) ||
		!slices.Equal(d.Unsure, []string{"T2", "T3", "T4"}) || !slices.Equal(d.Unexpected, []string{"T9"}) || !short {
		t.Errorf("got %+v short=%v, want 3 faces of 4, T1 seen, T2-T4 unsure, T9 unexpected, short", d, short)
	}
	d, short = h.SpotCheck("S", []string{"T1", "T2", "T3"}, 1)
	if !slices.Equal(d.NotSeen, []string{"T4"}) || len(d.Unsure) != 0 || short {
		t.Errorf("got %+v short=%v, want T4 not seen, not short with tolerance 1", d, short)
	}

	// Recorded, the check is remembered (as the ledger replays it at start).
	data, _ := json.Marshal(d)
	h.Add(&ledger.Event{Kind: ledger.SpotCheck, Session: "S", Source: "cam", Data: data, Time: ledger.Clock{Wall: spotAt, Synced: true}})
	if n, missed := h.SpotChecks("T4", "S"); n != 1 || missed != 1 {
		t.Errorf("T4: got %d checks %d missed, want 1 and 1", n, missed)
	}
	if _, ok := h.SeenSince("T1", spotAt.Add(-time.Minute)); !ok {
		t.Errorf("T1 seen by the check: got no sighting, want one")
	}
}

// FuzzSpotCheckData: any Data of a spot_check event is taken or ignored, never a panic, and never
// counts a check it could not read.
func FuzzSpotCheckData(f *testing.F) {
	f.Add([]byte(`{"headcount":2,"signed_in":3,"seen":["T1"],"not_seen":["T2"],"unsure":["T3"]}`))
	f.Add([]byte(`{"seen":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := checkin.NewHistory()
		h.Add(&ledger.Event{Kind: ledger.SpotCheck, Session: "S", Data: data, Time: ledger.Clock{Wall: spotAt}})
		n, _ := h.SpotChecks("T2", "S")
		var d checkin.SpotCheckData
		if ok := json.Unmarshal(data, &d) == nil; ok != (n == 1) {
			t.Errorf("data %q: decodes %v, got %d checks counted", data, ok, n)
		}
	})
}
