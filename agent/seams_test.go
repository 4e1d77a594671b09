package agent_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/driverstest"
)

// The agent's side of the driver seams, with a fake source and no pseudo-terminal: readings in,
// events out, and what the agent gives a source and asks of it.

// fakeDaemon runs the agent with one driverstest source fed by feed, and imports the demo roster.
func fakeDaemon(t *testing.T, feed string) (*api.Client, *driverstest.Feed) {
	t.Helper()
	client, f, _ := fakeDaemonAt(t, feed, t.TempDir(), clock.Running("seams-boot", true), demo.Roster(time.Now(), 4, 1))
	return client, f
}

// fakeDaemonAt is fakeDaemon with its folder (a daemon restarted on the same ledger), its clock
// and its roster (nil: the ledger has one already). stop stops the daemon (once; the test's
// cleanup calls it too).
func fakeDaemonAt(t *testing.T, feed, dir string, clk clock.Source, r *roster.Roster) (client *api.Client, f *driverstest.Feed, stop func()) {
	t.Helper()
	d, f := fakeDaemonOf(t, feed, dir, clk, r)
	return d.client, f, d.Stop
}

// fakeDaemonOf is fakeDaemonAt returning the daemon itself.
func fakeDaemonOf(t *testing.T, feed, dir string, clk clock.Source, r *roster.Roster) (*daemon, *driverstest.Feed) {
	t.Helper()
	opens := driverstest.Get(feed).Opens()
	central := centralKey(t, dir)
	cfg := fmt.Sprintf(`device = "test-seams"
institution = "0001"
state_dir = "state"
socket = "kaoqin.sock"

[[source]]
name = "door"
kind = "driverstest"
feed = %q

[uplink]
central_key = "central.pub"
`, feed)
	d := startDaemon(t, dir, cfg, clk)
	f := driverstest.Get(feed)
	if !testkit.WaitFor(t, func() bool { return f.Opens() > opens }, 10*time.Second) {
		t.Fatal("the agent never opened the source")
	}
	if r != nil {
		if _, err := d.client.ImportDataset(context.Background(), ops.ImportRequest{Bundle: signedRoster(t, central, "test-seams", r)}); err != nil {
			t.Fatal(err)
		}
	}
	return d, f
}

