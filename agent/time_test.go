package agent_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/driverstest"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// Time on a box without a real-time clock: readings wait for trusted time, then are decided at
// the time the boot's anchor gives them. The clock is a clock.Fake; no root, no pty.

var epoch1970 = time.Date(1970, 1, 1, 0, 0, 30, 0, time.UTC)

// push hands the source a fingerprint reading of trainee and waits for its verdict.
func push(t *testing.T, f *driverstest.Feed, trainee string) drivers.Verdict {
	t.Helper()
	v := make(chan drivers.Verdict, 1)
	f.Push(drivers.Reading{Method: drivers.Fingerprint, Subject: trainee, Score: 120, Done: func(x drivers.Verdict) { v <- x }})
	select {
	case got := <-v:
		return got
	case <-time.After(10 * time.Second):
		t.Fatalf("reading of %s: no verdict", trainee)
		return 0
	}
}

// waitEvent waits until an event matching ok is in the ledger and returns it.
func waitEvent(t *testing.T, c *api.Client, what string, ok func(*ledger.Event) bool) ledger.Event {
	t.Helper()
	var got ledger.Event
	found := testkit.WaitFor(t, func() bool {
		i := slices.IndexFunc(allEvents(t, c), func(e ledger.Event) bool { return ok(&e) })
		if i >= 0 {
			got = allEvents(t, c)[i]
		}
		return i >= 0
	}, 10*time.Second)
	if !found {
		t.Fatalf("%s: not in the ledger; events: %s", what, kindsOf(allEvents(t, c)))
	}
	return got
}

func kindsOf(evs []ledger.Event) string {
	var s string
	for _, e := range evs {
		s += " " + string(e.Kind)
		if e.Reason != "" {
			s += "/" + string(e.Reason)
		}
	}
	return s
}

