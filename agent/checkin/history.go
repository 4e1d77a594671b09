package checkin

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// History is what the rules need to remember between readings: who is signed in to which session,
// each trainee's and each reader's last event, vouchers bound here, and voucher scans waiting for
// their holder. The decision loop owns it: Decide only reads it, and the loop calls Add with each
// event once the store has recorded it. It is not safe for concurrent use.
type History struct {
	attend    map[attendKey]*attendance
	byTrainee map[string]mark // last accepted event of a trainee
	bySource  map[string]mark // last accepted event at a reader
	bound     map[string]string
	pending   map[string]Pending  // by station
	seen      map[string]sighting // last camera sighting of a trainee
	spots     map[string]int      // spot checks recorded per session
	spotMiss  map[attendKey]int   // spot checks of a session that did not see a signed-in trainee
	time      timeline
}

// sighting is a trainee seen by a camera: no ledger event, but the spot-check rules need it.
type sighting struct {
	at     time.Time
	source string
}

type attendKey struct{ trainee, session string }

type attendance struct {
	in, out  time.Time
	inID     string
	inMethod string
}

type mark struct {
	at      time.Time
	source  string
	trainee string
	id      string
}

// Pending is a voucher scanned at a registration station, waiting for its holder's biometric
// reading.
type Pending struct {
	Station string
	Code    string
	Source  string
	At      time.Time
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{
		attend:    map[attendKey]*attendance{},
		byTrainee: map[string]mark{},
		bySource:  map[string]mark{},
		bound:     map[string]string{},
		pending:   map[string]Pending{},
		seen:      map[string]sighting{},
		spots:     map[string]int{},
		spotMiss:  map[attendKey]int{},
		time:      newTimeline(),
	}
}

// Add updates the history with an event the store has recorded. Events must come in seq order.
func (h *History) Add(e *ledger.Event) {
	h.time.add(e)
	at := e.Time.Wall
	m := mark{at: at, source: e.Source, trainee: e.Trainee, id: e.ID}
	switch e.Kind {
	case ledger.SignIn:
		h.attend[attendKey{e.Trainee, e.Session}] = &attendance{in: at, inID: e.ID, inMethod: e.Method}
	case ledger.SignOut:
		if a := h.attend[attendKey{e.Trainee, e.Session}]; a != nil {
			a.out = at
		}
	case ledger.VoucherCheckin:
		h.bound[e.Voucher] = e.Institution
		for st, p := range h.pending {
			if p.Code == e.Voucher {
				delete(h.pending, st)
			}
		}
	case ledger.SpotCheck:
		h.addSpotCheck(e)
	case ledger.Refusal:
		if e.Reason == ledger.ReasonNotHolder || e.Reason == ledger.ReasonVoucherTimeout {
			for st, p := range h.pending {
				if p.Code == e.Voucher {
					delete(h.pending, st)
				}
			}
		}
	}
	// Only counted events start a suppression window: a duplicate does not extend it, and a
	// duplicate's Ref names the counted event it repeats.
	if e.Kind.Counted() {
		h.byTrainee[e.Trainee] = m
		if e.Source != "" {
			h.bySource[e.Source] = m
		}
	}
}

// See remembers that a camera (source) saw trainee at at. Sightings are not ledger events: they
// inform the rules (not_seen_by_camera, spot checks) and are forgotten by Prune.
func (h *History) See(trainee, source string, at time.Time) {
	if s, ok := h.seen[trainee]; !ok || at.After(s.at) {
		h.seen[trainee] = sighting{at: at, source: source}
	}
}

// SeenSince reports whether a camera saw trainee at or after since, and where.
func (h *History) SeenSince(trainee string, since time.Time) (source string, ok bool) {
	s, ok := h.seen[trainee]
	if !ok || s.at.Before(since) {
		return "", false
	}
	return s.source, true
}

// SpotCheckData is the Data of a spot_check event (JSON): the faces counted against the trainees
// signed in to the session at the time, each of them seen, not seen or unsure. agent/report reads
// the same fields.
type SpotCheckData struct {
	Headcount int `json:"headcount"` // faces found in the room
	SignedIn  int `json:"signed_in"` // trainees signed in and not signed out
	// Identified is how many faces were identified as a trainee expected in the room.
	Identified int      `json:"identified"`
	Seen       []string `json:"seen"`     // signed in, and identified in the frame
	NotSeen    []string `json:"not_seen"` // signed in, not identified, and every face was someone else
	Unsure     []string `json:"unsure"`   // signed in, not identified, but a face was not identified either
	// Unexpected lists trainees identified in the room who are not signed in to the session.
	Unexpected []string `json:"unexpected,omitempty"`
	// Tolerance is the headcount tolerance the check was judged with.
	Tolerance int `json:"tolerance"`
}

