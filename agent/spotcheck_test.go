package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/driverstest"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// spotDaemon runs the agent with one driverstest source named "room" (a Capturer: a room camera
// for the spot checks) fed by feed, the [spot_check] table given, and roster r imported.
func spotDaemon(t *testing.T, feed, spotTOML string, clk clock.Source, r *roster.Roster) (*agent.Agent, *api.Client, *driverstest.Feed) {
	t.Helper()
	dir := t.TempDir()
	central := centralKey(t, dir)
	cfg := fmt.Sprintf(`device = "test-spot"
institution = "0001"
state_dir = "state"
socket = "kaoqin.sock"

%s

[[source]]
name = "room"
kind = "driverstest"
feed = %q

[uplink]
central_key = "central.pub"
`, spotTOML, feed)
	d := startDaemon(t, dir, cfg, clk)
	a, client := d.a, d.client
	f := driverstest.Get(feed)
	if !testkit.WaitFor(t, func() bool { return f.Opens() > 0 }, 10*time.Second) {
		t.Fatal("the agent never opened the source")
	}
	if _, err := client.ImportDataset(context.Background(), ops.ImportRequest{Bundle: signedRoster(t, central, "test-spot", r)}); err != nil {
		t.Fatal(err)
	}
	return a, client, f
}

func spotChecks(t *testing.T, c *api.Client) []ledger.Event {
	t.Helper()
	var out []ledger.Event
	for _, e := range allEvents(t, c) {
		if e.Kind == ledger.SpotCheck {
			out = append(out, e)
		}
	}
	return out
}

func spotData(t *testing.T, e ledger.Event) checkin.SpotCheckData {
	t.Helper()
	var d checkin.SpotCheckData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("spot check seq %d: data %q: %v", e.Seq, e.Data, err)
	}
	return d
}

// pushWait hands the room feed a reading and waits for its verdict.
func pushWait(t *testing.T, f *driverstest.Feed, rd drivers.Reading) {
	t.Helper()
	v := make(chan drivers.Verdict, 1)
	rd.Done = func(x drivers.Verdict) { v <- x }
	f.Push(rd)
	select {
	case <-v:
	case <-time.After(10 * time.Second):
		t.Fatalf("reading %+v: no verdict", rd)
	}
}

