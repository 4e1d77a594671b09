// Package checkin is the rules engine: it turns a device reading into a ledger event, an accepted
// sign-in or sign-out or voucher check-in, or a refusal with the first reason that failed, plus
// the doubt flags (疑点) an accepted event carries for review.
//
// Decide is a pure function of the reading, the roster, the History of recent events and the
// clock passed in; it never reads the system clock and never writes. The agent's decision loop is
// the only caller and the only writer of the History.
//
// The order of checks, and so which reason a refusal names, is: identity (subject resolved, score
// over the threshold, margin to the runner-up, an override's operator and reason), a session of the
// trainee open now at this device, the enrolment's voucher (in the roster, not revoked or used,
// valid now, held by this trainee, accepted at this institution), then the sign-in state (window,
// duplicate within the suppression window). Voucher check-in at registration is a voucher scan
// followed by its holder's biometric reading at the same station.
package checkin

import (
	"fmt"
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// Rules are the thresholds and windows of the engine; the zero value of a field means its default.
type Rules struct {
	// Institution is the code of the institution this box serves (voucher check-in binds here).
	Institution string
	// MinScore is the identity threshold per method, in the device's unit (a fingerprint module's
	// score, 1 - distance for faces). A method not listed has no threshold.
	MinScore map[drivers.Method]float64
	// MinMargin refuses a reading as ambiguous when its margin to the runner-up is under it;
	// DoubtMargin flags an accepted one as low_margin. Readings without a margin skip both.
	MinMargin   map[drivers.Method]float64
	DoubtMargin map[drivers.Method]float64
	// Suppress is the window in which a repeat reading is recorded as a duplicate; default 2m.
	Suppress time.Duration
	// TwoDevices flags a trainee seen at another reader within it; default 10m.
	TwoDevices time.Duration
	// Rapid flags an accepted event that follows another trainee's at the same reader within it;
	// default 2s.
	Rapid time.Duration
	// VoucherWindow is how long a scanned voucher waits for its holder; default 2m.
	VoucherWindow time.Duration
	// AbsentShare flags a sign-out absent_at_spot_check when the session's spot checks did not see
	// the trainee in at least this share of them (0 < share <= 1); default 0.5. Checks that were
	// unsure about the trainee count as checks, not as misses.
	AbsentShare float64
	// Stations groups readers: a voucher scanned at one reader of a station is completed by a
	// biometric reading at another reader of the same station. Maps source name to station name; a
	// source not listed is a station of its own.
	Stations map[string]string
}

// Defaults for zero fields of Rules.
const (
	DefaultSuppress      = 2 * time.Minute
	DefaultTwoDevices    = 10 * time.Minute
	DefaultRapid         = 2 * time.Second
	DefaultVoucherWindow = 2 * time.Minute
	DefaultAbsentShare   = 0.5
)

// WithDefaults returns r with zero fields set to their defaults.
func (r Rules) WithDefaults() Rules {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&r.Suppress, DefaultSuppress)
	def(&r.TwoDevices, DefaultTwoDevices)
	def(&r.Rapid, DefaultRapid)
	def(&r.VoucherWindow, DefaultVoucherWindow)
	if r.AbsentShare == 0 {
		r.AbsentShare = DefaultAbsentShare
	}
	return r
}

func (r *Rules) station(source string) string {
	if s, ok := r.Stations[source]; ok {
		return s
	}
	return source
}

// Clock is the time a decision is made at, and what the agent knows of its clock.
// History.Assess turns a read of the box's clock into one.
type Clock struct {
	ledger.Clock
	// Jumped is set while a backwards jump of the wall clock is recent.
	Jumped bool
	// Untrusted is set while the box's time cannot be trusted (History.Assess): a reading that
	// passes the identity checks is then recorded as a pending reading (ledger.Reading), decided
	// once the time is trusted.
	Untrusted bool
	// Anchored is set when Wall was computed from the boot's time_anchor and the monotonic clock;
	// the event carries time_anchored.
	Anchored bool
}

// Decision is the outcome of a reading.
type Decision struct {
	// Event is what to record, unless Pending is set. Device, Epoch, Seq, ID and Prev are left to
	// the store.
	Event ledger.Event
	// Pending is a valid voucher scan now waiting for its holder; nothing is recorded until the
	// holder's reading completes it or it expires (History.Expect, History.Expired).
	Pending *Pending
}

