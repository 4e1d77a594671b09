// Package report turns the ledger's events and the roster into what an inspector and an
// institution read: who is in the room now (Present), today's sessions with their expected,
// signed-in, missing and flagged trainees and spot checks (Today), the sign-in sheet of one
// session (签到表, SheetOf), and the class hours (学时) each trainee attended against their
// programme's hours (ClassHours). Subsidies are paid per class hour, so that last number is money:
// docs/reports.md explains how it is computed.
//
// Every function here is pure: it reads the events and the roster passed in and the time in
// Options, never the clock, the store or the network, so the inspector's page, the CLI and the
// tests compute the same figures from the same inputs. Events must be in ledger (seq) order.
//
// # Class hours
//
// A class hour (学时) is 45 minutes (Options.ClassHour; the roster carries no length of its own).
// For each session of a trainee's classes, the time credited runs from the session's start (or the
// sign-in, if it was late: after the start plus the session's LateAfter grace) to the session's
// end (or the sign-out, if it was before the end: an early leave). A session with a sign-in but no
// sign-out once its sign-out window has closed is credited nothing (未签退): attendance to the end
// was never shown. Time already credited to another session of the same trainee is not credited
// twice. The class hours of a session are the whole class hours in the credited time, at most the
// session's scheduled class hours. Hours from a session whose counted events carry a doubt flag
// (anything but late, early_leave and time_anchored: a manual override, an unsynchronised clock, a
// trainee not seen by the camera or absent at a spot check, ...) are counted and also reported as
// doubtful, for review before payment.
//
// A reading recorded while the box's time was not trusted (kind reading, flag time_pending) is
// not attendance: it names no session. The sign-in or sign-out that decides it once the time is
// trusted (its ref names the reading, its time comes from the boot's time_anchor) counts like any
// other.
package report

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// DefaultClassHour is the length of a class hour (学时) unless Options say otherwise.
const DefaultClassHour = 45 * time.Minute

// endOfTime stands for a zero Options.Now: after every session.
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// KindSpotCheck is the kind of a spot-check event: the room camera's headcount during a session,
// with each signed-in trainee seen, not seen or unsure. The ledger does not define it yet; reports
// read it as DecodeSpotCheck describes.
const KindSpotCheck ledger.Kind = "spot_check"

// Options are what a report needs besides the events and the roster.
type Options struct {
	// Zone is the configured time zone: every time in a report is in it, and "today" is its day.
	// Nil means time.Local.
	Zone *time.Location
	// ClassHour is the length of a class hour; zero means DefaultClassHour.
	ClassHour time.Duration
	// Now is when the report is made: a session whose sign-out window is still open is in
	// progress, one whose sign-in window has not closed is not yet missed. Zero means after
	// every session (a report of the past); Today needs it set.
	Now time.Time
	// SpotCheck decodes a spot-check event; nil means DecodeSpotCheck.
	SpotCheck func(*ledger.Event) (SpotCheck, bool)
}

func (o Options) withDefaults() Options {
	if o.Zone == nil {
		o.Zone = time.Local
	}
	if o.ClassHour <= 0 {
		o.ClassHour = DefaultClassHour
	}
	if o.SpotCheck == nil {
		o.SpotCheck = DecodeSpotCheck
	}
	if o.Now.IsZero() {
		o.Now = endOfTime
	}
	return o
}

// Status is where a trainee stands in one session.
type Status string

// Statuses of a trainee in a session (label.Status gives their Chinese and English names).
const (
	StatusPresent     Status = "present"      // signed in and signed out: hours credited
	StatusInProgress  Status = "in_progress"  // signed in, the sign-out window still open
	StatusNoSignOut   Status = "no_sign_out"  // signed in, the sign-out window closed without a sign-out: no hours
	StatusAbsent      Status = "absent"       // no sign-in, and the sign-in window has closed
	StatusUpcoming    Status = "upcoming"     // no sign-in yet, and the sign-in window has not closed
	StatusNotEnrolled Status = "not_enrolled" // signed in, but not in the session's class in this roster
)

// Statuses lists every status, in the order a report shows them.
func Statuses() []Status {
	return []Status{StatusPresent, StatusInProgress, StatusNoSignOut, StatusAbsent, StatusUpcoming, StatusNotEnrolled}
}

// InDoubt reports whether a flag puts the hours of its session in doubt. Late and early_leave are
// not doubts: the hours already leave out the time missed. Nor is time_anchored: the time of a
// reading decided once the box's time was trusted comes from its boot's monotonic clock and the
// time_anchor, both in the signed chain. Every other flag is, including flags a newer version adds.
func InDoubt(f ledger.Flag) bool {
	return f != ledger.FlagLate && f != ledger.FlagEarlyLeave && f != ledger.FlagTimeAnchored
}

// Mark is one counted event of a trainee in a session: the sign-in or the sign-out.
type Mark struct {
	Seq      uint64
	ID       string
	At       time.Time // in the report's zone
	Synced   bool      // the box's clock was synchronised
	Method   string
	Source   string
	Score    float64
	Operator string
	Note     string
	Flags    []ledger.Flag
	Evidence []ledger.Photo
}