// The central system's spotcheck command: the room camera's burst becomes one spot_check event,
// the headcount against the sign-ins, each trainee seen, not seen or unsure, with the burst's
// evidence; fewer faces than sign-ins beyond the tolerance flags the check; and the sign-outs
// carry what the checks found.
func TestSpotCheckCommand(t *testing.T) {
	clk := clock.Running("spot-boot", true)
	a, client, f := spotDaemon(t, t.Name(), "[spot_check]\nper_session = 0\nheadcount_tolerance = 1\nabsent_share = 0.5",
		clk, demo.Roster(time.Now(), 4, 1))
	for _, id := range []string{"T001", "T002", "T003"} {
		pushWait(t, f, drivers.Reading{Method: drivers.Fingerprint, Subject: id, Score: 80})
	}
	env := f.Env()
	frame, err := env.Evidence.PutEvidence(drivers.Frame, []byte("\xff\xd8 the room \xff\xd9"))
	if err != nil {
		t.Fatal(err)
	}
	crop1, _ := env.Evidence.PutEvidence(drivers.Crop, []byte("\xff\xd8 face 1 \xff\xd9"))
	crop2, _ := env.Evidence.PutEvidence(drivers.Crop, []byte("\xff\xd8 face 2 \xff\xd9"))
	spotcheck := func() { a.Deliver(uplink.Delivery{Command: &wire.Command{ID: 1, Cmd: wire.CmdSpotcheck}}) }

	// Two faces: T001 identified, one face nobody. T002 and T003 may be that face: unsure.
	f.SetCapture([]drivers.Reading{
		{Method: drivers.Face, Subject: "T001", Intent: drivers.Sighting, Evidence: []drivers.EvidenceRef{crop1, frame}},
		{Method: drivers.Face, Intent: drivers.Sighting, Evidence: []drivers.EvidenceRef{crop2, frame}},
	})
	spotcheck()
	if !testkit.WaitFor(t, func() bool { return len(spotChecks(t, client)) == 1 }, 10*time.Second) {
		t.Fatalf("spot checks after the command: got %d, want 1", len(spotChecks(t, client)))
	}
	e := spotChecks(t, client)[0]
	d := spotData(t, e)
	if d.Headcount != 2 || d.SignedIn != 3 || !slices.Equal(d.Seen, []string{"T001"}) || len(d.NotSeen) != 0 ||
		!slices.Equal(d.Unsure, []string{"T002", "T003"}) {
		t.Errorf("first check: got %+v, want headcount 2 of 3 signed in, T001 seen, T002 T003 unsure", d)
	}
	if e.HasFlag(ledger.FlagHeadcountShort) || e.Source != "room" || e.Session == "" || len(e.Evidence) != 3 {
		t.Errorf("first check: got flags %v source %q session %q evidence %d, want no flag (2+1 >= 3), room, the session, 3 photos (frame once)",
			e.Flags, e.Source, e.Session, len(e.Evidence))
	}
	sc, ok := report.DecodeSpotCheck(&e)
	if !ok || sc.Headcount != 2 || sc.SignedIn != 3 || len(sc.Unsure) != 2 {
		t.Errorf("report's reading: got %+v, want the same counts", sc)
	}

	// One face, T001's: T002 and T003 are not seen, and the room is short of faces.
	f.SetCapture([]drivers.Reading{{Method: drivers.Face, Subject: "T001", Intent: drivers.Sighting, Evidence: []drivers.EvidenceRef{crop1, frame}}})
	if n, err := client.SpotCheck(context.Background()); n != 1 || err != nil { // `kaoqin spotcheck`: the same, from the socket
		t.Fatalf("spot check through the API: got %d cameras, %v, want 1", n, err)
	}
	if !testkit.WaitFor(t, func() bool { return len(spotChecks(t, client)) == 2 }, 10*time.Second) {
		t.Fatalf("spot checks after the second command: got %d, want 2", len(spotChecks(t, client)))
	}
	e = spotChecks(t, client)[1]
	d = spotData(t, e)
	if d.Headcount != 1 || !slices.Equal(d.NotSeen, []string{"T002", "T003"}) || !e.HasFlag(ledger.FlagHeadcountShort) {
		t.Errorf("second check: got %+v flags %v, want headcount 1, T002 T003 not seen, headcount_short", d, e.Flags)
	}

	// Sign-outs: T002 missed 1 of 2 checks (share 0.5) and no camera ever saw them; T001 was seen.
	clk.Advance(3 * time.Minute) // past the duplicate window of the sign-ins
	pushWait(t, f, drivers.Reading{Method: drivers.Fingerprint, Subject: "T002", Score: 80, Intent: drivers.SignOut})
	pushWait(t, f, drivers.Reading{Method: drivers.Fingerprint, Subject: "T001", Score: 80, Intent: drivers.SignOut})
	outs := map[string]ledger.Event{}
	for _, e := range allEvents(t, client) {
		if e.Kind == ledger.SignOut {
			outs[e.Trainee] = e
		}
	}
	if o := outs["T002"]; !o.HasFlag(ledger.FlagAbsentSpotCheck) || !o.HasFlag(ledger.FlagNotSeenByCamera) {
		t.Errorf("T002's sign-out: got flags %v, want absent_at_spot_check and not_seen_by_camera", o.Flags)
	}
	if o, ok := outs["T001"]; !ok || o.HasFlag(ledger.FlagAbsentSpotCheck) || o.HasFlag(ledger.FlagNotSeenByCamera) {
		t.Errorf("T001's sign-out: got %v (recorded %v), want neither camera flag (seen in both checks)", o.Flags, ok)
	}
}

// The random checks: planned when the session starts, none in its first or last minutes, each
// taken when due; a session without sign-ins still gets its headcount.
func TestSpotCheckSchedule(t *testing.T) {
	now := time.Now()
	r := demo.Roster(now, 4, 1)
	s := &r.Sessions[0]
	s.Start, s.End = now.Add(time.Minute).Truncate(time.Second), now.Add(31*time.Minute).Truncate(time.Second)
	clk := clock.Running("spot-boot", true)
	_, client, f := spotDaemon(t, t.Name(), "[spot_check]\nper_session = 3\nedge = \"5m\"", clk, r)
	f.SetCapture([]drivers.Reading{{Method: drivers.Face, Intent: drivers.Sighting}})

	clk.Advance(2 * time.Minute) // the session has started: the checks are drawn, none due yet
	time.Sleep(2500 * time.Millisecond)
	if n := len(spotChecks(t, client)); n != 0 {
		t.Fatalf("spot checks in the first minutes: got %d, want 0 (edge 5m)", n)
	}
	clk.Advance(25 * time.Minute) // past the last possible check, before the session's end
	if !testkit.WaitFor(t, func() bool { return len(spotChecks(t, client)) == 3 }, 15*time.Second) {
		t.Fatalf("spot checks by the end of the session: got %d, want 3", len(spotChecks(t, client)))
	}
	for _, e := range spotChecks(t, client) {
		if e.Session != s.ID || spotData(t, e).Headcount != 1 {
			t.Errorf("check seq %d: session %q data %s, want %s with headcount 1", e.Seq, e.Session, e.Data, s.ID)
		}
	}
	clk.Advance(10 * time.Minute) // after the session: no more
	time.Sleep(1500 * time.Millisecond)
	if n := len(spotChecks(t, client)); n != 3 {
		t.Errorf("spot checks after the session: got %d, want still 3", n)
	}
}