// HasEvent reports whether the decision produces a ledger event (it does unless a voucher scan
// now waits for its holder).
func (d *Decision) HasEvent() bool { return d.Pending == nil }

// Outcome is what became of a reading once its decision is durable: the event recorded (or, for
// a voucher scan, Pending), as the API's caller and the person at the device are told.
type Outcome struct {
	Event   ledger.Event `json:"event"`
	Pending bool         `json:"pending,omitempty"` // a voucher scan waiting for its holder
	Note    string       `json:"note,omitempty"`
	Err     error        `json:"-"`
}

// Decide turns a reading into a decision. x may be nil when no roster has been loaded yet.
func (r *Rules) Decide(rd drivers.Reading, x *roster.Index, h *History, clk Clock) Decision {
	rules := r.WithDefaults() // a zero window means its default, whoever built r
	r = &rules
	now := clk.Wall
	e := ledger.Event{
		Kind:     ledger.Refusal,
		Time:     clk.Clock,
		Source:   rd.Source,
		Method:   string(rd.Method),
		Score:    rd.Score,
		Margin:   rd.Margin,
		Detail:   rd.Detail,
		Operator: rd.Operator,
	}
	if rd.Method == drivers.Manual {
		e.Note = rd.Reason
	}
	refuse := func(reason ledger.Reason, note string) Decision {
		e.Kind, e.Reason = ledger.Refusal, reason
		if note != "" {
			e.Note = note
		}
		return Decision{Event: e}
	}
	if x == nil {
		return refuse(ledger.ReasonUnknownTrainee, "no roster loaded")
	}

	if rd.Method == drivers.Voucher {
		if clk.Untrusted {
			// Registration happens at a desk with staff, who can scan again once the time is
			// trusted; a voucher's dates checked against a clock in 1970 would say "not yet valid".
			e.Voucher = rd.Subject
			return refuse(ledger.ReasonClockUntrusted, "the voucher's dates cannot be checked until the box's time is trusted")
		}
		return r.scanVoucher(rd, x, h, e, now)
	}

	// Identity.
	if rd.Subject == "" {
		return refuse(ledger.ReasonUnidentified, "")
	}
	t := x.Trainee(rd.Subject)
	if t == nil && rd.Method == drivers.Card {
		t = x.TraineeByCard(rd.Subject)
	}
	if t == nil {
		return refuse(ledger.ReasonUnknownTrainee, fmt.Sprintf("subject %q is not in roster version %d", rd.Subject, x.Version))
	}
	e.Trainee, e.IDMasked = t.ID, roster.MaskID(t.IDNumber)
	if min, ok := r.MinScore[rd.Method]; ok && rd.Score < min {
		return refuse(ledger.ReasonLowScore, fmt.Sprintf("score %.3g under %.3g", rd.Score, min))
	}
	if rd.Margin > 0 {
		if min, ok := r.MinMargin[rd.Method]; ok && rd.Margin < min {
			return refuse(ledger.ReasonAmbiguous, fmt.Sprintf("margin %.3g under %.3g", rd.Margin, min))
		}
	}
	if rd.Method == drivers.Manual {
		if rd.Operator == "" || rd.Reason == "" {
			return refuse(ledger.ReasonOverrideIncomplete, "a manual sign-in needs an operator and a reason")
		}
	}

	// The box's time is not trusted: everything after this point depends on it. The identified
	// reading is recorded as it is, with its boot and monotonic offset, and decided later.
	if clk.Untrusted {
		e.Kind, e.Intent = ledger.Reading, string(rd.Intent)
		e.Flags = append(e.Flags, ledger.FlagTimePending)
		if !clk.Synced {
			e.Flags = append(e.Flags, ledger.FlagClockUnsynced)
		}
		if clk.Jumped {
			e.Flags = append(e.Flags, ledger.FlagClockJump)
		}
		if rd.Method == drivers.Manual {
			e.Flags = append(e.Flags, ledger.FlagManualOverride)
		}
		return Decision{Event: e}
	}

	// Voucher check-in at a registration station: this reading completes a scan. Only a biometric
	// reading identifies the holder; a card can be lent and an operator is not the holder. A
	// reading decided late (its time from an anchor) never completes a scan made after it.
	if rd.Method == drivers.Fingerprint || rd.Method == drivers.Face {
		if p, ok := h.pending[r.station(rd.Source)]; ok && within(now, p.At, r.VoucherWindow+1) {
			d := r.completeVoucher(p, t, x, e)
			r.flag(&d.Event, rd, h, clk, t.ID)
			return d
		}
	}

	// A session of the trainee open now at this reader.
	s, enr := openSession(x, h, t, rd.Source, now)
	if s == nil {
		return refuse(ledger.ReasonNoSession, nextSessionNote(x, t, now))
	}
	e.Session = s.ID
	prog := x.Programme(s.Programme)
	e.Institution = prog.Institution
	if in := x.Institution(prog.Institution); in != nil && in.Retired {
		return refuse(ledger.ReasonInstitutionRetired, "")
	}

	// The voucher paying for the place.
	if enr.Voucher != "" {
		e.Voucher = enr.Voucher
		v := x.Voucher(enr.Voucher)
		if v == nil {
			return refuse(ledger.ReasonNoVoucher, "")
		}
		if reason, note := r.voucherUsable(v, x, h, now, prog, t); reason != "" {
			return refuse(reason, note)
		}
	}

	// Sign-in state.
	a := h.attend[attendKey{t.ID, s.ID}]
	last, seen := h.byTrainee[t.ID]
	duplicate := func(note string) Decision {
		e.Kind, e.Note = ledger.Duplicate, note
		if seen {
			e.Ref = last.id
		}
		r.flag(&e, rd, h, clk, t.ID)
		return Decision{Event: e}
	}
	if seen && now.Sub(last.at) < r.Suppress && now.Sub(last.at) >= 0 {
		return duplicate(fmt.Sprintf("repeat within %v", r.Suppress))
	}
	switch {
	case a == nil:
		if rd.Intent == drivers.SignOut {
			return refuse(ledger.ReasonNotSignedIn, "")
		}
		if now.After(s.SignInUntil()) {
			return refuse(ledger.ReasonSignInClosed, "sign-in closed at "+s.SignInUntil().Format("15:04"))
		}
		e.Kind = ledger.SignIn
		if now.After(s.LateFrom()) {
			e.Flags = append(e.Flags, ledger.FlagLate)
		}
	case !a.out.IsZero():
		return duplicate("already signed out")
	case rd.Intent == drivers.SignOut || (rd.Intent == drivers.Auto && !now.Before(s.SignOutFrom())):
		e.Kind, e.Ref = ledger.SignOut, a.inID
		if now.Before(s.End) {
			e.Flags = append(e.Flags, ledger.FlagEarlyLeave)
		}
		r.cameraFlags(&e, h, t.ID, s.ID, a)
	default:
		return duplicate("already signed in")
	}
	r.flag(&e, rd, h, clk, t.ID)
	return Decision{Event: e}
}