func markOf(e *ledger.Event, zone *time.Location) *Mark {
	return &Mark{Seq: e.Seq, ID: e.ID, At: e.Time.Wall.In(zone), Synced: e.Time.Synced, Method: e.Method,
		Source: e.Source, Score: e.Score, Operator: e.Operator, Note: e.Note, Flags: e.Flags, Evidence: e.Evidence}
}

// Attendance is one trainee in one session.
type Attendance struct {
	Session  string
	Trainee  string
	Name     string
	IDMasked string
	Status   Status
	In, Out  *Mark // the first sign-in and the first sign-out after it; nil if none
	// Credited is the time counted toward class hours; Overlap the time left out because it was
	// already credited to another session of the trainee.
	Credited   time.Duration
	Overlap    time.Duration
	ClassHours int
	// Flags are the doubt flags of the sign-in and the sign-out, each once, in the order met.
	Flags []ledger.Flag
	// Doubt is set when a flag puts the hours in doubt (InDoubt).
	Doubt bool
	// Duplicates counts duplicate events (recorded, never counted); Extra counts counted events
	// beyond the first sign-in and sign-out, which are ignored.
	Duplicates int
	Extra      int
	// Spot counts the session's spot checks that saw the trainee, did not, or were unsure.
	Spot SpotTally

	from, to time.Time // the credited interval before overlaps are taken out
}

// SpotTally counts a trainee's outcomes in a session's spot checks.
type SpotTally struct{ Seen, NotSeen, Unsure int }

// SpotCheck is the result of one random spot check by the room camera (三(三)).
type SpotCheck struct {
	Seq       uint64
	ID        string
	Session   string
	At        time.Time
	Source    string
	Headcount int      // faces counted in the room
	SignedIn  int      // trainees signed in at the time
	Seen      []string // trainee IDs
	NotSeen   []string
	Unsure    []string
	Flags     []ledger.Flag
	Evidence  []ledger.Photo
}

// spotCheckData is the Data of a spot-check event as DecodeSpotCheck reads it.
type spotCheckData struct {
	Headcount int      `json:"headcount"`
	SignedIn  int      `json:"signed_in"`
	Seen      []string `json:"seen"`
	NotSeen   []string `json:"not_seen"`
	Unsure    []string `json:"unsure"`
}

// DecodeSpotCheck reads an event of KindSpotCheck: session, time, source, flags and evidence from
// the event, the counts from its Data, a JSON object {"headcount", "signed_in", "seen",
// "not_seen", "unsure"} (the last three lists of trainee IDs). Data that does not decode leaves
// the counts zero; the check is still shown.
func DecodeSpotCheck(e *ledger.Event) (SpotCheck, bool) {
	if e.Kind != KindSpotCheck {
		return SpotCheck{}, false
	}
	sc := SpotCheck{Seq: e.Seq, ID: e.ID, Session: e.Session, At: e.Time.Wall, Source: e.Source, Flags: e.Flags, Evidence: e.Evidence}
	var d spotCheckData
	if len(e.Data) > 0 && json.Unmarshal(e.Data, &d) == nil {
		sc.Headcount, sc.SignedIn, sc.Seen, sc.NotSeen, sc.Unsure = d.Headcount, d.SignedIn, d.Seen, d.NotSeen, d.Unsure
	}
	return sc, true
}

// Presence is who is in the room for a session by the events given: signed in, not signed out.
type Presence struct {
	Session  string
	In       []string // "T001 张三", sorted
	SignedIn int      // trainees signed in at all in the events
}

// Present is the "in the room now" line of the inspector's page: for each session named by a
// sign-in or sign-out among evs (in the order first met), the trainees with a sign-in and no
// sign-out. r may be nil (no names then).
func Present(evs []ledger.Event, r *roster.Roster) []Presence {
	names := map[string]string{}
	if r != nil {
		for _, t := range r.Trainees {
			names[t.ID] = t.Name
		}
	}
	type state struct{ in, out bool }
	bySession := map[string]map[string]*state{}
	var order []string
	for i := range evs {
		e := &evs[i]
		if e.Session == "" || (e.Kind != ledger.SignIn && e.Kind != ledger.SignOut) {
			continue
		}
		m := bySession[e.Session]
		if m == nil {
			m = map[string]*state{}
			bySession[e.Session] = m
			order = append(order, e.Session)
		}
		st := m[e.Trainee]
		if st == nil {
			st = &state{}
			m[e.Trainee] = st
		}
		if e.Kind == ledger.SignIn {
			st.in = true
		} else {
			st.out = true
		}
	}
	out := make([]Presence, 0, len(order))
	for _, s := range order {
		p := Presence{Session: s}
		for t, st := range bySession[s] {
			if st.in {
				p.SignedIn++
			}
			if st.in && !st.out {
				p.In = append(p.In, strings.TrimSpace(t+" "+names[t]))
			}
		}
		slices.Sort(p.In)
		out = append(out, p)
	}
	return out
}

