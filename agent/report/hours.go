package report

import (
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// Hours is one trainee's class hours in one programme, as of Options.Now.
type Hours struct {
	Trainee    string
	Name       string
	IDMasked   string
	Programme  string
	Occupation string
	Category   string
	// Required is the programme's hours (Programme.Hours).
	Required int
	// Held is the number of the trainee's sessions of the programme whose sign-in window has
	// closed; Scheduled their class hours.
	Held      int
	Scheduled int
	// Attended is the class hours credited; Doubtful the part of it from sessions whose events
	// carry a doubt flag (to review before payment).
	Attended int
	Doubtful int
	// Ratio is Attended / Required (0 when the programme has no hours).
	Ratio float64
	// Present is the number of sessions attended (signed in and out).
	Present int
	// Missed, NoSignOut and InProgress name the sessions in those states.
	Missed     []string
	NoSignOut  []string
	InProgress []string
	// Flags are the doubt flags met in the programme's sessions, each once.
	Flags []ledger.Flag
	// Overlap is the time not credited because another session of the trainee had it.
	Overlap time.Duration
	// Sessions is the trainee's attendance in every session held so far, in start order.
	Sessions []Attendance
}

// ClassHours is the class-hour report: for each trainee of the roster (in roster order) and each
// programme of their classes (in enrolment order, including programmes not started yet), the
// class hours attended against the programme's hours. Sessions whose sign-in window has not closed by opt.Now are left out, except
// those in progress with a sign-in. evs must cover every session of the roster (Span of them all).
func ClassHours(evs []ledger.Event, r *roster.Roster, opt Options) []Hours {
	opt = opt.withDefaults()
	w := newWorld(r)
	x := build(evs, opt)
	var held []*roster.Session
	for _, s := range w.all {
		if !s.Opens().After(opt.Now) {
			held = append(held, s)
		}
	}
	rows := w.compute(x, held, opt)
	byKey := make(map[key]*Attendance, len(w.order)*4)
	for sid, ats := range rows {
		for _, at := range ats {
			byKey[key{at.Trainee, sid}] = at
		}
	}
	var out []Hours
	for _, t := range w.order {
		// The trainee's sessions, by programme in the order first met, each in start order.
		var progs []string
		sessions := map[string][]*roster.Session{}
		for j, en := range t.Enrolments {
			if slices.ContainsFunc(t.Enrolments[:j], func(o roster.Enrolment) bool { return o.Class == en.Class }) {
				continue
			}
			for _, s := range w.sessionsOf[en.Class] {
				if _, ok := sessions[s.Programme]; !ok {
					progs = append(progs, s.Programme)
					sessions[s.Programme] = nil
				}
				if !s.Opens().After(opt.Now) {
					sessions[s.Programme] = append(sessions[s.Programme], s)
				}
			}
		}
		for _, pid := range progs {
			h := Hours{Trainee: t.ID, Name: t.Name, IDMasked: roster.MaskID(t.IDNumber), Programme: pid}
			if p := w.programmes[pid]; p != nil {
				h.Occupation, h.Category, h.Required = p.Occupation, p.Category, p.Hours
			}
			ss := sessions[pid]
			slices.SortStableFunc(ss, func(a, b *roster.Session) int { return a.Start.Compare(b.Start) })
			for _, s := range ss {
				at := byKey[key{t.ID, s.ID}]
				if at == nil || at.Status == StatusUpcoming {
					continue
				}
				h.add(s, at, opt.ClassHour)
			}
			if h.Required > 0 {
				h.Ratio = float64(h.Attended) / float64(h.Required)
			}
			out = append(out, h)
		}
	}
	return out
}

func (h *Hours) add(s *roster.Session, at *Attendance, classHour time.Duration) {
	h.Sessions = append(h.Sessions, *at)
	if at.Status != StatusInProgress {
		h.Held++
		h.Scheduled += scheduled(s, classHour)
	}
	switch at.Status {
	case StatusPresent:
		h.Present++
	case StatusAbsent:
		h.Missed = append(h.Missed, s.ID)
	case StatusNoSignOut:
		h.NoSignOut = append(h.NoSignOut, s.ID)
	case StatusInProgress:
		h.InProgress = append(h.InProgress, s.ID)
	}
	h.Attended += at.ClassHours
	if at.Doubt {
		h.Doubtful += at.ClassHours
	}
	h.Overlap += at.Overlap
	for _, f := range at.Flags {
		if InDoubt(f) && !slices.Contains(h.Flags, f) {
			h.Flags = append(h.Flags, f)
		}
	}
}