// flag adds the doubt flags that depend on the reading, the clock and the recent events.
func (r *Rules) flag(e *ledger.Event, rd drivers.Reading, h *History, clk Clock, trainee string) {
	now := clk.Wall
	if !clk.Synced {
		e.Flags = append(e.Flags, ledger.FlagClockUnsynced)
	}
	if clk.Jumped {
		e.Flags = append(e.Flags, ledger.FlagClockJump)
	}
	if clk.Anchored {
		e.Flags = append(e.Flags, ledger.FlagTimeAnchored)
	}
	if d, ok := r.DoubtMargin[rd.Method]; ok && rd.Margin > 0 && rd.Margin < d {
		e.Flags = append(e.Flags, ledger.FlagLowMargin)
	}
	if rd.Method == drivers.Manual {
		e.Flags = append(e.Flags, ledger.FlagManualOverride)
	}
	if m, ok := h.byTrainee[trainee]; ok && m.source != rd.Source && rd.Method != drivers.Manual && within(now, m.at, r.TwoDevices) {
		e.Flags = append(e.Flags, ledger.FlagTwoDevices)
	}
	if m, ok := h.bySource[rd.Source]; ok && m.trainee != trainee && rd.Method != drivers.Manual && within(now, m.at, r.Rapid) {
		e.Flags = append(e.Flags, ledger.FlagRapidSuccession)
	}
}

