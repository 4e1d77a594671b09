package checkin_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

// A box booted without a clock: its wall clock reads 1970, one second per second.
var boot1970 = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// untrusted is the clock of boot at mono since boot, reading 1970, as Assess gives it.
func untrusted(boot string, mono time.Duration) checkin.Clock {
	return checkin.Untrusted(checkin.Clock{Clock: ledger.Clock{Wall: boot1970.Add(mono), Mono: int64(mono), Boot: boot}})
}

// While the box's time is not trusted, a reading that passes the identity checks is recorded as a
// pending reading; what fails identity is refused as always; nothing is refused for the clock
// but a voucher scan, whose dates cannot be checked.
func TestDecideUntrusted(t *testing.T) {
	pending := func(trainee string, fl ...ledger.Flag) want {
		return want{kind: ledger.Reading, trainee: trainee, flags: append([]ledger.Flag{ledger.FlagTimePending, ledger.FlagClockUnsynced}, fl...)}
	}
	tests := []struct {
		name   string
		rd     drivers.Reading
		want   want
		intent string
	}{
		{name: "fingerprint", rd: fp("T-plain", "room1", boot1970), want: pending("T-plain")},
		{name: "sign-out key", rd: withIntent(fp("T-plain", "room1", boot1970), drivers.SignOut), want: pending("T-plain"), intent: "out"},
		{name: "card", rd: card("CARD-1", "room1", boot1970), want: pending("T-plain")},
		{name: "a trainee of a retired institution waits too", rd: fp("T-weld", "room1", boot1970), want: pending("T-weld")},
		{name: "manual override", rd: manual("T-plain", "api", boot1970, "王老师", "finger too dry"),
			want: func() want { w := pending("T-plain", ledger.FlagManualOverride); w.note = "finger too dry"; return w }()},
		{name: "unidentified", rd: fp("", "room1", boot1970), want: refused(ledger.ReasonUnidentified, want{flags: none})},
		{name: "not in the roster", rd: fp("T-nobody", "room1", boot1970), want: refused(ledger.ReasonUnknownTrainee, want{})},
		{name: "low score", rd: withScore(fp("T-plain", "room1", boot1970), 10), want: refused(ledger.ReasonLowScore, want{trainee: "T-plain"})},
		{name: "override without a reason", rd: manual("T-plain", "api", boot1970, "王老师", ""),
			want: refused(ledger.ReasonOverrideIncomplete, want{trainee: "T-plain"})},
		{name: "voucher scan", rd: scan("V-gen", "reg-qr", boot1970), want: refused(ledger.ReasonClockUntrusted, want{voucher: "V-gen", note: "trusted"})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rules := testRules()
			c := untrusted("boot-x", 42*time.Second)
			d := rules.Decide(tc.rd, f.x, checkin.NewHistory(), c)
			checkDecision(t, f, tc.rd, c, d, tc.want)
			if d.Event.Intent != tc.intent {
				t.Errorf("got intent %q, want %q", d.Event.Intent, tc.intent)
			}
			if d.Event.Time.Boot != "boot-x" || d.Event.Time.Mono != int64(42*time.Second) || d.Event.Time.Synced {
				t.Errorf("got time %+v, want boot-x at mono 42s, not trusted", d.Event.Time)
			}
		})
	}
}

