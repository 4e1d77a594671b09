package report

import (
	"fmt"
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// world is the roster indexed for reports.
type world struct {
	trainees   map[string]*roster.Trainee
	sessions   map[string]*roster.Session
	programmes map[string]*roster.Programme
	byClass    map[string][]*roster.Trainee // enrolled trainees of a class, in roster order
	sessionsOf map[string][]*roster.Session // sessions of a class, in start order
	all        []*roster.Session            // in start order
	order      []*roster.Trainee
}

func newWorld(r *roster.Roster) *world {
	w := &world{trainees: map[string]*roster.Trainee{}, sessions: map[string]*roster.Session{},
		programmes: map[string]*roster.Programme{}, byClass: map[string][]*roster.Trainee{}, sessionsOf: map[string][]*roster.Session{}}
	if r == nil {
		return w
	}
	for i := range r.Trainees {
		t := &r.Trainees[i]
		w.trainees[t.ID] = t
		w.order = append(w.order, t)
		for j, en := range t.Enrolments {
			if !slices.ContainsFunc(t.Enrolments[:j], func(o roster.Enrolment) bool { return o.Class == en.Class }) {
				w.byClass[en.Class] = append(w.byClass[en.Class], t)
			}
		}
	}
	for i := range r.Sessions {
		s := &r.Sessions[i]
		w.sessions[s.ID] = s
		w.all = append(w.all, s)
	}
	slices.SortStableFunc(w.all, func(a, b *roster.Session) int { return a.Start.Compare(b.Start) })
	for _, s := range w.all {
		w.sessionsOf[s.Class] = append(w.sessionsOf[s.Class], s)
	}
	for i := range r.Programmes {
		w.programmes[r.Programmes[i].ID] = &r.Programmes[i]
	}
	return w
}

// context is targets plus every session that overlaps one of them in time: the sessions whose
// credited time could overlap a target's.
func (w *world) context(targets []*roster.Session) []*roster.Session {
	out := slices.Clone(targets)
	for _, s := range w.all {
		if slices.Contains(out, s) {
			continue
		}
		for _, t := range targets {
			if s.Start.Before(t.End) && t.Start.Before(s.End) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// compute returns, for each of sessions, the attendance of every enrolled trainee (roster order)
// followed by those who signed in without being enrolled (in the order met), with time credited
// to two of a trainee's sessions at once taken out of the later one.
func (w *world) compute(x *index, sessions []*roster.Session, opt Options) map[string][]*Attendance {
	out := make(map[string][]*Attendance, len(sessions))
	byTrainee := map[string][]*Attendance{}
	for _, s := range sessions {
		rows := make([]*Attendance, 0, len(w.byClass[s.Class]))
		enrolled := make(map[string]bool, len(w.byClass[s.Class]))
		for _, t := range w.byClass[s.Class] {
			enrolled[t.ID] = true
			at := attendance(s, t, x.att[key{t.ID, s.ID}], opt)
			rows = append(rows, &at)
		}
		for _, id := range x.order[s.ID] {
			if enrolled[id] {
				continue
			}
			a := x.att[key{id, s.ID}]
			if a.in == nil { // duplicates or a stray sign-out only
				continue
			}
			at := attendance(s, nil, a, opt)
			if t := w.trainees[id]; t != nil {
				at.Name, at.IDMasked = t.Name, roster.MaskID(t.IDNumber)
			}
			rows = append(rows, &at)
		}
		for _, sc := range x.spot[s.ID] {
			for _, at := range rows {
				switch {
				case slices.Contains(sc.Seen, at.Trainee):
					at.Spot.Seen++
				case slices.Contains(sc.NotSeen, at.Trainee):
					at.Spot.NotSeen++
				case slices.Contains(sc.Unsure, at.Trainee):
					at.Spot.Unsure++
				}
			}
		}
		for _, at := range rows {
			if at.Credited > 0 {
				byTrainee[at.Trainee] = append(byTrainee[at.Trainee], at)
			}
		}
		out[s.ID] = rows
	}
	for _, ats := range byTrainee {
		credit(ats, w.sessions, opt.ClassHour)
	}
	return out
}

// Sheet is the sign-in sheet (签到表) of one session: every expected trainee, the absent ones
// included, and today's summary of the session.
type Sheet struct {
	Session     string
	Programme   string
	Occupation  string
	Institution string
	Class       string
	Start, End  time.Time // in the report's zone
	ClassHours  int       // scheduled whole class hours
	Rows        []Attendance

	Expected  int // enrolled trainees
	SignedIn  int // rows with a sign-in (the not enrolled included)
	SignedOut int
	InRoom    int // signed in, not signed out, session in progress
	Missing   int // enrolled trainees without a sign-in
	Flagged   int // rows with any flag
	Doubtful  int // rows whose hours are in doubt

	SpotChecks []SpotCheck
}

func (w *world) sheet(s *roster.Session, rows []*Attendance, x *index, opt Options) Sheet {
	sh := Sheet{Session: s.ID, Programme: s.Programme, Class: s.Class, Start: s.Start.In(opt.Zone), End: s.End.In(opt.Zone),
		ClassHours: scheduled(s, opt.ClassHour), Rows: make([]Attendance, len(rows)), SpotChecks: x.spot[s.ID]}
	if p := w.programmes[s.Programme]; p != nil {
		sh.Occupation, sh.Institution = p.Occupation, p.Institution
	}
	for i, at := range rows {
		sh.Rows[i] = *at
		if at.Status != StatusNotEnrolled {
			sh.Expected++
			if at.In == nil {
				sh.Missing++
			}
		}
		if at.In != nil {
			sh.SignedIn++
		}
		if at.Out != nil {
			sh.SignedOut++
		}
		if at.Status == StatusInProgress || (at.Status == StatusNotEnrolled && at.In != nil && at.Out == nil && !opt.Now.After(s.Closes())) {
			sh.InRoom++
		}
		if len(at.Flags) > 0 {
			sh.Flagged++
		}
		if at.Doubt {
			sh.Doubtful++
		}
	}
	return sh
}

// ErrUnknownSession is returned by SheetOf for a session the roster does not have.
var ErrUnknownSession = fmt.Errorf("report: no such session in the roster")

// SheetOf is the sign-in sheet of the session with the ID. evs must include the events of the
// session's whole span (Span) and of any session overlapping it.
func SheetOf(evs []ledger.Event, r *roster.Roster, session string, opt Options) (Sheet, error) {
	opt = opt.withDefaults()
	w := newWorld(r)
	s := w.sessions[session]
	if s == nil {
		return Sheet{}, fmt.Errorf("%w: %q", ErrUnknownSession, session)
	}
	x := build(evs, opt)
	rows := w.compute(x, w.context([]*roster.Session{s}), opt)
	return w.sheet(s, rows[s.ID], x, opt), nil
}

// Day is today's page: the sessions of one day in the zone.
type Day struct {
	Date     string // YYYY-MM-DD in the zone
	Sessions []Sheet
}

// DaySessions are the sessions whose sign-in to sign-out span meets the day of t in zone (nil
// zone: time.Local), in start order. A session that crosses midnight belongs to both days.
func DaySessions(r *roster.Roster, t time.Time, zone *time.Location) []*roster.Session {
	if zone == nil {
		zone = time.Local
	}
	y, m, d := t.In(zone).Date()
	from := time.Date(y, m, d, 0, 0, 0, 0, zone)
	to := from.AddDate(0, 0, 1)
	var out []*roster.Session
	for _, s := range newWorld(r).all {
		if s.Opens().Before(to) && s.Closes().After(from) {
			out = append(out, s)
		}
	}
	return out
}

// Span is the time range of the events a report over sessions needs: from the earliest sign-in
// window's opening to the latest sign-out window's close. Zero times for no sessions.
func Span(sessions []*roster.Session) (since, until time.Time) {
	for _, s := range sessions {
		if since.IsZero() || s.Opens().Before(since) {
			since = s.Opens()
		}
		if until.IsZero() || s.Closes().After(until) {
			until = s.Closes()
		}
	}
	return since, until
}

// Today is the inspector's day: each session of the day of opt.Now (DaySessions) with its sheet
// and summary. evs must cover Span(DaySessions(...)).
func Today(evs []ledger.Event, r *roster.Roster, opt Options) Day {
	opt = opt.withDefaults()
	return day(evs, r, opt.Now, opt)
}

// DayOf is Today for another day, the one containing t, as it stood at opt.Now.
func DayOf(evs []ledger.Event, r *roster.Roster, t time.Time, opt Options) Day {
	return day(evs, r, t, opt.withDefaults())
}

func day(evs []ledger.Event, r *roster.Roster, t time.Time, opt Options) Day {
	w := newWorld(r)
	targets := DaySessions(r, t, opt.Zone)
	d := Day{Date: t.In(opt.Zone).Format(time.DateOnly), Sessions: make([]Sheet, 0, len(targets))}
	if len(targets) == 0 {
		return d
	}
	x := build(evs, opt)
	rows := w.compute(x, w.context(targets), opt)
	for _, s := range targets {
		d.Sessions = append(d.Sessions, w.sheet(s, rows[s.ID], x, opt))
	}
	return d
}