// cameraFlags adds to a sign-out what the room's cameras found during the session: absent at the
// spot checks (not seen in AbsentShare of them), and, for a sign-in no camera made (a fingerprint,
// a card, a terminal), never seen by a camera at all. Both only where a camera looked: a session
// without a spot check flags neither.
func (r *Rules) cameraFlags(e *ledger.Event, h *History, trainee, session string, a *attendance) {
	checks, missed := h.SpotChecks(trainee, session)
	if checks == 0 {
		return
	}
	if float64(missed) >= r.AbsentShare*float64(checks) && missed > 0 {
		e.Flags = append(e.Flags, ledger.FlagAbsentSpotCheck)
	}
	if a.inMethod != string(drivers.Face) {
		if _, seen := h.SeenSince(trainee, a.in); !seen {
			e.Flags = append(e.Flags, ledger.FlagNotSeenByCamera)
		}
	}
}

func within(now, at time.Time, d time.Duration) bool {
	age := now.Sub(at)
	return age >= 0 && age < d
}

// openSession finds the session of the trainee's classes whose sign-in/out span contains now and
// which this reader serves. Where spans overlap (one session's sign-out window and the next one's
// sign-in window), a session the trainee has finished gives way to one not yet finished.
func openSession(x *roster.Index, h *History, t *roster.Trainee, source string, now time.Time) (*roster.Session, roster.Enrolment) {
	var done *roster.Session
	var doneEnr roster.Enrolment
	for _, en := range t.Enrolments {
		for _, s := range x.Sessions(en.Class) {
			if s.Opens().After(now) {
				break
			}
			if now.After(s.Closes()) || !s.Serves(source) {
				continue
			}
			if a := h.attend[attendKey{t.ID, s.ID}]; a != nil && !a.out.IsZero() {
				if done == nil {
					done, doneEnr = s, en
				}
				continue
			}
			return s, en
		}
	}
	return done, doneEnr
}

func nextSessionNote(x *roster.Index, t *roster.Trainee, now time.Time) string {
	var next time.Time
	for _, en := range t.Enrolments {
		for _, s := range x.Sessions(en.Class) {
			if s.Opens().After(now) && (next.IsZero() || s.Opens().Before(next)) {
				next = s.Opens()
			}
		}
	}
	if next.IsZero() {
		return "no session of this trainee's classes is open now at this reader"
	}
	return "next sign-in opens " + next.Format(time.RFC3339)
}

// voucherUsable checks a voucher for a sign-in at a programme of an institution.
func (r *Rules) voucherUsable(v *roster.Voucher, x *roster.Index, h *History, now time.Time, prog *roster.Programme, t *roster.Trainee) (ledger.Reason, string) {
	if reason, note := voucherValid(v, now); reason != "" {
		return reason, note
	}
	if v.Holder != t.IDNumber {
		return ledger.ReasonNotHolder, "the voucher belongs to " + roster.MaskID(v.Holder)
	}
	if bound := boundTo(v, h); bound != "" && bound != prog.Institution {
		return ledger.ReasonNotAccepted, "the voucher is bound to institution " + bound
	}
	return acceptedAt(v, x, prog.Institution, prog)
}

func voucherValid(v *roster.Voucher, now time.Time) (ledger.Reason, string) {
	switch {
	case v.Status == roster.Revoked:
		return ledger.ReasonVoucherRevoked, ""
	case v.Status == roster.Used:
		return ledger.ReasonVoucherUsed, ""
	case now.Before(v.ValidFrom):
		return ledger.ReasonVoucherNotYet, "valid from " + v.ValidFrom.Format(time.DateOnly)
	case now.After(v.ValidTo):
		return ledger.ReasonVoucherExpired, "expired " + v.ValidTo.Format(time.DateOnly)
	}
	return "", ""
}

func boundTo(v *roster.Voucher, h *History) string {
	if inst, ok := h.Bound(v.Code); ok {
		return inst
	}
	if v.Status == roster.Bound {
		return v.BoundTo
	}
	return ""
}