// Assess: the kernel's word, checked against the last trusted time the ledger knows; the boot's
// anchor when there is one; the anchor to record when the time becomes trusted.
func TestAssess(t *testing.T) {
	// A trusted sign-in of boot-1 at 09:00, one hour after that boot began.
	trusted := signIn("in-1", "T-plain", "S-elec-am", "room1", at(9, 0))
	trusted.Time.Boot, trusted.Time.Mono = "boot-1", int64(time.Hour)
	anchor1 := ledger.Event{ID: "anchor-1", Kind: ledger.TimeAnchor, Time: ledger.Clock{Wall: at(8, 30), Mono: int64(30 * time.Minute), Boot: "boot-1", Synced: true}}
	waiting := func(id, boot string, mono time.Duration) ledger.Event {
		return ledger.Event{ID: id, Kind: ledger.Reading, Trainee: "T-plain", Method: "fingerprint", Source: "room1",
			Flags: []ledger.Flag{ledger.FlagTimePending}, Time: untrusted(boot, mono).Clock}
	}
	read := func(boot string, mono time.Duration, wall time.Time, synced bool) checkin.Clock {
		return checkin.Clock{Clock: ledger.Clock{Wall: wall, Mono: int64(mono), Boot: boot, Synced: synced}}
	}
	tests := []struct {
		name       string
		prior      []ledger.Event
		read       checkin.Clock
		untrusted  bool
		anchored   bool
		wall       time.Time     // the time to decide at
		anchorTime *ledger.Clock // the anchor to record first, if any
	}{
		{name: "synced, nothing known", read: read("boot-1", time.Minute, at(8, 1), true), wall: at(8, 1)},
		{name: "not synced, nothing known", read: read("boot-1", time.Minute, boot1970.Add(time.Minute), false),
			untrusted: true, wall: boot1970.Add(time.Minute)},
		{name: "synced, after the last trusted time", prior: []ledger.Event{trusted}, read: read("boot-2", time.Minute, at(10, 0), true), wall: at(10, 0)},
		{name: "synced, within the slack behind it", prior: []ledger.Event{trusted}, read: read("boot-2", time.Minute, at(9, 0).Add(-time.Second/2), true),
			wall: at(9, 0).Add(-time.Second / 2)},
		{name: "synced but set back, another boot", prior: []ledger.Event{trusted}, read: read("boot-2", time.Minute, at(7, 0), true),
			untrusted: true, wall: at(7, 0)},
		{name: "set back in a boot trusted before: anchored, the anchor to record", prior: []ledger.Event{trusted},
			read: read("boot-1", 2*time.Hour, at(7, 0), true), anchored: true, wall: at(10, 0), anchorTime: &trusted.Time},
		{name: "not synced in an anchored boot", prior: []ledger.Event{anchor1, trusted},
			read: read("boot-1", 3*time.Hour, boot1970, false), anchored: true, wall: at(11, 0)},
		{name: "a reading of this boot waits: anchor at the trusted read", prior: []ledger.Event{waiting("r-1", "boot-2", time.Minute)},
			read: read("boot-2", time.Hour, at(12, 0), true), wall: at(12, 0),
			anchorTime: &ledger.Clock{Wall: at(12, 0), Mono: int64(time.Hour), Boot: "boot-2", Synced: true}},
		{name: "only readings of another boot wait: no anchor", prior: []ledger.Event{waiting("r-1", "boot-0", time.Minute)},
			read: read("boot-2", time.Hour, at(12, 0), true), wall: at(12, 0)},
		{name: "a reading of this boot, already anchored", prior: []ledger.Event{waiting("r-1", "boot-1", time.Minute), anchor1},
			read: read("boot-1", time.Hour, at(9, 0), true), wall: at(9, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := historyOf(tc.prior...)
			got, anchor := h.Assess(tc.read)
			if got.Untrusted != tc.untrusted || got.Anchored != tc.anchored || !got.Wall.Equal(tc.wall) {
				t.Errorf("got untrusted %v anchored %v wall %v, want %v %v %v", got.Untrusted, got.Anchored, got.Wall, tc.untrusted, tc.anchored, tc.wall)
			}
			if got.Synced == tc.untrusted {
				t.Errorf("got synced %v, want %v (untrusted is never synced; an anchored time is trusted)", got.Synced, !tc.untrusted)
			}
			if got.Mono != tc.read.Mono || got.Boot != tc.read.Boot {
				t.Errorf("got mono %d boot %s, want the read's %d %s", got.Mono, got.Boot, tc.read.Mono, tc.read.Boot)
			}
			switch {
			case tc.anchorTime == nil && anchor != nil:
				t.Errorf("got an anchor %+v, want none", anchor.Time)
			case tc.anchorTime != nil && anchor == nil:
				t.Errorf("got no anchor, want one at %+v", *tc.anchorTime)
			case tc.anchorTime != nil && (anchor.Kind != ledger.TimeAnchor || anchor.Time != *tc.anchorTime):
				t.Errorf("got anchor %s at %+v, want time_anchor at %+v", anchor.Kind, anchor.Time, *tc.anchorTime)
			}
		})
	}
}