// SpotCheck judges one spot check: faces are the subjects a camera's burst found (an empty
// subject for a face it could not identify), judged against the trainees signed in to session.
// A trainee is seen when identified; when not, unsure while some face stayed unidentified (it may
// be theirs: docs/face.md says why the camera refuses rather than guesses), else not seen.
// short is set when the headcount falls under the sign-ins by more than tolerance.
func (h *History) SpotCheck(session string, faces []string, tolerance int) (d SpotCheckData, short bool) {
	signed := h.SignedIn(session)
	d = SpotCheckData{Headcount: len(faces), SignedIn: len(signed), Tolerance: tolerance,
		Seen: []string{}, NotSeen: []string{}, Unsure: []string{}}
	ids := map[string]bool{}
	unknown := 0
	for _, f := range faces {
		if f == "" {
			unknown++
		} else {
			ids[f] = true
		}
	}
	d.Identified = len(ids)
	for _, t := range signed {
		switch {
		case ids[t]:
			d.Seen = append(d.Seen, t)
			delete(ids, t)
		case unknown > 0:
			d.Unsure = append(d.Unsure, t)
		default:
			d.NotSeen = append(d.NotSeen, t)
		}
	}
	for t := range ids {
		d.Unexpected = append(d.Unexpected, t)
	}
	slices.Sort(d.Unexpected)
	return d, d.Headcount+tolerance < d.SignedIn
}

// SignedIn lists, sorted, the trainees signed in to session and not signed out.
func (h *History) SignedIn(session string) []string {
	var out []string
	for k, a := range h.attend {
		if k.session == session && a.out.IsZero() {
			out = append(out, k.trainee)
		}
	}
	slices.Sort(out)
	return out
}

// addSpotCheck remembers a recorded spot check: the trainees it saw are sightings, the ones it
// did not see count against them at sign-out (absent_at_spot_check). Unsure counts neither way.
func (h *History) addSpotCheck(e *ledger.Event) {
	var d SpotCheckData
	if json.Unmarshal(e.Data, &d) != nil {
		return
	}
	h.spots[e.Session]++
	for _, t := range d.Seen {
		h.See(t, e.Source, e.Time.Wall)
	}
	for _, t := range d.NotSeen {
		h.spotMiss[attendKey{t, e.Session}]++
	}
}

// SpotChecks reports how many spot checks were recorded in session and how many of them did not
// see trainee.
func (h *History) SpotChecks(trainee, session string) (checks, missed int) {
	return h.spots[session], h.spotMiss[attendKey{trainee, session}]
}

// Expect records a voucher scan waiting for its holder at a station (a Decision's Pending). A new
// scan at the same station replaces the old one.
func (h *History) Expect(p Pending) { h.pending[p.Station] = p }

// Expired removes and returns the pending voucher scans older than window at now; the loop
// records each as a refusal (ReasonVoucherTimeout).
func (h *History) Expired(now time.Time, window time.Duration) []Pending {
	var out []Pending
	for st, p := range h.pending {
		if now.Sub(p.At) > window {
			out = append(out, p)
			delete(h.pending, st)
		}
	}
	slices.SortFunc(out, func(a, b Pending) int { return a.At.Compare(b.At) })
	return out
}

// Bound reports the institution a voucher was checked in at on this box, if any.
func (h *History) Bound(code string) (string, bool) {
	inst, ok := h.bound[code]
	return inst, ok
}

// Prune forgets attendance and marks older than before, keeping memory flat over months of
// uptime; voucher bindings are kept.
func (h *History) Prune(before time.Time) {
	for k, a := range h.attend {
		if a.in.Before(before) && (a.out.IsZero() || a.out.Before(before)) {
			delete(h.attend, k)
		}
	}
	for k, m := range h.byTrainee {
		if m.at.Before(before) {
			delete(h.byTrainee, k)
		}
	}
	for k, m := range h.bySource {
		if m.at.Before(before) {
			delete(h.bySource, k)
		}
	}
	for k, s := range h.seen {
		if s.at.Before(before) {
			delete(h.seen, k)
		}
	}
	for k := range h.spotMiss {
		if _, ok := h.attend[k]; !ok {
			delete(h.spotMiss, k)
		}
	}
	for sess := range h.spots {
		live := false
		for k := range h.attend {
			live = live || k.session == sess
		}
		if !live {
			delete(h.spots, sess)
		}
	}
}

// Restore adds voucher bindings recorded before the events the history was rebuilt from.
func (h *History) Restore(bindings map[string]string) {
	for code, inst := range bindings {
		h.bound[code] = inst
	}
}