// key is a trainee in a session.
type key struct{ trainee, session string }

// acc gathers the events of one trainee in one session.
type acc struct {
	in, out         *ledger.Event
	duplicates      int
	extra           int
	trainee, masked string
}

// index is one pass over the events.
type index struct {
	att   map[key]*acc
	spot  map[string][]SpotCheck // by session
	order map[string][]string    // trainees met per session, in order
}

func build(evs []ledger.Event, opt Options) *index {
	x := &index{att: map[key]*acc{}, spot: map[string][]SpotCheck{}, order: map[string][]string{}}
	get := func(e *ledger.Event) *acc {
		k := key{e.Trainee, e.Session}
		a := x.att[k]
		if a == nil {
			a = &acc{trainee: e.Trainee, masked: e.IDMasked}
			x.att[k] = a
			x.order[e.Session] = append(x.order[e.Session], e.Trainee)
		}
		return a
	}
	for i := range evs {
		e := &evs[i]
		if e.Kind == KindSpotCheck {
			if sc, ok := opt.SpotCheck(e); ok {
				sc.At = sc.At.In(opt.Zone)
				x.spot[sc.Session] = append(x.spot[sc.Session], sc)
			}
			continue
		}
		if e.Session == "" || e.Trainee == "" {
			continue
		}
		switch e.Kind {
		case ledger.SignIn:
			a := get(e)
			if a.in == nil {
				a.in = e
			} else {
				a.extra++
			}
		case ledger.SignOut:
			a := get(e)
			if a.in != nil && a.out == nil && !e.Time.Wall.Before(a.in.Time.Wall) {
				a.out = e
			} else {
				a.extra++
			}
		case ledger.Duplicate:
			get(e).duplicates++
		}
	}
	return x
}

// scheduled is the number of whole class hours in a session.
func scheduled(s *roster.Session, classHour time.Duration) int {
	d := s.End.Sub(s.Start)
	if d <= 0 {
		return 0
	}
	return int(d / classHour)
}

// attendance computes one trainee in one session, before overlaps with other sessions are taken
// out. a may be nil (no events).
func attendance(s *roster.Session, t *roster.Trainee, a *acc, opt Options) Attendance {
	at := Attendance{Session: s.ID}
	if t != nil {
		at.Trainee, at.Name, at.IDMasked = t.ID, t.Name, roster.MaskID(t.IDNumber)
	}
	if a == nil {
		if opt.Now.After(s.SignInUntil()) {
			at.Status = StatusAbsent
		} else {
			at.Status = StatusUpcoming
		}
		return at
	}
	if t == nil {
		at.Trainee, at.IDMasked = a.trainee, a.masked
	}
	at.Duplicates, at.Extra = a.duplicates, a.extra
	if a.in == nil {
		at.Status = StatusAbsent
		if !opt.Now.After(s.SignInUntil()) {
			at.Status = StatusUpcoming
		}
		return at
	}
	at.In = markOf(a.in, opt.Zone)
	addFlags(&at, a.in.Flags)
	switch {
	case a.out != nil:
		at.Out = markOf(a.out, opt.Zone)
		addFlags(&at, a.out.Flags)
		at.Status = StatusPresent
		from, to := s.Start, s.End
		if a.in.Time.Wall.After(s.LateFrom()) {
			from = a.in.Time.Wall
		}
		if a.out.Time.Wall.Before(s.End) {
			to = a.out.Time.Wall
		}
		if to.After(from) {
			at.Credited = to.Sub(from)
			at.from, at.to = from, to
		}
	case opt.Now.After(s.Closes()):
		at.Status = StatusNoSignOut
	default:
		at.Status = StatusInProgress
	}
	if t == nil {
		at.Status = StatusNotEnrolled
		at.Credited = 0
	}
	return at
}

func addFlags(at *Attendance, fs []ledger.Flag) {
	for _, f := range fs {
		if !slices.Contains(at.Flags, f) {
			at.Flags = append(at.Flags, f)
		}
		if InDoubt(f) {
			at.Doubt = true
		}
	}
}

// credit turns the credited time of one trainee's sessions into class hours, leaving out time
// already credited to an earlier session of the trainee (sessions that overlap in time are never
// paid twice).
func credit(ats []*Attendance, sessions map[string]*roster.Session, classHour time.Duration) {
	slices.SortFunc(ats, func(a, b *Attendance) int { return a.from.Compare(b.from) })
	var reached time.Time
	for _, at := range ats {
		if at.Credited <= 0 {
			continue
		}
		from := at.from
		if from.Before(reached) {
			from = reached
		}
		credited := time.Duration(0)
		if at.to.After(from) {
			credited = at.to.Sub(from)
		}
		at.Overlap = at.Credited - credited
		at.Credited = credited
		at.ClassHours = min(int(credited/classHour), scheduled(sessions[at.Session], classHour))
		if at.to.After(reached) {
			reached = at.to
		}
	}
}