// A morning in 1970: readings wait; NTP answers at 09:30; the anchor gives each reading its true
// time and they are decided in order against the schedule, as new events naming the readings.
func TestDecideHeld(t *testing.T) {
	f := newFixture(t)
	rules := testRules()
	h := checkin.NewHistory()
	seq := uint64(0)
	record := func(e ledger.Event) ledger.Event {
		seq++
		e.Seq, e.ID = seq, ledger.NewID(e.Time.Wall)
		h.Add(&e)
		return e
	}
	// boot-1 began at 08:00 true time (the box read 1970). boot-0 never got trusted time.
	old := record(rules.Decide(fp("T-plain2", "room1", boot1970), f.x, h, untrusted("boot-0", 5*time.Minute)).Event)
	in := record(rules.Decide(fp("T-plain", "room1", boot1970), f.x, h, untrusted("boot-1", 50*time.Minute)).Event)    // 08:50
	late := record(rules.Decide(fp("T-bake", "room1", boot1970), f.x, h, untrusted("boot-1", 70*time.Minute)).Event)   // 09:10, late after 09:05
	again := record(rules.Decide(fp("T-plain", "room2", boot1970), f.x, h, untrusted("boot-1", 80*time.Minute)).Event) // 09:20
	if n := len(h.Waiting()); n != 4 || len(h.Decidable()) != 0 {
		t.Fatalf("before NTP: got %d waiting, %d decidable, want 4 and 0", n, len(h.Decidable()))
	}

	ntp := checkin.Clock{Clock: ledger.Clock{Wall: at(9, 30), Mono: int64(90 * time.Minute), Boot: "boot-1", Synced: true}}
	c, anchor := h.Assess(ntp)
	if c.Untrusted || anchor == nil {
		t.Fatalf("NTP: got untrusted %v anchor %v, want trusted with an anchor to record", c.Untrusted, anchor)
	}
	record(*anchor)
	held := h.Decidable()
	if len(held) != 3 || held[0].Event.ID != in.ID || held[1].Event.ID != late.ID || held[2].Event.ID != again.ID {
		t.Fatalf("decidable: got %d, want the three readings of boot-1 in order", len(held))
	}
	var got []ledger.Event
	for _, hd := range held {
		got = append(got, record(rules.DecideHeld(hd, f.x, h)))
	}
	wants := []struct {
		kind    ledger.Kind
		trainee string
		session string
		ref     string
		wall    time.Time
		flags   []ledger.Flag
	}{
		{ledger.SignIn, "T-plain", "S-elec-am", in.ID, at(8, 50), flags(ledger.FlagTimeAnchored)},
		{ledger.SignIn, "T-bake", "S-bake", late.ID, at(9, 10), flags(ledger.FlagLate, ledger.FlagTimeAnchored)},
		{ledger.Duplicate, "T-plain", "S-elec-am", again.ID, at(9, 20), flags(ledger.FlagTimeAnchored)},
	}
	for i, w := range wants {
		e := got[i]
		if e.Kind != w.kind || e.Trainee != w.trainee || e.Session != w.session || e.Ref != w.ref || !e.Time.Wall.Equal(w.wall) ||
			!slices.Equal(e.Flags, w.flags) || !e.Time.Synced || e.Time.Mono != held[i].Event.Time.Mono {
			t.Errorf("decision %d: got %s %s %s ref %s at %v flags %v synced %v, want %s %s %s ref %s at %v flags %v, trusted, the reading's mono",
				i, e.Kind, e.Trainee, e.Session, e.Ref, e.Time.Wall, e.Flags, e.Time.Synced, w.kind, w.trainee, w.session, w.ref, w.wall, w.flags)
		}
	}
	if w := h.Waiting(); len(w) != 1 || w[0].ID != old.ID || len(h.Decidable()) != 0 {
		t.Errorf("after the decisions: got %d waiting (%v), want only boot-0's reading, not decidable", len(w), w)
	}
	// The decided sign-in is in the history: T-plain reading at 09:40 is a duplicate of it.
	c, _ = h.Assess(checkin.Clock{Clock: ledger.Clock{Wall: at(9, 40), Mono: int64(100 * time.Minute), Boot: "boot-1", Synced: true}})
	if d := rules.Decide(fp("T-plain", "room1", at(9, 40)), f.x, h, c); d.Event.Kind != ledger.Duplicate || d.Event.Ref != got[0].ID {
		t.Errorf("T-plain after NTP: got %s ref %s, want a duplicate of the decided sign-in %s", d.Event.Kind, d.Event.Ref, got[0].ID)
	}
}