func allEvents(t *testing.T, c *api.Client) []ledger.Event {
	t.Helper()
	var out []ledger.Event
	if err := c.Events(context.Background(), ledger.Filter{}, 0, func(e *ledger.Event) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSourceSeams(t *testing.T) {
	client, f := fakeDaemon(t, t.Name())

	// The agent gave the source its environment: the evidence store, the expected trainees, the clock.
	env := f.Env()
	if env.Name != "door" || env.Evidence == nil || env.Log == nil || env.ClockTrusted == nil {
		t.Fatalf("env: got %+v, want name door, an evidence store, a logger and a clock", env)
	}
	if got, want := env.Expected(time.Now()), []string{"T001", "T002", "T003"}; !slices.Equal(got, want) {
		t.Errorf("expected at the door now: got %v, want %v (the class's trainees)", got, want)
	}
	// The roster's templates reached the source that keeps them.
	if !testkit.WaitFor(t, func() bool { return len(f.Templates()) == 4 }, 5*time.Second) {
		t.Errorf("templates synced: got %d, want the roster's 4", len(f.Templates()))
	}

	// A terminal that knows people itself is given the trainees with a usable voucher.
	if !testkit.WaitFor(t, func() bool { return len(f.Persons()) == 3 }, 5*time.Second) {
		t.Errorf("persons synced: got %+v, want T001-T003 (T004 is enrolled in no class)", f.Persons())
	}
	for _, p := range f.Persons() {
		if p.Name == "" || p.ValidUntil.IsZero() {
			t.Errorf("person %+v: want a name and the voucher's validity", p)
		}
	}

	// Evidence is written by the source before the reading; the event names it.
	ref, err := env.Evidence.PutEvidence(drivers.Crop, []byte("\xff\xd8 a face \xff\xd9"))
	if err != nil {
		t.Fatal(err)
	}
	verdicts := make(chan drivers.Verdict, 4)
	doneFn := func(v drivers.Verdict) { verdicts <- v }
	rd := drivers.Reading{Method: drivers.Face, Subject: "T001", Score: 0.9, Margin: 0.3, Key: "door|T001|0800",
		Evidence: []drivers.EvidenceRef{ref}, Flags: []string{"terminal_clock_off"}, Done: doneFn}
	f.Push(rd)
	if v := <-verdicts; v != drivers.Recorded {
		t.Fatalf("first reading: Done got %v, want recorded", v)
	}
	// A resend of the same key is recorded once and answered as recorded.
	f.Push(rd)
	if v := <-verdicts; v != drivers.Recorded {
		t.Fatalf("resent reading: Done got %v, want recorded", v)
	}
	// A sighting is remembered by the rules, not recorded.
	f.Push(drivers.Reading{Method: drivers.Face, Subject: "T002", Intent: drivers.Sighting, Done: doneFn})
	if v := <-verdicts; v != drivers.Recorded {
		t.Fatalf("sighting: Done got %v, want recorded", v)
	}
	// Photos that come after the recorded punch (a terminal's usual order) are attached to it by
	// an attachment event that refers to it; the sign-in itself is not rewritten.
	late, err := env.Evidence.PutEvidence(drivers.Frame, []byte("\xff\xd8 the terminal's capture \xff\xd9"))
	if err != nil {
		t.Fatal(err)
	}
	f.Push(drivers.Reading{Method: drivers.Face, Subject: "T001", Key: rd.Key, Evidence: []drivers.EvidenceRef{late}, Done: doneFn})
	if v := <-verdicts; v != drivers.Recorded {
		t.Fatalf("late photo: Done got %v, want recorded", v)
	}
	f.Push(drivers.Reading{Method: drivers.Face, Subject: "T999", Done: doneFn})
	if v := <-verdicts; v != drivers.Refused {
		t.Fatalf("unknown trainee: Done got %v, want refused", v)
	}

	var signIns, refusals, attachments []ledger.Event
	for _, e := range allEvents(t, client) {
		switch e.Kind {
		case ledger.Attachment:
			attachments = append(attachments, e)
		case ledger.SignIn:
			signIns = append(signIns, e)
		case ledger.Refusal:
			refusals = append(refusals, e)
		}
	}
	if len(signIns) != 1 {
		t.Fatalf("sign-ins: got %d, want 1 (a resent key recorded once; a sighting is no event)", len(signIns))
	}
	e := signIns[0]
	if e.Trainee != "T001" || e.Key != rd.Key || len(e.Evidence) != 1 || e.Evidence[0].SHA256 != ref.SHA256 || e.Evidence[0].Kind != "crop" ||
		!e.HasFlag("terminal_clock_off") {
		t.Errorf("sign-in: got %+v, want T001 with the key, the crop and the source's flag", e)
	}
	if len(attachments) != 1 || attachments[0].Ref != e.ID || len(attachments[0].Evidence) != 1 || attachments[0].Evidence[0].SHA256 != late.SHA256 {
		t.Errorf("attachments: got %+v, want one naming the sign-in %s with the late photo", attachments, e.ID)
	}
	if len(refusals) != 1 || refusals[0].Reason != ledger.ReasonUnknownTrainee {
		t.Errorf("refusals: got %+v, want one unknown_trainee", refusals)
	}
}

// A source that fails to open is retried with backoff, and its health says why meanwhile.
func TestSourceOpenFailureIsRetried(t *testing.T) {
	f := driverstest.Get(t.Name())
	f.FailNextOpen(fmt.Errorf("no such device"))
	client, _ := fakeDaemon(t, t.Name())
	if f.Opens() < 1 {
		t.Fatalf("opens: got %d, want a retry after the failure", f.Opens())
	}
	s, err := client.Status(context.Background())
	if err != nil || s.Sources["door"].Reopens < 1 {
		t.Errorf("status: got %+v %v, want the door reopened at least once", s.Sources["door"], err)
	}
}
