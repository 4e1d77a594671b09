package report_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
)

var cst = time.FixedZone("CST", 8*3600)

// at is a time on 27 November 2026 in China Standard Time; hh may pass 24 for the next day.
func at(hh, mm int) time.Time { return time.Date(2026, 11, 27, hh, mm, 0, 0, cst) }

// fixture: programme P-elec (16 class hours), class C1 with four sessions on the 27th, the last
// crossing midnight; class C2 of programme P-weld with a session overlapping C1's morning.
//
//	S-am    08:30-11:30  4 class hours
//	S-pm    12:15-15:15  4 (its sign-in opens 11:45, inside S-am's sign-out window)
//	S-eve   19:00-21:15  3
//	S-night 22:00-01:00  4 (crosses midnight)
//	S-weld  10:30-12:00  2 (class C2)
func fixture() *roster.Roster {
	r := &roster.Roster{
		Version:    1,
		Programmes: []roster.Programme{{ID: "P-elec", Institution: "0001", Occupation: "电工", Category: "A", Hours: 16}, {ID: "P-weld", Institution: "0001", Occupation: "焊工", Category: "A", Hours: 8}},
		Sessions: []roster.Session{
			{ID: "S-am", Programme: "P-elec", Class: "C1", Start: at(8, 30), End: at(11, 30)},
			{ID: "S-pm", Programme: "P-elec", Class: "C1", Start: at(12, 15), End: at(15, 15)},
			{ID: "S-eve", Programme: "P-elec", Class: "C1", Start: at(19, 0), End: at(21, 15)},
			{ID: "S-night", Programme: "P-elec", Class: "C1", Start: at(22, 0), End: at(25, 0)},
			{ID: "S-weld", Programme: "P-weld", Class: "C2", Start: at(10, 30), End: at(12, 0)},
		},
	}
	names := []string{"张三", "李四", "王五", "赵六"}
	for i, n := range names {
		t := roster.Trainee{ID: fmt.Sprintf("T%d", i+1), Name: n, IDNumber: roster.WithCheckChar(fmt.Sprintf("3701021990010100%d", i+1)),
			Enrolments: []roster.Enrolment{{Class: "C1"}}}
		if i == 3 {
			t.Enrolments = append(t.Enrolments, roster.Enrolment{Class: "C2"})
		}
		r.Trainees = append(r.Trainees, t)
	}
	r.Trainees = append(r.Trainees, roster.Trainee{ID: "T9", Name: "外班", IDNumber: roster.WithCheckChar("37010219900101009")})
	return r
}

type evb struct{ evs []ledger.Event }

func (b *evb) add(kind ledger.Kind, trainee, session string, when time.Time, mods ...func(*ledger.Event)) *evb {
	e := ledger.Event{Seq: uint64(len(b.evs) + 1), ID: fmt.Sprintf("e%d", len(b.evs)+1), Kind: kind, Trainee: trainee,
		Session: session, Method: "fingerprint", Source: "door", Time: ledger.Clock{Wall: when, Synced: true}}
	for _, m := range mods {
		m(&e)
	}
	b.evs = append(b.evs, e)
	return b
}

func in(b *evb, trainee, session string, when time.Time, mods ...func(*ledger.Event)) *evb {
	return b.add(ledger.SignIn, trainee, session, when, mods...)
}
func out(b *evb, trainee, session string, when time.Time, mods ...func(*ledger.Event)) *evb {
	return b.add(ledger.SignOut, trainee, session, when, mods...)
}
func flags(fs ...ledger.Flag) func(*ledger.Event) {
	return func(e *ledger.Event) { e.Flags = append(e.Flags, fs...) }
}
func unsynced(e *ledger.Event) {
	e.Time.Synced = false
	e.Flags = append(e.Flags, ledger.FlagClockUnsynced)
}
func manual(e *ledger.Event) {
	e.Method, e.Operator, e.Note = "manual", "王老师", "finger too dry"
	e.Flags = append(e.Flags, ledger.FlagManualOverride)
}