// What the ledger teaches the History of its time: a trusted event a little ahead of the last
// trusted time moves it forward (and a clock reading more than the slack behind the new time is
// not trusted); of two trusted reads of a boot, the later is the one an anchor is made from.
func TestHistoryLearnsTrustedTimeFromTheLedger(t *testing.T) {
	first := signIn("in-1", "T-plain", "S-elec-am", "room1", at(9, 0))
	first.Time.Boot, first.Time.Mono = "boot-1", int64(time.Hour)
	later := signIn("in-2", "T-bake", "S-bake", "room1", at(9, 0).Add(time.Second/2))
	later.Time.Boot, later.Time.Mono = "boot-1", int64(time.Hour+time.Second/2)
	h := historyOf(first, later)
	if got := h.LastTrusted(); !got.Equal(later.Time.Wall) {
		t.Fatalf("last trusted time: got %v, want the later event's %v", got, later.Time.Wall)
	}
	behind := checkin.Clock{Clock: ledger.Clock{Wall: later.Time.Wall.Add(-checkin.TrustSlack - time.Millisecond), Mono: int64(time.Minute), Boot: "boot-2", Synced: true}}
	if c, _ := h.Assess(behind); !c.Untrusted {
		t.Errorf("a clock of another boot reading %v behind the last trusted time: trusted, want untrusted", checkin.TrustSlack+time.Millisecond)
	}
	// boot-1's clock set back later in that boot: it is anchored at its latest trusted read.
	setBack := checkin.Clock{Clock: ledger.Clock{Wall: at(7, 0), Mono: int64(2 * time.Hour), Boot: "boot-1", Synced: true}}
	c, anchor := h.Assess(setBack)
	if anchor == nil || anchor.Time != later.Time || !c.Anchored || !c.Wall.Equal(later.Time.Wall.Add(time.Hour-time.Second/2)) {
		t.Fatalf("boot-1 set back: got %+v anchored %v, anchor %+v; want anchored at the later read %+v", c.Clock, c.Anchored, anchor, later.Time)
	}
}

// A time_anchor says how many readings of its own boot waited for it.
func TestAnchorCountsTheReadingsOfItsBoot(t *testing.T) {
	waiting := func(id, boot string) ledger.Event {
		return ledger.Event{ID: id, Kind: ledger.Reading, Trainee: "T-plain", Method: "fingerprint", Source: "room1",
			Flags: []ledger.Flag{ledger.FlagTimePending}, Time: untrusted(boot, time.Minute).Clock}
	}
	h := historyOf(waiting("r-1", "boot-2"), waiting("r-2", "boot-0"), waiting("r-3", "boot-2"))
	_, anchor := h.Assess(checkin.Clock{Clock: ledger.Clock{Wall: at(12, 0), Mono: int64(time.Hour), Boot: "boot-2", Synced: true}})
	if anchor == nil || !strings.Contains(anchor.Note, "; 2 readings waited") {
		t.Fatalf("the anchor of boot-2: %+v, want a note counting its 2 waiting readings", anchor)
	}
}

// A manual sign-in that waited for trusted time keeps its reason when it is decided: it is
// recorded as the override it was, not refused as one without a reason.
func TestHeldManualSignInKeepsItsReason(t *testing.T) {
	f := newFixture(t)
	rules := testRules()
	h := checkin.NewHistory()
	e := rules.Decide(manual("T-plain", "api", boot1970, "王老师", "finger too dry"), f.x, h, untrusted("boot-1", 50*time.Minute)).Event
	e.Seq, e.ID = 1, ledger.NewID(e.Time.Wall)
	h.Add(&e)
	_, anchor := h.Assess(checkin.Clock{Clock: ledger.Clock{Wall: at(9, 30), Mono: int64(90 * time.Minute), Boot: "boot-1", Synced: true}})
	if anchor == nil {
		t.Fatal("no anchor")
	}
	anchor.Seq, anchor.ID = 2, ledger.NewID(anchor.Time.Wall)
	h.Add(anchor)
	held := h.Decidable()
	if len(held) != 1 {
		t.Fatalf("decidable: %d, want the manual reading", len(held))
	}
	d := rules.DecideHeld(held[0], f.x, h)
	if d.Kind != ledger.SignIn || !d.HasFlag(ledger.FlagManualOverride) || d.Note != "finger too dry" || d.Operator != "王老师" {
		t.Fatalf("the held override decided: %s/%s note %q operator %q flags %v; want a sign-in, manual_override, its reason and operator",
			d.Kind, d.Reason, d.Note, d.Operator, d.Flags)
	}
}