func ofKind(evs []ledger.Event, k ledger.Kind) []ledger.Event {
	var out []ledger.Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// The box boots in 1970 with no network: a trainee signs in, and is told recorded. An hour later
// NTP answers: one time_anchor maps the boot's monotonic clock to wall time, and the reading is
// decided as the sign-in it was, at the true time, in the session open then.
func TestBootIn1970SignInThenNTP(t *testing.T) {
	real := time.Now().Truncate(time.Second)
	r := demo.Roster(real, 4, 1)
	clk := clock.NewFake("boot-1970", epoch1970, false)
	client, f, _ := fakeDaemonAt(t, t.Name(), t.TempDir(), clk, r)

	if v := push(t, f, "T001"); v != drivers.Recorded {
		t.Fatalf("sign-in in 1970: verdict got %v, want recorded (never refused for the clock)", v)
	}
	if f.Env().ClockTrusted() {
		t.Errorf("drivers.Env.ClockTrusted in 1970: got true, want false")
	}
	evs := allEvents(t, client)
	readings := ofKind(evs, ledger.Reading)
	if len(readings) != 1 || len(ofKind(evs, ledger.SignIn))+len(ofKind(evs, ledger.Refusal)) != 0 {
		t.Fatalf("before NTP: got%s, want one pending reading and no decision", kindsOf(evs))
	}
	rd := readings[0]
	if !rd.HasFlag(ledger.FlagTimePending) || rd.Trainee != "T001" || rd.Time.Boot != "boot-1970" || rd.Time.Synced ||
		!rd.Time.Wall.Equal(epoch1970) || rd.Time.Mono != int64(time.Second) {
		t.Fatalf("pending reading: got %+v, want T001 flagged time_pending at 1970, boot boot-1970, mono 1s, not synced", rd)
	}

	// An hour passes; NTP steps the clock to the true time.
	clk.Advance(time.Hour)
	clk.Set(real.Add(time.Hour), true)

	in := waitEvent(t, client, "the decided sign-in", func(e *ledger.Event) bool { return e.Kind == ledger.SignIn })
	evs = allEvents(t, client)
	anchors := ofKind(evs, ledger.TimeAnchor)
	if len(anchors) != 1 {
		t.Fatalf("anchors: got %d (%s), want 1", len(anchors), kindsOf(evs))
	}
	a := anchors[0]
	if a.Time.Boot != "boot-1970" || !a.Time.Synced || !a.Time.Wall.Equal(real.Add(time.Hour)) || a.Time.Mono != int64(time.Hour+time.Second) {
		t.Errorf("anchor time: got %+v, want boot-1970, synced, wall %v at mono 1h1s", a.Time, real.Add(time.Hour))
	}
	if a.Seq > in.Seq || rd.Seq > a.Seq {
		t.Errorf("order: got reading %d, anchor %d, sign-in %d, want reading < anchor < sign-in", rd.Seq, a.Seq, in.Seq)
	}
	if in.Ref != rd.ID || in.Trainee != "T001" || in.Session != r.Sessions[0].ID {
		t.Errorf("decided sign-in: got ref %s trainee %s session %s, want ref %s (the reading), T001, %s",
			in.Ref, in.Trainee, in.Session, rd.ID, r.Sessions[0].ID)
	}
	if !in.Time.Wall.Equal(real) || in.Time.Mono != rd.Time.Mono || in.Time.Boot != rd.Time.Boot || !in.Time.Synced {
		t.Errorf("decided sign-in time: got %+v, want wall %v (the true time of the reading), its mono and boot, trusted", in.Time, real)
	}
	if !in.HasFlag(ledger.FlagTimeAnchored) || in.HasFlag(ledger.FlagTimePending) || in.HasFlag(ledger.FlagClockUnsynced) || in.HasFlag(ledger.FlagLate) {
		t.Errorf("decided sign-in flags: got %v, want time_anchored only (not late: the true time is 5 minutes after the start)", in.Flags)
	}
	if !f.Env().ClockTrusted() {
		t.Errorf("drivers.Env.ClockTrusted after NTP: got false, want true")
	}
	// The reading itself is not rewritten.
	if again := ofKind(evs, ledger.Reading); len(again) != 1 || again[0].Kind != ledger.Reading || !again[0].Time.Wall.Equal(epoch1970) {
		t.Errorf("the reading after its decision: got %+v, want it as recorded", again)
	}

	// Time is trusted now: the next reading is decided at once, at the wall clock, against a
	// history that holds the decided sign-in.
	if v := push(t, f, "T001"); v != drivers.Recorded {
		t.Fatalf("T001 again after NTP: verdict got %v, want recorded (a duplicate)", v)
	}
	evs = allEvents(t, client)
	last := evs[len(evs)-1]
	if last.Kind != ledger.Duplicate || last.Trainee != "T001" || !last.Time.Wall.Equal(real.Add(time.Hour)) || last.HasFlag(ledger.FlagTimeAnchored) || last.Ref != in.ID {
		t.Errorf("T001 after NTP: got %s %s at %v flags %v ref %q, want a duplicate of %s at the wall clock %v",
			last.Kind, last.Trainee, last.Time.Wall, last.Flags, last.Ref, in.ID, real.Add(time.Hour))
	}
	if n := len(ofKind(evs, ledger.TimeAnchor)); n != 1 {
		t.Errorf("anchors at the end: got %d, want still 1", n)
	}
}

// A wall clock set back behind the last trusted time the ledger knows is not trusted, even when
// the kernel says synchronised. In the same boot the anchor still knows the time: the reading is
// decided at once, at the anchored time. After a reboot into a clock set back, readings wait.
func TestClockSetBackBehindLastTrusted(t *testing.T) {
	real := time.Now().Truncate(time.Second)
	r := demo.Roster(real, 4, 1)
	clk := clock.NewFake("boot-a", real, true)
	dir := t.TempDir()
	client, f, stop := fakeDaemonAt(t, t.Name(), dir, clk, r)

	if v := push(t, f, "T001"); v != drivers.Recorded {
		t.Fatalf("trusted sign-in: verdict got %v, want recorded", v)
	}
	// Someone sets the clock back two hours (a "synchronised" clock behind the ledger's time).
	clk.Advance(time.Minute)
	clk.Set(real.Add(-2*time.Hour), true)
	if v := push(t, f, "T002"); v != drivers.Recorded {
		t.Fatalf("sign-in with the clock set back: verdict got %v, want recorded", v)
	}
	evs := allEvents(t, client)
	in2 := waitEvent(t, client, "T002's sign-in", func(e *ledger.Event) bool { return e.Kind == ledger.SignIn && e.Trainee == "T002" })
	if !in2.Time.Wall.Equal(real.Add(time.Minute)) || !in2.HasFlag(ledger.FlagTimeAnchored) || in2.HasFlag(ledger.FlagClockJump) {
		t.Errorf("T002 with the clock set back: got wall %v flags %v, want %v from the anchor, time_anchored",
			in2.Time.Wall, in2.Flags, real.Add(time.Minute))
	}
	anchors := ofKind(evs, ledger.TimeAnchor)
	if len(anchors) != 1 || anchors[0].Time.Boot != "boot-a" || !anchors[0].Time.Wall.Equal(real) {
		t.Errorf("anchors: got %+v, want one of boot-a at %v (the last trusted read)", anchors, real)
	}
	if len(ofKind(evs, ledger.Reading)) != 0 {
		t.Errorf("pending readings: got%s, want none (the boot's anchor knows the time)", kindsOf(evs))
	}
	stop()

	// The box reboots with its clock still two hours behind, the kernel "synchronised".
	clk.Reboot("boot-b", real.Add(-2*time.Hour))
	clk.Set(real.Add(-2*time.Hour), true)
	client, f, _ = fakeDaemonAt(t, t.Name(), dir, clk, nil)
	if v := push(t, f, "T003"); v != drivers.Recorded {
		t.Fatalf("sign-in after the reboot: verdict got %v, want recorded", v)
	}
	w := waitEvent(t, client, "T003's pending reading", func(e *ledger.Event) bool { return e.Kind == ledger.Reading })
	if w.Trainee != "T003" || !w.HasFlag(ledger.FlagTimePending) || w.Time.Synced || w.Time.Boot != "boot-b" {
		t.Errorf("reading behind the last trusted time: got %+v, want T003 pending, not trusted, boot-b", w)
	}
	// Real NTP answers ten minutes later.
	clk.Advance(10 * time.Minute)
	clk.Set(real.Add(20*time.Minute), true)
	in3 := waitEvent(t, client, "T003's sign-in", func(e *ledger.Event) bool { return e.Kind == ledger.SignIn && e.Trainee == "T003" })
	if in3.Ref != w.ID || !in3.Time.Wall.Equal(real.Add(10*time.Minute)) {
		t.Errorf("T003 decided: got ref %s wall %v, want ref %s wall %v", in3.Ref, in3.Time.Wall, w.ID, real.Add(10*time.Minute))
	}
}

// A daemon restarted while readings wait still decides them when the time is trusted; readings
// of an earlier boot that never got trusted time stay pending, visible as such.
func TestPendingReadingsSurviveARestart(t *testing.T) {
	real := time.Now().Truncate(time.Second)
	r := demo.Roster(real, 4, 1)
	dir := t.TempDir()

	// Boot 1: no clock, no network; T001 signs in; the box is switched off before NTP answers.
	clk := clock.NewFake("boot-1", epoch1970, false)
	_, f, stop := fakeDaemonAt(t, t.Name(), dir, clk, r)
	if v := push(t, f, "T001"); v != drivers.Recorded {
		t.Fatalf("boot 1: verdict got %v, want recorded", v)
	}
	stop()

	// Boot 2: still no time; T002 signs in; the daemon is restarted (an upgrade) in the same boot.
	clk.Reboot("boot-2", epoch1970)
	clk.Advance(5 * time.Minute)
	_, f, stop = fakeDaemonAt(t, t.Name(), dir, clk, nil)
	if v := push(t, f, "T002"); v != drivers.Recorded {
		t.Fatalf("boot 2: verdict got %v, want recorded", v)
	}
	stop()
	clk.Advance(time.Minute)
	client, _, _ := fakeDaemonAt(t, t.Name(), dir, clk, nil)

	// NTP answers 30 minutes into boot 2.
	clk.Advance(24 * time.Minute)
	clk.Set(real.Add(30*time.Minute), true)
	in := waitEvent(t, client, "T002's sign-in", func(e *ledger.Event) bool { return e.Kind == ledger.SignIn })
	// T002 read at 5m into boot 2; NTP said real+30m at 30m into it.
	if in.Trainee != "T002" || !in.Time.Wall.Equal(real.Add(5*time.Minute)) {
		t.Errorf("decided after the restart: got %s at %v, want T002 at %v", in.Trainee, in.Time.Wall, real.Add(5*time.Minute))
	}
	evs := allEvents(t, client)
	var pending []string
	decided := map[string]bool{}
	for _, e := range evs {
		if e.Ref != "" {
			decided[e.Ref] = true
		}
	}
	for _, e := range ofKind(evs, ledger.Reading) {
		if !decided[e.ID] {
			pending = append(pending, e.Trainee+"@"+e.Time.Boot)
			if !e.HasFlag(ledger.FlagTimePending) {
				t.Errorf("undecided reading %d: flags %v, want time_pending", e.Seq, e.Flags)
			}
		}
	}
	if !slices.Equal(pending, []string{"T001@boot-1"}) {
		t.Errorf("still pending: got %v, want [T001@boot-1] (boot 1 never had trusted time)", pending)
	}
	if a := ofKind(evs, ledger.TimeAnchor); len(a) != 1 || a[0].Time.Boot != "boot-2" {
		t.Errorf("anchors: got %+v, want one, of boot-2", a)
	}
	if n := len(ofKind(evs, ledger.SignIn)); n != 1 {
		t.Errorf("sign-ins: got %d, want 1 (T001's boot has no anchor)", n)
	}
}

// A reading decided more than a day after it was taken (a box offline over a weekend) is decided
// once: a restart reads the decision back, although its anchored time is older than the day of
// events the rules remember.
func TestReadingDecidedOnceAcrossARestart(t *testing.T) {
	real := time.Now().Truncate(time.Second)
	dir := t.TempDir()
	clk := clock.NewFake("boot-w", epoch1970, false)
	client, f, stop := fakeDaemonAt(t, t.Name(), dir, clk, demo.Roster(real, 4, 1))
	if v := push(t, f, "T001"); v != drivers.Recorded {
		t.Fatalf("reading: verdict got %v, want recorded", v)
	}
	clk.Advance(30 * time.Hour)
	clk.Set(real.Add(30*time.Hour), true)
	waitEvent(t, client, "the decided sign-in", func(e *ledger.Event) bool { return e.Kind == ledger.SignIn })
	stop()

	clk.Advance(time.Minute)
	client, f, _ = fakeDaemonAt(t, t.Name(), dir, clk, nil)
	// A reading after the restart: the loop has assessed the time (and decided anything held)
	// before it is recorded.
	if v := push(t, f, "T002"); v != drivers.Refused {
		t.Fatalf("T002 a day later: verdict got %v, want refused (no session then)", v)
	}
	evs := allEvents(t, client)
	if n, a := len(ofKind(evs, ledger.SignIn)), len(ofKind(evs, ledger.TimeAnchor)); n != 1 || a != 1 {
		t.Errorf("after the restart: got %d sign-ins and %d anchors (%s), want 1 and 1", n, a, kindsOf(evs))
	}
}

// The box boots in 1970 and NTP never answers (its network lets only the central system's broker
// through), but the central system's signed acks carry its clock: an ack whose round trip is short
// anchors the boot, keeping the signed ack as its proof, and the reading that waited is decided at
// the time the anchor gives it. An ack whose round trip is too long to say the time is not taken.
func TestCentralTimeAnchorsABootWithoutNTP(t *testing.T) {
	real := time.Now().Truncate(time.Second)
	r := demo.Roster(real, 4, 1)
	clk := clock.NewFake("boot-1970", epoch1970, false)
	d, f := fakeDaemonOf(t, t.Name(), t.TempDir(), clk, r)
	if v := push(t, f, "T001"); v != drivers.Recorded {
		t.Fatalf("sign-in in 1970: verdict got %v, want recorded", v)
	}
	clk.Advance(time.Hour) // an hour later the uplink reaches the central system; still no NTP

	slow := time.Now()
	d.a.Deliver(uplink.Delivery{Time: &uplink.CentralTime{Time: real.Add(time.Hour), Sent: slow.Add(-10 * time.Second), Received: slow, Seq: 2, Receipt: []byte(`{"signed":"slow"}`)}})
	if !testkit.WaitFor(t, func() bool { return strings.Contains(d.logs.String(), "central time not taken") }, 10*time.Second) {
		t.Fatal("an ack with a 10 s round trip: no log saying it was not taken")
	}
	if n := len(ofKind(allEvents(t, d.client), ledger.TimeAnchor)); n != 0 {
		t.Fatalf("anchors after an ack with a 10 s round trip: got %d, want 0", n)
	}

	recv := time.Now()
	receipt := []byte(`{"signed":"the central system's ack"}`)
	d.a.Deliver(uplink.Delivery{Time: &uplink.CentralTime{Time: real.Add(time.Hour), Sent: recv.Add(-40 * time.Millisecond), Received: recv, Seq: 3, Receipt: receipt}})
	in := waitEvent(t, d.client, "the decided sign-in", func(e *ledger.Event) bool { return e.Kind == ledger.SignIn })
	evs := allEvents(t, d.client)
	anchors := ofKind(evs, ledger.TimeAnchor)
	if len(anchors) != 1 {
		t.Fatalf("anchors: got %d (%s), want 1", len(anchors), kindsOf(evs))
	}
	a := anchors[0]
	from, to := real.Add(time.Hour), real.Add(time.Hour+time.Second)
	if a.Time.Boot != "boot-1970" || a.Time.Synced || a.Time.Wall.Before(from) || a.Time.Wall.After(to) || a.Time.Mono != int64(time.Hour+time.Second) {
		t.Errorf("anchor time: got %+v, want boot-1970, not synchronised, wall in [%v, %v] (the central's clock and half the round trip), mono 1h1s", a.Time, from, to)
	}
	if string(a.Data) != string(receipt) || !strings.Contains(a.Note, "central") || !strings.Contains(a.Detail, "round trip 40ms") {
		t.Errorf("anchor: got data %q, note %q, detail %q, want the signed ack as data, a note naming the central system, the round trip", a.Data, a.Note, a.Detail)
	}
	rd := ofKind(evs, ledger.Reading)[0]
	if in.Ref != rd.ID || in.Seq < a.Seq || !in.HasFlag(ledger.FlagTimeAnchored) || in.Session != r.Sessions[0].ID {
		t.Errorf("decided sign-in: got ref %s seq %d flags %v session %s, want the reading %s decided after the anchor (seq %d), time_anchored, in %s",
			in.Ref, in.Seq, in.Flags, in.Session, rd.ID, a.Seq, r.Sessions[0].ID)
	}
	if got := in.Time.Wall.Sub(real); got < 0 || got > time.Second || in.Time.Mono != rd.Time.Mono {
		t.Errorf("decided sign-in time: got %v (%v after the true time), want the true time of the reading to within the anchor's error", in.Time.Wall, got)
	}
	if !f.Env().ClockTrusted() {
		t.Errorf("drivers.Env.ClockTrusted after the central anchor: got false, want true")
	}
}
