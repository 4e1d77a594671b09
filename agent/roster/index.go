package roster

import (
	"slices"
	"time"
)

// Index is a validated roster with the lookups the rules engine needs. It is read-only once built
// and safe to share between goroutines.
type Index struct {
	*Roster
	trainees     map[string]*Trainee
	byIDNumber   map[string]*Trainee
	byCard       map[string]*Trainee
	vouchers     map[string]*Voucher
	programmes   map[string]*Programme
	institutions map[string]*Institution
	classes      map[string][]*Session // by start time
}

// Build validates r and indexes it.
func Build(r *Roster, now time.Time) (*Index, error) {
	if err := r.Validate(now); err != nil {
		return nil, err
	}
	x := &Index{
		Roster:       r,
		trainees:     make(map[string]*Trainee, len(r.Trainees)),
		byIDNumber:   make(map[string]*Trainee, len(r.Trainees)),
		byCard:       map[string]*Trainee{},
		vouchers:     make(map[string]*Voucher, len(r.Vouchers)),
		programmes:   make(map[string]*Programme, len(r.Programmes)),
		institutions: make(map[string]*Institution, len(r.Institutions)),
		classes:      map[string][]*Session{},
	}
	for i := range r.Trainees {
		t := &r.Trainees[i]
		x.trainees[t.ID] = t
		x.byIDNumber[t.IDNumber] = t
		for _, c := range t.Cards {
			x.byCard[c] = t
		}
	}
	for i := range r.Vouchers {
		x.vouchers[r.Vouchers[i].Code] = &r.Vouchers[i]
	}
	for i := range r.Programmes {
		x.programmes[r.Programmes[i].ID] = &r.Programmes[i]
	}
	for i := range r.Institutions {
		x.institutions[r.Institutions[i].Code] = &r.Institutions[i]
	}
	for i := range r.Sessions {
		s := &r.Sessions[i]
		x.classes[s.Class] = append(x.classes[s.Class], s)
	}
	for _, ss := range x.classes {
		slices.SortFunc(ss, func(a, b *Session) int { return a.Start.Compare(b.Start) })
	}
	return x, nil
}

// Trainee returns the trainee with the roster ID, or nil.
func (x *Index) Trainee(id string) *Trainee { return x.trainees[id] }

// TraineeByIDNumber returns the holder of a resident ID number, or nil.
func (x *Index) TraineeByIDNumber(n string) *Trainee { return x.byIDNumber[n] }

// TraineeByCard returns the trainee who holds a card number, or nil.
func (x *Index) TraineeByCard(card string) *Trainee { return x.byCard[card] }

// Voucher returns the voucher with the code, or nil.
func (x *Index) Voucher(code string) *Voucher { return x.vouchers[code] }

// Programme returns the programme with the ID, or nil.
func (x *Index) Programme(id string) *Programme { return x.programmes[id] }

// Institution returns the institution with the code, or nil.
func (x *Index) Institution(code string) *Institution { return x.institutions[code] }

// Sessions returns the sessions of a class in start order.
func (x *Index) Sessions(class string) []*Session { return x.classes[class] }

// Len is the number of trainees.
func (x *Index) Len() int { return len(x.trainees) }

// ExpectedAt lists, sorted, the trainees enrolled in the classes whose sessions are served by
// source and run at at (from the sign-in window's opening to the sign-out window's close).
func (x *Index) ExpectedAt(source string, at time.Time) []string {
	var out []string
	for i := range x.Roster.Sessions {
		s := &x.Roster.Sessions[i]
		if !s.Serves(source) || at.Before(s.Opens()) || at.After(s.Closes()) {
			continue
		}
		for j := range x.Roster.Trainees {
			t := &x.Roster.Trainees[j]
			for _, e := range t.Enrolments {
				if e.Class == s.Class && !slices.Contains(out, t.ID) {
					out = append(out, t.ID)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