// acceptedAt checks that institution inst takes voucher v, for programme prog when known.
func acceptedAt(v *roster.Voucher, x *roster.Index, inst string, prog *roster.Programme) (ledger.Reason, string) {
	in := x.Institution(inst)
	switch {
	case in == nil:
		return ledger.ReasonNotAccepted, "institution " + inst + " is not in the roster"
	case in.Retired:
		return ledger.ReasonInstitutionRetired, ""
	case !in.AcceptsVouchers:
		return ledger.ReasonNotAccepted, "institution " + inst + " is not on the list of institutions taking vouchers"
	case len(v.Institutions) > 0 && !slices.Contains(v.Institutions, inst):
		return ledger.ReasonNotAccepted, "the voucher is not for institution " + inst
	}
	if v.Kind == roster.Directed && prog != nil {
		if v.Programme != "" && v.Programme != prog.ID {
			return ledger.ReasonNotAccepted, "the voucher is directed to programme " + v.Programme
		}
		if v.Occupation != "" && v.Occupation != prog.Occupation {
			return ledger.ReasonNotAccepted, "the voucher is directed to occupation " + v.Occupation
		}
	}
	return "", ""
}

// scanVoucher checks a scanned voucher code; a usable one waits for its holder.
func (r *Rules) scanVoucher(rd drivers.Reading, x *roster.Index, h *History, e ledger.Event, now time.Time) Decision {
	e.Voucher, e.Institution = rd.Subject, r.Institution
	refuse := func(reason ledger.Reason, note string) Decision {
		e.Reason, e.Note = reason, note
		return Decision{Event: e}
	}
	v := x.Voucher(rd.Subject)
	if v == nil {
		return refuse(ledger.ReasonUnknownVoucher, "")
	}
	if reason, note := voucherValid(v, now); reason != "" {
		return refuse(reason, note)
	}
	if bound := boundTo(v, h); bound != "" {
		return refuse(ledger.ReasonVoucherBound, "already bound to institution "+bound)
	}
	var prog *roster.Programme
	if v.Programme != "" {
		prog = x.Programme(v.Programme)
	}
	if reason, note := acceptedAt(v, x, r.Institution, prog); reason != "" {
		return refuse(reason, note)
	}
	// prog is the voucher's own programme, so acceptedAt cannot see that another institution runs
	// it; bound here, such a directed voucher could never be used.
	if v.Kind == roster.Directed && prog != nil && prog.Institution != r.Institution {
		return refuse(ledger.ReasonNotAccepted, "the voucher is directed to programme "+prog.ID+" of institution "+prog.Institution)
	}
	return Decision{Pending: &Pending{Station: r.station(rd.Source), Code: v.Code, Source: rd.Source, At: now}}
}

// completeVoucher binds a pending voucher when the identified trainee is its holder.
func (r *Rules) completeVoucher(p Pending, t *roster.Trainee, x *roster.Index, e ledger.Event) Decision {
	e.Voucher, e.Institution = p.Code, r.Institution
	v := x.Voucher(p.Code)
	if v == nil { // the roster changed under the pending scan
		e.Reason = ledger.ReasonUnknownVoucher
		return Decision{Event: e}
	}
	if v.Holder != t.IDNumber {
		e.Reason, e.Note = ledger.ReasonNotHolder, "the voucher belongs to "+roster.MaskID(v.Holder)
		return Decision{Event: e}
	}
	e.Kind = ledger.VoucherCheckin
	e.Note = "voucher scanned at " + p.Source
	return Decision{Event: e}
}

// Expire turns the voucher scans that waited too long into refusals to record.
func (r *Rules) Expire(h *History, clk Clock) []ledger.Event {
	rules := r.WithDefaults()
	r = &rules
	var out []ledger.Event
	for _, p := range h.Expired(clk.Wall, r.VoucherWindow) {
		out = append(out, ledger.Event{Kind: ledger.Refusal, Reason: ledger.ReasonVoucherTimeout, Time: clk.Clock,
			Source: p.Source, Method: string(drivers.Voucher), Voucher: p.Code, Institution: r.Institution,
			Note: fmt.Sprintf("the holder did not identify within %v", r.VoucherWindow)})
	}
	return out
}
