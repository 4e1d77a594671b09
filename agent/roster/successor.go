package roster

import (
	"fmt"
	"slices"
	"time"
)

// CheckSuccessor refuses a roster that would empty the room, whoever signed it: one that leaves
// out this box's institution (institution, if not empty), or one that drops every trainee of a
// session of old still running at now. old may be nil (the first roster). The error says which.
func CheckSuccessor(old, next *Roster, institution string, now time.Time) error {
	if institution != "" && !slices.ContainsFunc(next.Institutions, func(in Institution) bool { return in.Code == institution }) {
		return fmt.Errorf("roster: version %d has no institution %s, this box's: applied, it would leave the box no sessions and no trainees", next.Version, institution)
	}
	if old == nil {
		return nil
	}
	for i := range old.Sessions {
		s := &old.Sessions[i]
		if now.Before(s.Opens()) || now.After(s.Closes()) {
			continue
		}
		if countIn(old, s.Class) == 0 {
			continue
		}
		kept := slices.ContainsFunc(next.Sessions, func(n Session) bool { return n.ID == s.ID && n.Class == s.Class })
		if !kept || countIn(next, s.Class) == 0 {
			return fmt.Errorf("roster: version %d drops every trainee of session %s (class %s), which is running now (%s-%s)",
				next.Version, s.ID, s.Class, s.Start.Format("2006-01-02 15:04"), s.End.Format("15:04"))
		}
	}
	return nil
}

func countIn(r *Roster, class string) int {
	n := 0
	for i := range r.Trainees {
		if slices.ContainsFunc(r.Trainees[i].Enrolments, func(e Enrolment) bool { return e.Class == class }) {
			n++
		}
	}
	return n
}

// Operator returns the account named name, or nil.
func (r *Roster) Operator(name string) *Operator {
	for i := range r.Operators {
		if r.Operators[i].Name == name {
			return &r.Operators[i]
		}
	}
	return nil
}