// pending records a reading of trainee taken at hh:mm (true time) on a box whose clock read 1970:
// no session yet, flagged time_pending. It returns the reading's ID.
func pending(b *evb, trainee string, hh, mm int) string {
	b.add(ledger.Reading, trainee, "", time.Unix(int64(hh*3600+mm*60), 0), func(e *ledger.Event) {
		e.Time.Synced = false
		e.Flags = []ledger.Flag{ledger.FlagTimePending, ledger.FlagClockUnsynced}
	})
	return b.evs[len(b.evs)-1].ID
}

// anchoredTo makes an event the decision of a pending reading, its time from the boot's anchor.
func anchoredTo(reading string) func(*ledger.Event) {
	return func(e *ledger.Event) {
		e.Ref = reading
		e.Flags = append(e.Flags, ledger.FlagTimeAnchored)
	}
}

func find(t *testing.T, sh report.Sheet, trainee string) report.Attendance {
	t.Helper()
	for _, r := range sh.Rows {
		if r.Trainee == trainee {
			return r
		}
	}
	t.Fatalf("session %s: no row for %s", sh.Session, trainee)
	return report.Attendance{}
}

func TestAttendanceTable(t *testing.T) {
	type want struct {
		status     report.Status
		classHours int
		credited   time.Duration
		doubt      bool
		flags      []ledger.Flag
		dups       int
		overlap    time.Duration
	}
	cases := []struct {
		name    string
		events  func(b *evb)
		session string
		trainee string
		now     time.Time
		want    want
	}{
		{"on time in and out", func(b *evb) { in(b, "T1", "S-am", at(8, 20)); out(b, "T1", "S-am", at(11, 35)) },
			"S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, nil, 0, 0}},
		{"sign-in within the grace counts from the start", func(b *evb) { in(b, "T1", "S-am", at(8, 38)); out(b, "T1", "S-am", at(11, 31)) },
			"S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, nil, 0, 0}},
		{"late sign-in counts from the sign-in", func(b *evb) {
			in(b, "T1", "S-am", at(8, 50), flags(ledger.FlagLate))
			out(b, "T1", "S-am", at(11, 40))
		}, "S-am", "T1", at(23, 0), want{report.StatusPresent, 3, 160 * time.Minute, false, []ledger.Flag{ledger.FlagLate}, 0, 0}},
		{"early leave counts to the sign-out", func(b *evb) {
			in(b, "T1", "S-am", at(8, 25))
			out(b, "T1", "S-am", at(11, 0), flags(ledger.FlagEarlyLeave))
		}, "S-am", "T1", at(23, 0), want{report.StatusPresent, 3, 150 * time.Minute, false, []ledger.Flag{ledger.FlagEarlyLeave}, 0, 0}},
		{"sign-in without sign-out after the window closed: no hours", func(b *evb) { in(b, "T1", "S-am", at(8, 25)) },
			"S-am", "T1", at(13, 0), want{report.StatusNoSignOut, 0, 0, false, nil, 0, 0}},
		{"sign-in without sign-out while the window is open: in progress", func(b *evb) { in(b, "T1", "S-am", at(8, 25)) },
			"S-am", "T1", at(11, 45), want{report.StatusInProgress, 0, 0, false, nil, 0, 0}},
		{"a duplicate is recorded, not counted", func(b *evb) {
			in(b, "T1", "S-am", at(8, 25))
			b.add(ledger.Duplicate, "T1", "S-am", at(8, 26))
			out(b, "T1", "S-am", at(11, 35))
		}, "S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, nil, 1, 0}},
		{"a second sign-in changes nothing", func(b *evb) {
			in(b, "T1", "S-am", at(8, 25))
			in(b, "T1", "S-am", at(9, 45), flags(ledger.FlagLate))
			out(b, "T1", "S-am", at(11, 35))
		}, "S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, nil, 0, 0}},
		{"a manual override counts and is in doubt", func(b *evb) { in(b, "T1", "S-am", at(8, 25), manual); out(b, "T1", "S-am", at(11, 35)) },
			"S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, true, []ledger.Flag{ledger.FlagManualOverride}, 0, 0}},
		{"clock-unsynced events count and are in doubt", func(b *evb) {
			in(b, "T1", "S-am", at(8, 25), unsynced)
			out(b, "T1", "S-am", at(11, 35), unsynced)
		}, "S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, true, []ledger.Flag{ledger.FlagClockUnsynced}, 0, 0}},
		{"absent at a spot check puts the hours in doubt", func(b *evb) {
			in(b, "T1", "S-am", at(8, 25))
			out(b, "T1", "S-am", at(11, 35), flags(ledger.FlagAbsentSpotCheck, ledger.FlagNotSeenByCamera))
		}, "S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, true, []ledger.Flag{ledger.FlagAbsentSpotCheck, ledger.FlagNotSeenByCamera}, 0, 0}},
		{"a session crossing midnight", func(b *evb) { in(b, "T1", "S-night", at(21, 45)); out(b, "T1", "S-night", at(25, 5)) },
			"S-night", "T1", at(26, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, nil, 0, 0}},
		{"crossing midnight, early leave after midnight", func(b *evb) {
			in(b, "T1", "S-night", at(21, 45))
			out(b, "T1", "S-night", at(24, 30), flags(ledger.FlagEarlyLeave))
		}, "S-night", "T1", at(26, 0), want{report.StatusPresent, 3, 150 * time.Minute, false, []ledger.Flag{ledger.FlagEarlyLeave}, 0, 0}},
		{"absent: no sign-in once the sign-in window closed", func(b *evb) {}, "S-am", "T1", at(9, 31),
			want{report.StatusAbsent, 0, 0, false, nil, 0, 0}},
		{"not yet: the sign-in window is open", func(b *evb) {}, "S-am", "T1", at(9, 29),
			want{report.StatusUpcoming, 0, 0, false, nil, 0, 0}},
		{"a sign-out before its sign-in is ignored", func(b *evb) {
			in(b, "T1", "S-am", at(8, 25))
			out(b, "T1", "S-am", at(8, 0))
		}, "S-am", "T1", at(23, 0), want{report.StatusNoSignOut, 0, 0, false, nil, 0, 0}},
		{"overlapping sessions of two classes are not paid twice", func(b *evb) {
			in(b, "T4", "S-am", at(8, 25))
			in(b, "T4", "S-weld", at(10, 25))
			out(b, "T4", "S-am", at(11, 31))
			out(b, "T4", "S-weld", at(12, 1))
		}, "S-weld", "T4", at(23, 0), want{report.StatusPresent, 0, 30 * time.Minute, false, nil, 0, time.Hour}},
		{"overlapping sessions: the earlier one keeps its hours", func(b *evb) {
			in(b, "T4", "S-am", at(8, 25))
			in(b, "T4", "S-weld", at(10, 25))
			out(b, "T4", "S-am", at(11, 31))
			out(b, "T4", "S-weld", at(12, 1))
		}, "S-am", "T4", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, nil, 0, 0}},
		{"back-to-back sessions whose windows overlap both count", func(b *evb) {
			in(b, "T1", "S-am", at(8, 25))
			out(b, "T1", "S-am", at(11, 50))
			in(b, "T1", "S-pm", at(12, 5))
			out(b, "T1", "S-pm", at(15, 20))
		}, "S-pm", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, nil, 0, 0}},
		{"a reading waiting for trusted time is not attendance", func(b *evb) { pending(b, "T1", 8, 20); pending(b, "T1", 11, 35) },
			"S-am", "T1", at(23, 0), want{report.StatusAbsent, 0, 0, false, nil, 0, 0}},
		{"readings decided once the time was trusted count, not in doubt", func(b *evb) {
			r1 := pending(b, "T1", 8, 20)
			r2 := pending(b, "T1", 11, 35)
			b.add(ledger.TimeAnchor, "", "", at(12, 0))
			in(b, "T1", "S-am", at(8, 20), anchoredTo(r1))
			out(b, "T1", "S-am", at(11, 35), anchoredTo(r2))
		}, "S-am", "T1", at(23, 0), want{report.StatusPresent, 4, 3 * time.Hour, false, []ledger.Flag{ledger.FlagTimeAnchored}, 0, 0}},
		{"a trainee not in the class", func(b *evb) { in(b, "T9", "S-am", at(8, 25), manual); out(b, "T9", "S-am", at(11, 35)) },
			"S-am", "T9", at(23, 0), want{report.StatusNotEnrolled, 0, 0, true, []ledger.Flag{ledger.FlagManualOverride}, 0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &evb{}
			c.events(b)
			sh, err := report.SheetOf(b.evs, fixture(), c.session, report.Options{Zone: cst, Now: c.now})
			if err != nil {
				t.Fatal(err)
			}
			a := find(t, sh, c.trainee)
			got := want{a.Status, a.ClassHours, a.Credited, a.Doubt, a.Flags, a.Duplicates, a.Overlap}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestSheetListsEveryExpectedTrainee(t *testing.T) {
	b := &evb{}
	in(b, "T1", "S-am", at(8, 25))
	out(b, "T1", "S-am", at(11, 35))
	in(b, "T2", "S-am", at(8, 55), flags(ledger.FlagLate))
	in(b, "T9", "S-am", at(8, 40), manual)
	b.add(ledger.Refusal, "T3", "", at(8, 30))
	sh, err := report.SheetOf(b.evs, fixture(), "S-am", report.Options{Zone: cst, Now: at(11, 40)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range sh.Rows {
		ids = append(ids, r.Trainee+":"+string(r.Status))
	}
	wantIDs := []string{"T1:present", "T2:in_progress", "T3:absent", "T4:absent", "T9:not_enrolled"}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("rows: got %v, want %v", ids, wantIDs)
	}
	type counts struct{ Expected, SignedIn, SignedOut, InRoom, Missing, Flagged, Doubtful int }
	got := counts{sh.Expected, sh.SignedIn, sh.SignedOut, sh.InRoom, sh.Missing, sh.Flagged, sh.Doubtful}
	if w := (counts{4, 3, 1, 2, 2, 2, 1}); got != w {
		t.Errorf("counts: got %+v, want %+v", got, w)
	}
	r := sh.Rows[0]
	if r.Name != "张三" {
		t.Errorf("row 0: got name %q, want 张三", r.Name)
	}
	for _, r := range sh.Rows {
		if len(r.IDMasked) != 18 || r.IDMasked[6:14] != "********" {
			t.Errorf("%s: ID number %q is not masked", r.Trainee, r.IDMasked)
		}
	}
	if r.In.At.Location() != cst || r.In.At.Hour() != 8 {
		t.Errorf("sign-in time: got %v, want 08:25 in the configured zone", r.In.At)
	}
	if sh.Start.Location() != cst || sh.ClassHours != 4 || sh.Occupation != "电工" {
		t.Errorf("sheet head: got start %v, %d class hours, occupation %q", sh.Start, sh.ClassHours, sh.Occupation)
	}
	if _, err := report.SheetOf(b.evs, fixture(), "S-nope", report.Options{}); err == nil {
		t.Error("unknown session: got no error")
	}
}

func TestClassHours(t *testing.T) {
	b := &evb{}
	// T1 attends everything, once by a manual override; the night session late.
	in(b, "T1", "S-am", at(8, 25), manual)
	out(b, "T1", "S-am", at(11, 35))
	in(b, "T1", "S-pm", at(12, 10))
	out(b, "T1", "S-pm", at(15, 20))
	in(b, "T1", "S-eve", at(18, 55))
	out(b, "T1", "S-eve", at(21, 20))
	in(b, "T1", "S-night", at(22, 50), flags(ledger.FlagLate))
	// T2 misses the morning, never signs out in the afternoon, attends the evening with an
	// unsynchronised clock, and is in the night session now.
	in(b, "T2", "S-pm", at(12, 10))
	in(b, "T2", "S-eve", at(18, 55), unsynced)
	out(b, "T2", "S-eve", at(21, 20), unsynced)
	in(b, "T2", "S-night", at(21, 50))
	// T4 is also in the welding class, overlapping the morning.
	in(b, "T4", "S-am", at(8, 25))
	in(b, "T4", "S-weld", at(10, 25))
	out(b, "T4", "S-am", at(11, 31))
	out(b, "T4", "S-weld", at(12, 1))

	hs := report.ClassHours(b.evs, fixture(), report.Options{Zone: cst, Now: at(24, 30)})
	get := func(trainee, prog string) report.Hours {
		for _, h := range hs {
			if h.Trainee == trainee && h.Programme == prog {
				return h
			}
		}
		t.Fatalf("no hours for %s in %s", trainee, prog)
		return report.Hours{}
	}
	type sum struct {
		Required, Held, Scheduled, Attended, Doubtful, Present int
		Missed, NoSignOut, InProgress                          []string
		Flags                                                  []ledger.Flag
	}
	cases := []struct {
		trainee, prog string
		want          sum
		ratio         float64
	}{
		{"T1", "P-elec", sum{16, 3, 11, 11, 4, 3, nil, nil, []string{"S-night"}, []ledger.Flag{ledger.FlagManualOverride}}, 11.0 / 16},
		{"T2", "P-elec", sum{16, 3, 11, 3, 3, 1, []string{"S-am"}, []string{"S-pm"}, []string{"S-night"}, []ledger.Flag{ledger.FlagClockUnsynced}}, 3.0 / 16},
		{"T3", "P-elec", sum{16, 4, 15, 0, 0, 0, []string{"S-am", "S-pm", "S-eve", "S-night"}, nil, nil, nil}, 0},
		{"T4", "P-weld", sum{8, 1, 2, 0, 0, 1, nil, nil, nil, nil}, 0},
	}
	for _, c := range cases {
		h := get(c.trainee, c.prog)
		got := sum{h.Required, h.Held, h.Scheduled, h.Attended, h.Doubtful, h.Present, h.Missed, h.NoSignOut, h.InProgress, h.Flags}
		if !reflect.DeepEqual(got, c.want) || h.Ratio != c.ratio {
			t.Errorf("%s %s: got %+v ratio %.3f,\n want %+v ratio %.3f", c.trainee, c.prog, got, h.Ratio, c.want, c.ratio)
		}
	}
	if h := get("T4", "P-weld"); h.Overlap != time.Hour {
		t.Errorf("T4 welding overlap: got %v, want 1h", h.Overlap)
	}
	for _, h := range hs {
		if h.Trainee == "T9" {
			t.Errorf("T9 has no class: got hours %+v", h)
		}
	}
}

func TestTodayAndMidnight(t *testing.T) {
	b := &evb{}
	in(b, "T1", "S-night", at(21, 45))
	in(b, "T2", "S-night", at(21, 50), unsynced)
	out(b, "T2", "S-night", at(24, 10), flags(ledger.FlagEarlyLeave))
	sc, _ := json.Marshal(map[string]any{"headcount": 1, "signed_in": 2, "seen": []string{"T1"}, "not_seen": []string{"T2"}})
	b.add(report.KindSpotCheck, "", "S-night", at(23, 0), func(e *ledger.Event) { e.Data = sc; e.Method = "" })

	// The 28th: only the night session, which crossed midnight.
	d := report.Today(b.evs, fixture(), report.Options{Zone: cst, Now: at(24, 20)})
	if d.Date != "2026-11-28" || len(d.Sessions) != 1 || d.Sessions[0].Session != "S-night" {
		t.Fatalf("today: got %s with %d sessions, want 2026-11-28 with S-night", d.Date, len(d.Sessions))
	}
	sh := d.Sessions[0]
	type counts struct{ Expected, SignedIn, SignedOut, InRoom, Missing, Flagged, Doubtful int }
	if got, w := (counts{sh.Expected, sh.SignedIn, sh.SignedOut, sh.InRoom, sh.Missing, sh.Flagged, sh.Doubtful}), (counts{4, 2, 1, 1, 2, 1, 1}); got != w {
		t.Errorf("counts: got %+v, want %+v", got, w)
	}
	if len(sh.SpotChecks) != 1 || sh.SpotChecks[0].Headcount != 1 || !slices.Equal(sh.SpotChecks[0].NotSeen, []string{"T2"}) {
		t.Errorf("spot checks: got %+v, want one with headcount 1, T2 not seen", sh.SpotChecks)
	}
	if got := [2]report.SpotTally{find(t, sh, "T1").Spot, find(t, sh, "T2").Spot}; got != [2]report.SpotTally{{Seen: 1}, {NotSeen: 1}} {
		t.Errorf("spot tallies of T1, T2: got %+v, want T1 seen once, T2 not seen once", got)
	}
	// The 27th has all four sessions of class C1 and the welding one.
	d = report.DayOf(b.evs, fixture(), at(12, 0), report.Options{Zone: cst, Now: at(24, 20)})
	var ids []string
	for _, s := range d.Sessions {
		ids = append(ids, s.Session)
	}
	if want := []string{"S-am", "S-weld", "S-pm", "S-eve", "S-night"}; !slices.Equal(ids, want) {
		t.Errorf("27th: got sessions %v, want %v", ids, want)
	}
	since, until := report.Span(report.DaySessions(fixture(), at(24, 20), cst))
	if !since.Equal(at(21, 30)) || !until.Equal(at(25, 30)) {
		t.Errorf("span of the 28th: got %v .. %v, want 21:30 .. 01:30", since, until)
	}
}

// Present reproduces the inspector page's "in the room now" line.
func TestPresent(t *testing.T) {
	b := &evb{}
	in(b, "T2", "S-pm", at(12, 5))
	in(b, "T1", "S-am", at(8, 20))
	in(b, "T3", "S-am", at(8, 21))
	b.add(ledger.Duplicate, "T3", "S-am", at(8, 22))
	out(b, "T1", "S-am", at(11, 35))
	b.add(ledger.Refusal, "T4", "S-am", at(8, 30))
	pending(b, "T4", 8, 32) // waiting for trusted time: not in the room by the ledger yet
	in(b, "T-gone", "S-am", at(8, 31))
	got := report.Present(b.evs, fixture())
	want := []report.Presence{
		{Session: "S-pm", In: []string{"T2 李四"}, SignedIn: 1},
		{Session: "S-am", In: []string{"T-gone", "T3 王五"}, SignedIn: 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := report.Present(b.evs, nil); len(got) != 2 || got[1].In[1] != "T3" {
		t.Errorf("without a roster: got %+v, want IDs only", got)
	}
}

func TestInDoubt(t *testing.T) {
	for f, want := range map[ledger.Flag]bool{ledger.FlagLate: false, ledger.FlagEarlyLeave: false,
		ledger.FlagManualOverride: true, ledger.FlagClockUnsynced: true, ledger.Flag("from_the_future"): true,
		ledger.FlagTimeAnchored: false, ledger.FlagTimePending: true} {
		if got := report.InDoubt(f); got != want {
			t.Errorf("InDoubt(%s): got %v, want %v", f, got, want)
		}
	}
}

// Before the first session every trainee is listed with nothing held; with a zero Now every
// session is past, so a sign-in without a sign-out is final.
func TestClassHoursBeforeAndAfter(t *testing.T) {
	b := &evb{}
	in(b, "T2", "S-night", at(21, 50))
	hs := report.ClassHours(b.evs, fixture(), report.Options{Zone: cst, Now: at(7, 0)})
	if len(hs) != 5 { // T1-T3 in P-elec, T4 in P-elec and P-weld
		t.Fatalf("before the first session: got %d rows, want 5", len(hs))
	}
	for _, h := range hs {
		if h.Held != 0 || h.Attended != 0 || len(h.Sessions) != 0 || h.Required == 0 {
			t.Errorf("%s %s before the first session: got %+v", h.Trainee, h.Programme, h)
		}
	}
	hs = report.ClassHours(b.evs, fixture(), report.Options{Zone: cst})
	if h := hs[1]; h.Trainee != "T2" || h.Held != 4 || len(h.NoSignOut) != 1 || len(h.Missed) != 3 || len(h.InProgress) != 0 {
		t.Errorf("T2 with a zero Now: got held %d, no sign-out %v, missed %v, in progress %v; want 4, [S-night], 3 missed, none",
			h.Held, h.NoSignOut, h.Missed, h.InProgress)
	}
}
