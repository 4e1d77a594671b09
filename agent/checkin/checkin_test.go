package checkin_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// want is what a decision must record. Every field is compared exactly, empty included, except
// note, which is a substring when set.
type want struct {
	kind        ledger.Kind
	reason      ledger.Reason
	flags       []ledger.Flag
	trainee     string // also decides IDMasked: the trainee's masked number, or empty
	session     string
	voucher     string
	institution string
	ref         string
	note        string
}

type decideCase struct {
	name     string
	prior    []ledger.Event         // added to the History in order
	rules    func(r *checkin.Rules) // changes to testRules, if any
	mutate   func(x *roster.Index)  // changes to the built roster, if any
	noRoster bool                   // decide with a nil roster
	rd       drivers.Reading
	clock    func(c *checkin.Clock) // changes to a synced clock at rd.At, if any
	want     want
}

func unsynced(c *checkin.Clock) { c.Synced = false }
func jumped(c *checkin.Clock)   { c.Jumped = true }

// Shorthands for rows.
var (
	none []ledger.Flag
	late = []ledger.Flag{ledger.FlagLate}
)

func flags(f ...ledger.Flag) []ledger.Flag { return f }

func signedIn(w want) want  { w.kind = ledger.SignIn; return w }
func signedOut(w want) want { w.kind = ledger.SignOut; return w }
func dup(w want) want       { w.kind = ledger.Duplicate; return w }
func refused(r ledger.Reason, w want) want {
	w.kind, w.reason = ledger.Refusal, r
	return w
}

// The session of T-plain in the morning and the institution running it.
func elecAM(w want) want {
	w.session, w.institution = "S-elec-am", instHere
	return w
}

func TestDecide(t *testing.T) {
	plain := func(w want) want { w.trainee = "T-plain"; return elecAM(w) }
	in1 := signIn("in-1", "T-plain", "S-elec-am", "room1", at(8, 55))

	tests := []decideCase{
		// Identity.
		{name: "nil roster", noRoster: true, rd: fp("T-plain", "room1", at(8, 55)),
			want: refused(ledger.ReasonUnknownTrainee, want{note: "no roster loaded"})},
		{name: "nil roster, voucher scan", noRoster: true, rd: scan("V-gen", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonUnknownTrainee, want{note: "no roster loaded"})},
		{name: "unidentified finger", rd: fp("", "room1", at(8, 55)),
			want: refused(ledger.ReasonUnidentified, want{})},
		{name: "unidentified face", rd: face("", "room1", at(8, 55), 0.3, 0),
			want: refused(ledger.ReasonUnidentified, want{})},
		{name: "unknown trainee", rd: fp("T-nobody", "room1", at(8, 55)),
			want: refused(ledger.ReasonUnknownTrainee, want{note: `"T-nobody" is not in roster version 7`})},
		{name: "card number", rd: card("CARD-1", "room1", at(8, 55)),
			want: signedIn(plain(want{flags: none}))},
		{name: "card reader with a trainee ID", rd: card("T-plain", "room1", at(8, 55)),
			want: signedIn(plain(want{flags: none}))},
		{name: "unknown card", rd: card("CARD-9", "room1", at(8, 55)),
			want: refused(ledger.ReasonUnknownTrainee, want{})},
		{name: "card number read by a fingerprint module", rd: fp("CARD-1", "room1", at(8, 55)),
			want: refused(ledger.ReasonUnknownTrainee, want{})},
		{name: "score under threshold", rd: withScore(fp("T-plain", "room1", at(8, 55)), 49.9),
			want: refused(ledger.ReasonLowScore, want{trainee: "T-plain", note: "score 49.9 under 50"})},
		{name: "no score where a threshold is set", rd: withScore(fp("T-plain", "room1", at(8, 55)), 0),
			want: refused(ledger.ReasonLowScore, want{trainee: "T-plain"})},
		{name: "score at threshold", rd: withScore(fp("T-plain", "room1", at(8, 55)), 50),
			want: signedIn(plain(want{flags: none}))},
		{name: "face under threshold", rd: face("T-plain", "room1", at(8, 55), 0.59, 0.3),
			want: refused(ledger.ReasonLowScore, want{trainee: "T-plain"})},
		{name: "ambiguous face", rd: face("T-plain", "room1", at(8, 55), 0.9, 0.04),
			want: refused(ledger.ReasonAmbiguous, want{trainee: "T-plain", note: "margin 0.04 under 0.05"})},
		{name: "face margin at the refusal threshold is low", rd: face("T-plain", "room1", at(8, 55), 0.9, 0.05),
			want: signedIn(plain(want{flags: flags(ledger.FlagLowMargin)}))},
		{name: "face with low margin", rd: face("T-plain", "room1", at(8, 55), 0.9, 0.1),
			want: signedIn(plain(want{flags: flags(ledger.FlagLowMargin)}))},
		{name: "face margin at the doubt threshold", rd: face("T-plain", "room1", at(8, 55), 0.9, 0.15),
			want: signedIn(plain(want{flags: none}))},
		{name: "face without a margin", rd: face("T-plain", "room1", at(8, 55), 0.9, 0),
			want: signedIn(plain(want{flags: none}))},
		{name: "manual without operator", rd: manual("T-plain", "room1", at(8, 55), "", "reader broken"),
			want: refused(ledger.ReasonOverrideIncomplete, want{trainee: "T-plain", note: "needs an operator and a reason"})},
		{name: "manual without reason", rd: manual("T-plain", "room1", at(8, 55), "op-wang", ""),
			want: refused(ledger.ReasonOverrideIncomplete, want{trainee: "T-plain", note: "needs an operator and a reason"})},
		{name: "manual override", rd: manual("T-plain", "room1", at(8, 55), "op-wang", "reader broken"),
			want: signedIn(plain(want{flags: flags(ledger.FlagManualOverride), note: "reader broken"}))},
		{name: "manual override is never rapid or at two devices",
			prior: []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 54, 59)),
				duplicateOf("dup-x", "T-plain", "S-elec4", "room4", at(8, 50))},
			rd:   manual("T-plain", "room1", at(8, 55), "op-wang", "reader broken"),
			want: signedIn(plain(want{flags: flags(ledger.FlagManualOverride)}))},

		// A session open now at this reader.
		{name: "before sign-in opens", rd: fp("T-plain", "room1", at(8, 29, 59)),
			want: refused(ledger.ReasonNoSession, want{trainee: "T-plain", note: "next sign-in opens 2026-03-02T08:30:00+08:00"})},
		{name: "at sign-in opening", rd: fp("T-plain", "room1", at(8, 30)),
			want: signedIn(plain(want{flags: none}))},
		{name: "between sessions", rd: fp("T-plain", "room1", at(12, 30, 1)),
			want: refused(ledger.ReasonNoSession, want{trainee: "T-plain", note: "next sign-in opens 2026-03-02T13:30:00+08:00"})},
		{name: "after the last session", rd: fp("T-plain", "room1", at(17, 30, 1)),
			want: refused(ledger.ReasonNoSession, want{trainee: "T-plain", note: "no session of this trainee's classes is open"})},
		{name: "afternoon session", rd: fp("T-plain", "room1", at(13, 45)),
			want: signedIn(want{trainee: "T-plain", session: "S-elec-pm", institution: instHere, flags: none})},
		{name: "no session at this device", rd: fp("T-cook", "room1", at(9, 0)),
			want: refused(ledger.ReasonNoSession, want{trainee: "T-cook"})},
		{name: "session at its device", rd: fp("T-cook", "room2", at(9, 0)),
			want: signedIn(want{trainee: "T-cook", session: "S-cook", institution: instNoVouch, flags: none})},
		{name: "institution retired", rd: fp("T-weld", "room1", at(9, 0)),
			want: refused(ledger.ReasonInstitutionRetired, want{trainee: "T-weld", session: "S-weld", institution: instRetired})},

		// Sign-in and sign-out windows (S-elec-am: opens 08:30, late after 09:10, sign-in until
		// 10:00, sign-out from 11:30, closes 12:30).
		{name: "on time", rd: fp("T-plain", "room1", at(8, 55)),
			want: signedIn(plain(want{flags: none}))},
		{name: "at the late mark", rd: fp("T-plain", "room1", at(9, 10)),
			want: signedIn(plain(want{flags: none}))},
		{name: "late", rd: fp("T-plain", "room1", at(9, 10, 1)),
			want: signedIn(plain(want{flags: late}))},
		{name: "last sign-in", rd: fp("T-plain", "room1", at(10, 0)),
			want: signedIn(plain(want{flags: late}))},
		{name: "sign-in closed", rd: fp("T-plain", "room1", at(10, 0, 1)),
			want: refused(ledger.ReasonSignInClosed, plain(want{note: "sign-in closed at 10:00"}))},
		{name: "sign-in closed in the sign-out window", rd: fp("T-plain", "room1", at(11, 45)),
			want: refused(ledger.ReasonSignInClosed, plain(want{}))},
		{name: "late by the session's own window", rd: fp("T-bake", "room1", at(9, 5, 1)),
			want: signedIn(want{trainee: "T-bake", session: "S-bake", institution: instHere, flags: late})},
		{name: "sign-in closed by the session's own window", rd: fp("T-bake", "room1", at(9, 20, 1)),
			want: refused(ledger.ReasonSignInClosed, want{trainee: "T-bake", session: "S-bake", institution: instHere, note: "09:20"})},
		{name: "sign-out without a sign-in", rd: withIntent(fp("T-plain", "room1", at(11, 45)), drivers.SignOut),
			want: refused(ledger.ReasonNotSignedIn, plain(want{}))},
		{name: "explicit sign-in", rd: withIntent(fp("T-plain", "room1", at(8, 55)), drivers.SignIn),
			want: signedIn(plain(want{flags: none}))},
		{name: "sign-out inferred at the window start", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(11, 30)),
			want: signedOut(plain(want{ref: "in-1", flags: flags(ledger.FlagEarlyLeave)}))},
		{name: "sign-out inferred before the end", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(11, 40)),
			want: signedOut(plain(want{ref: "in-1", flags: flags(ledger.FlagEarlyLeave)}))},
		{name: "sign-out at the end", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(12, 0)),
			want: signedOut(plain(want{ref: "in-1", flags: none}))},
		{name: "sign-out at close", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(12, 30)),
			want: signedOut(plain(want{ref: "in-1", flags: none}))},
		{name: "sign-out after close", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(12, 30, 1)),
			want: refused(ledger.ReasonNoSession, want{trainee: "T-plain"})},
		{name: "explicit sign-out mid-session", prior: []ledger.Event{in1}, rd: withIntent(fp("T-plain", "room1", at(10, 30)), drivers.SignOut),
			want: signedOut(plain(want{ref: "in-1", flags: flags(ledger.FlagEarlyLeave)}))},
		{name: "explicit sign-in in the sign-out window", prior: []ledger.Event{in1}, rd: withIntent(fp("T-plain", "room1", at(11, 40)), drivers.SignIn),
			want: dup(plain(want{ref: "in-1", flags: none, note: "already signed in"}))},
		{name: "mid-session reading", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(10, 30)),
			want: dup(plain(want{ref: "in-1", flags: none, note: "already signed in"}))},
		{name: "already signed out",
			prior: []ledger.Event{in1, signOut("out-1", "T-plain", "S-elec-am", "room1", at(11, 40))},
			rd:    fp("T-plain", "room1", at(11, 50)),
			want:  dup(plain(want{ref: "out-1", flags: none, note: "already signed out"}))},
		{name: "explicit sign-out when already signed out",
			prior: []ledger.Event{in1, signOut("out-1", "T-plain", "S-elec-am", "room1", at(11, 40))},
			rd:    withIntent(fp("T-plain", "room1", at(12, 10)), drivers.SignOut),
			want:  dup(plain(want{ref: "out-1", flags: none, note: "already signed out"}))},

		// Duplicates within the suppression window (default 2m).
		{name: "repeat within the suppression window", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(8, 56)),
			want: dup(plain(want{ref: "in-1", flags: none, note: "repeat within 2m0s"}))},
		{name: "repeat at the end of the suppression window", prior: []ledger.Event{in1}, rd: fp("T-plain", "room1", at(8, 57)),
			want: dup(plain(want{ref: "in-1", flags: none, note: "already signed in"}))},
		{name: "suppression comes before the sign-out window",
			prior: []ledger.Event{signIn("in-late", "T-plain", "S-elec-am", "room1", at(9, 59))},
			rd:    withIntent(fp("T-plain", "room1", at(10, 0, 30)), drivers.SignOut),
			want:  dup(plain(want{ref: "in-late", flags: none, note: "repeat within"}))},
		{name: "a duplicate neither extends the window nor becomes the ref",
			prior: []ledger.Event{in1, duplicateOf("dup-1", "T-plain", "S-elec-am", "room1", at(8, 56, 30))},
			rd:    fp("T-plain", "room1", at(8, 58)),
			want:  dup(plain(want{ref: "in-1", flags: none, note: "already signed in"}))},
		{name: "refusals do not suppress",
			prior: []ledger.Event{{ID: "ref-1", Kind: ledger.Refusal, Reason: ledger.ReasonLowScore, Trainee: "T-plain",
				Source: "room1", Time: ledger.Clock{Wall: at(8, 54, 30)}}},
			rd:   fp("T-plain", "room1", at(8, 55)),
			want: signedIn(plain(want{flags: none}))},
		{name: "suppression window set in the rules", prior: []ledger.Event{in1},
			rules: func(r *checkin.Rules) { r.Suppress = 30 * time.Second },
			rd:    fp("T-plain", "room1", at(8, 55, 31)),
			want:  dup(plain(want{ref: "in-1", flags: none, note: "already signed in"}))},
		{name: "clock went back before the last event", prior: []ledger.Event{in1}, clock: jumped,
			rd:   fp("T-plain", "room1", at(8, 54)),
			want: dup(plain(want{ref: "in-1", flags: flags(ledger.FlagClockJump), note: "already signed in"}))},

		// Doubt flags.
		{name: "clock unsynced", clock: unsynced, rd: fp("T-plain", "room1", at(8, 55)),
			want: signedIn(plain(want{flags: flags(ledger.FlagClockUnsynced)}))},
		{name: "clock jump", clock: jumped, rd: fp("T-plain", "room1", at(8, 55)),
			want: signedIn(plain(want{flags: flags(ledger.FlagClockJump)}))},
		{name: "late, unsynced, jumped and low margin", clock: func(c *checkin.Clock) { unsynced(c); jumped(c) },
			rd:   face("T-plain", "room1", at(9, 30), 0.8, 0.06),
			want: signedIn(plain(want{flags: flags(ledger.FlagLate, ledger.FlagClockUnsynced, ledger.FlagClockJump, ledger.FlagLowMargin)}))},
		{name: "refusals carry no flags", clock: func(c *checkin.Clock) { unsynced(c); jumped(c) },
			rd:   face("T-plain", "room1", at(9, 30), 0.5, 0.06),
			want: refused(ledger.ReasonLowScore, want{trainee: "T-plain"})},
		{name: "duplicates carry flags", prior: []ledger.Event{in1}, clock: unsynced, rd: fp("T-plain", "room1", at(8, 56)),
			want: dup(plain(want{ref: "in-1", flags: flags(ledger.FlagClockUnsynced)}))},
		{name: "sign-out at a second device",
			prior: []ledger.Event{signIn("in-b", "T-plain", "S-elec-am", "room1b", at(8, 55))},
			rd:    withIntent(fp("T-plain", "room1", at(9, 4, 59)), drivers.SignOut),
			want:  signedOut(plain(want{ref: "in-b", flags: flags(ledger.FlagEarlyLeave, ledger.FlagTwoDevices)}))},
		{name: "second device after the two-device window",
			prior: []ledger.Event{signIn("in-b", "T-plain", "S-elec-am", "room1b", at(8, 55))},
			rd:    withIntent(fp("T-plain", "room1", at(9, 5)), drivers.SignOut),
			want:  signedOut(plain(want{ref: "in-b", flags: flags(ledger.FlagEarlyLeave)}))},
		{name: "repeat at a second device",
			prior: []ledger.Event{signIn("in-b", "T-plain", "S-elec-am", "room1b", at(8, 55))},
			rd:    fp("T-plain", "room1", at(8, 56)),
			want:  dup(plain(want{ref: "in-b", flags: flags(ledger.FlagTwoDevices)}))},
		{name: "sign-in at a second device, another class",
			prior: []ledger.Event{signIn("in-a", "T-gen", "S-elec-am", "room1", at(8, 55))},
			rd:    fp("T-gen", "room4", at(8, 58)),
			want:  signedIn(want{trainee: "T-gen", session: "S-elec4", voucher: "V-gen", institution: instOther, flags: flags(ledger.FlagTwoDevices)})},
		{name: "two-device window set in the rules",
			prior: []ledger.Event{signIn("in-b", "T-plain", "S-elec-am", "room1b", at(8, 55))},
			rules: func(r *checkin.Rules) { r.TwoDevices = 3 * time.Minute },
			rd:    withIntent(fp("T-plain", "room1", at(8, 58)), drivers.SignOut),
			want:  signedOut(plain(want{ref: "in-b", flags: flags(ledger.FlagEarlyLeave)}))},
		{name: "rapid succession",
			prior: []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 55))},
			rd:    fp("T-plain", "room1", at(8, 55, 1)),
			want:  signedIn(plain(want{flags: flags(ledger.FlagRapidSuccession)}))},
		{name: "same instant is rapid",
			prior: []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 55))},
			rd:    fp("T-plain", "room1", at(8, 55)),
			want:  signedIn(plain(want{flags: flags(ledger.FlagRapidSuccession)}))},
		{name: "after the rapid window",
			prior: []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 55))},
			rd:    fp("T-plain", "room1", at(8, 55, 2)),
			want:  signedIn(plain(want{flags: none}))},
		{name: "rapid window set in the rules",
			prior: []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 55))},
			rules: func(r *checkin.Rules) { r.Rapid = 5 * time.Second },
			rd:    fp("T-plain", "room1", at(8, 55, 4)),
			want:  signedIn(plain(want{flags: flags(ledger.FlagRapidSuccession)}))},
		{name: "the same trainee again is not rapid", prior: []ledger.Event{in1},
			rd:   fp("T-plain", "room1", at(8, 55, 1)),
			want: dup(plain(want{ref: "in-1", flags: none, note: "repeat within"}))},
		{name: "another trainee at another reader is not rapid",
			prior: []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1b", at(8, 55))},
			rd:    fp("T-plain", "room1", at(8, 55, 1)),
			want:  signedIn(plain(want{flags: none}))},
		{name: "a refusal at the reader is not rapid",
			prior: []ledger.Event{{ID: "ref-2", Kind: ledger.Refusal, Reason: ledger.ReasonUnidentified, Source: "room1",
				Time: ledger.Clock{Wall: at(8, 55)}}},
			rd:   fp("T-plain", "room1", at(8, 55, 1)),
			want: signedIn(plain(want{flags: none}))},

		// The voucher paying for the place.
		{name: "directed voucher", rd: fp("T-vok", "room1", at(8, 55)),
			want: signedIn(elecAM(want{trainee: "T-vok", voucher: "V-ok", flags: none}))},
		{name: "voucher bound here", rd: fp("T-vbhere", "room1", at(8, 55)),
			want: signedIn(elecAM(want{trainee: "T-vbhere", voucher: "V-bound-here", flags: none}))},
		{name: "voucher not in the roster", rd: fp("T-plain", "room1", at(8, 55)),
			mutate: func(x *roster.Index) { x.Trainee("T-plain").Enrolments[0].Voucher = "V-gone" },
			want:   refused(ledger.ReasonNoVoucher, plain(want{voucher: "V-gone"}))},
		{name: "voucher revoked", rd: fp("T-vrev", "room1", at(8, 55)),
			want: refused(ledger.ReasonVoucherRevoked, elecAM(want{trainee: "T-vrev", voucher: "V-revoked"}))},
		{name: "voucher used", rd: fp("T-vused", "room1", at(8, 55)),
			want: refused(ledger.ReasonVoucherUsed, elecAM(want{trainee: "T-vused", voucher: "V-used"}))},
		{name: "voucher not yet valid", rd: fp("T-vnotyet", "room1", at(8, 55)),
			want: refused(ledger.ReasonVoucherNotYet, elecAM(want{trainee: "T-vnotyet", voucher: "V-notyet", note: "valid from 2026-04-01"}))},
		{name: "voucher expired", rd: fp("T-vexp", "room1", at(8, 55)),
			want: refused(ledger.ReasonVoucherExpired, elecAM(want{trainee: "T-vexp", voucher: "V-expired", note: "expired 2026-03-01"}))},
		{name: "voucher bound elsewhere in the roster", rd: fp("T-vbother", "room1", at(8, 55)),
			want: refused(ledger.ReasonNotAccepted, elecAM(want{trainee: "T-vbother", voucher: "V-bound-other", note: "bound to institution 0004"}))},
		{name: "voucher directed to another programme", rd: fp("T-vprog", "room1", at(8, 55)),
			want: refused(ledger.ReasonNotAccepted, elecAM(want{trainee: "T-vprog", voucher: "V-other-prog", note: "directed to programme P-bake"}))},
		{name: "voucher directed to another occupation", rd: fp("T-vocc", "room1", at(8, 55)),
			want: refused(ledger.ReasonNotAccepted, elecAM(want{trainee: "T-vocc", voucher: "V-occ", note: "directed to occupation cook"}))},
		{name: "voucher for another institution", rd: fp("T-vinst", "room1", at(8, 55)),
			want: refused(ledger.ReasonNotAccepted, elecAM(want{trainee: "T-vinst", voucher: "V-inst4", note: "not for institution 0001"}))},
		{name: "voucher at an institution taking none", rd: fp("T-vnoacc", "room2", at(8, 55)),
			want: refused(ledger.ReasonNotAccepted, want{trainee: "T-vnoacc", session: "S-cook", voucher: "V-noacc", institution: instNoVouch, note: "not on the list"})},
		{name: "general voucher at another institution", rd: fp("T-gen", "room4", at(9, 0)),
			want: signedIn(want{trainee: "T-gen", session: "S-elec4", voucher: "V-gen", institution: instOther, flags: none})},
		{name: "voucher checked in here, sign-in at another institution",
			prior: []ledger.Event{voucherCheckin("vc-1", "T-gen", "V-gen", instHere, "reg-fp", at(8, 0))},
			rd:    fp("T-gen", "room4", at(9, 0)),
			want:  refused(ledger.ReasonNotAccepted, want{trainee: "T-gen", session: "S-elec4", voucher: "V-gen", institution: instOther, note: "bound to institution 0001"})},
		{name: "voucher checked in here, sign-in here",
			prior: []ledger.Event{voucherCheckin("vc-1", "T-gen", "V-gen", instHere, "reg-fp", at(8, 0))},
			rd:    fp("T-gen", "room1", at(9, 0)),
			want:  signedIn(elecAM(want{trainee: "T-gen", voucher: "V-gen", flags: none}))},

		// Voucher scans refused at once (a valid scan is Pending: TestVoucherCheckin).
		{name: "scan of an unknown voucher", rd: scan("V-nope", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonUnknownVoucher, want{voucher: "V-nope", institution: instHere})},
		{name: "scan of a revoked voucher", rd: scan("V-revoked", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonVoucherRevoked, want{voucher: "V-revoked", institution: instHere})},
		{name: "scan of a used voucher", rd: scan("V-used", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonVoucherUsed, want{voucher: "V-used", institution: instHere})},
		{name: "scan of a voucher not yet valid", rd: scan("V-notyet", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonVoucherNotYet, want{voucher: "V-notyet", institution: instHere, note: "valid from 2026-04-01"})},
		{name: "scan of an expired voucher", rd: scan("V-expired", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonVoucherExpired, want{voucher: "V-expired", institution: instHere})},
		{name: "scan of a voucher bound elsewhere", rd: scan("V-bound-other", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonVoucherBound, want{voucher: "V-bound-other", institution: instHere, note: "bound to institution 0004"})},
		{name: "scan of a voucher bound here", rd: scan("V-bound-here", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonVoucherBound, want{voucher: "V-bound-here", institution: instHere, note: "bound to institution 0001"})},
		{name: "scan of a voucher checked in on this box",
			prior: []ledger.Event{voucherCheckin("vc-1", "T-gen", "V-gen", instHere, "reg-fp", at(7, 50))},
			rd:    scan("V-gen", "reg-qr", at(8, 0)),
			want:  refused(ledger.ReasonVoucherBound, want{voucher: "V-gen", institution: instHere, note: "bound to institution 0001"})},
		{name: "scan of a voucher for another institution", rd: scan("V-inst4", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonNotAccepted, want{voucher: "V-inst4", institution: instHere, note: "not for institution 0001"})},
		{name: "scan of a voucher directed to a programme run elsewhere", rd: scan("V-dir4", "reg-qr", at(8, 0)),
			want: refused(ledger.ReasonNotAccepted, want{voucher: "V-dir4", institution: instHere, note: "P-elec4"})},
		{name: "scan at an institution taking no vouchers", rd: scan("V-gen", "reg-qr", at(8, 0)),
			rules: func(r *checkin.Rules) { r.Institution = instNoVouch },
			want:  refused(ledger.ReasonNotAccepted, want{voucher: "V-gen", institution: instNoVouch, note: "not on the list"})},
		{name: "scan at a retired institution", rd: scan("V-gen", "reg-qr", at(8, 0)),
			rules: func(r *checkin.Rules) { r.Institution = instRetired },
			want:  refused(ledger.ReasonInstitutionRetired, want{voucher: "V-gen", institution: instRetired})},
		{name: "scan at an institution not in the roster", rd: scan("V-gen", "reg-qr", at(8, 0)),
			rules: func(r *checkin.Rules) { r.Institution = "0099" },
			want:  refused(ledger.ReasonNotAccepted, want{voucher: "V-gen", institution: "0099", note: "not in the roster"})},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			x := f.x
			if tc.noRoster {
				x = nil
			}
			if tc.mutate != nil {
				tc.mutate(x)
			}
			rules := testRules()
			if tc.rules != nil {
				tc.rules(&rules)
			}
			h := historyOf(tc.prior...)
			c := clk(tc.rd.At)
			if tc.clock != nil {
				tc.clock(&c)
			}
			d := rules.Decide(tc.rd, x, h, c)
			checkDecision(t, f, tc.rd, c, d, tc.want)
		})
	}

	// The table has a row for every reason and every flag Decide gives. ReasonNotHolder and
	// ReasonVoucherTimeout come from voucher check-in (TestVoucherCheckin).
	reasons := []ledger.Reason{ledger.ReasonUnidentified, ledger.ReasonUnknownTrainee, ledger.ReasonLowScore,
		ledger.ReasonAmbiguous, ledger.ReasonOverrideIncomplete, ledger.ReasonNoSession, ledger.ReasonSignInClosed,
		ledger.ReasonNotSignedIn, ledger.ReasonNoVoucher, ledger.ReasonVoucherNotYet, ledger.ReasonVoucherExpired,
		ledger.ReasonVoucherRevoked, ledger.ReasonVoucherUsed, ledger.ReasonVoucherBound, ledger.ReasonNotAccepted,
		ledger.ReasonUnknownVoucher, ledger.ReasonInstitutionRetired}
	allFlags := []ledger.Flag{ledger.FlagLate, ledger.FlagEarlyLeave, ledger.FlagClockUnsynced, ledger.FlagClockJump,
		ledger.FlagLowMargin, ledger.FlagManualOverride, ledger.FlagTwoDevices, ledger.FlagRapidSuccession}
	seenReason, seenFlag := map[ledger.Reason]bool{}, map[ledger.Flag]bool{}
	for _, tc := range tests {
		seenReason[tc.want.reason] = true
		for _, fl := range tc.want.flags {
			seenFlag[fl] = true
		}
	}
	for _, r := range reasons {
		if !seenReason[r] {
			t.Errorf("no row refuses with %q", r)
		}
	}
	for _, fl := range allFlags {
		if !seenFlag[fl] {
			t.Errorf("no row wants flag %q", fl)
		}
	}
}

// checkDecision compares a decision with what is wanted, and checks what holds for every event:
// the reading's fields copied, the clock, the masked ID number and never the full one.
func checkDecision(t *testing.T, f fixture, rd drivers.Reading, c checkin.Clock, d checkin.Decision, w want) {
	t.Helper()
	if d.Pending != nil || !d.HasEvent() {
		t.Fatalf("got a pending voucher scan %+v, want an event to record", *d.Pending)
	}
	e := d.Event
	if e.Kind != w.kind || e.Reason != w.reason {
		t.Errorf("got kind %q reason %q, want %q %q (note %q)", e.Kind, e.Reason, w.kind, w.reason, e.Note)
	}
	got := slices.Clone(e.Flags)
	wantFlags := slices.Clone(w.flags)
	slices.Sort(got)
	slices.Sort(wantFlags)
	if !slices.Equal(got, wantFlags) {
		t.Errorf("got flags %v, want %v", e.Flags, w.flags)
	}
	for _, fl := range []struct{ name, got, want string }{
		{"trainee", e.Trainee, w.trainee},
		{"session", e.Session, w.session},
		{"voucher", e.Voucher, w.voucher},
		{"institution", e.Institution, w.institution},
		{"ref", e.Ref, w.ref},
		{"source", e.Source, rd.Source},
		{"method", e.Method, string(rd.Method)},
		{"operator", e.Operator, rd.Operator},
		{"detail", e.Detail, rd.Detail},
	} {
		if fl.got != fl.want {
			t.Errorf("got %s %q, want %q", fl.name, fl.got, fl.want)
		}
	}
	if w.note != "" && !strings.Contains(e.Note, w.note) {
		t.Errorf("got note %q, want one containing %q", e.Note, w.note)
	}
	wantMasked := ""
	if w.trainee != "" {
		wantMasked = roster.MaskID(f.idOf(t, w.trainee))
	}
	if e.IDMasked != wantMasked {
		t.Errorf("got id_masked %q, want %q", e.IDMasked, wantMasked)
	}
	if e.Score != rd.Score || e.Margin != rd.Margin {
		t.Errorf("got score %v margin %v, want the reading's %v %v", e.Score, e.Margin, rd.Score, rd.Margin)
	}
	if e.Time != c.Clock {
		t.Errorf("got time %+v, want the decision clock %+v", e.Time, c.Clock)
	}
	if e.ID != "" || e.Seq != 0 || e.Prev != "" || e.Device != "" {
		t.Errorf("got id %q seq %d prev %q device %q, want them left to the store", e.ID, e.Seq, e.Prev, e.Device)
	}
	if e.Kind == ledger.Duplicate && e.Kind.Counted() {
		t.Errorf("a duplicate is counted")
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range f.r.Trainees {
		if strings.Contains(string(b), tr.IDNumber) {
			t.Errorf("event %s holds the full ID number of %s", b, tr.ID)
		}
	}
}

// The zero Rules are usable: every window takes its documented default.
func TestDecideZeroRulesUseDefaults(t *testing.T) {
	f := newFixture(t)
	in1 := signIn("in-1", "T-plain", "S-elec-am", "room1", at(8, 55))
	zero := checkin.Rules{Institution: instHere} // every window left at zero
	tests := []struct {
		name  string
		prior []ledger.Event
		rd    drivers.Reading
		kind  ledger.Kind
		flags []ledger.Flag
	}{
		{"suppress 2m", []ledger.Event{in1}, withIntent(fp("T-plain", "room1", at(8, 56, 59)), drivers.SignOut), ledger.Duplicate, none},
		{"after suppress", []ledger.Event{in1}, withIntent(fp("T-plain", "room1", at(8, 57)), drivers.SignOut), ledger.SignOut, flags(ledger.FlagEarlyLeave)},
		{"two devices 10m", []ledger.Event{signIn("in-b", "T-plain", "S-elec-am", "room1b", at(8, 55))},
			withIntent(fp("T-plain", "room1", at(9, 4, 59)), drivers.SignOut), ledger.SignOut, flags(ledger.FlagEarlyLeave, ledger.FlagTwoDevices)},
		{"rapid 2s", []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 55))},
			fp("T-plain", "room1", at(8, 55, 1)), ledger.SignIn, flags(ledger.FlagRapidSuccession)},
	}
	for _, tc := range tests {
		d := zero.Decide(tc.rd, f.x, historyOf(tc.prior...), clk(tc.rd.At))
		got := slices.Sorted(slices.Values(d.Event.Flags))
		if d.Event.Kind != tc.kind || !slices.Equal(got, slices.Sorted(slices.Values(tc.flags))) {
			t.Errorf("%s: got %q %v (%s), want %q %v", tc.name, d.Event.Kind, d.Event.Flags, d.Event.Note, tc.kind, tc.flags)
		}
	}
	// A voucher scan waits VoucherWindow (default 2m) for its holder.
	h := checkin.NewHistory()
	d := zero.Decide(scan("V-gen", "desk", at(8, 0)), f.x, h, clk(at(8, 0)))
	if d.Pending == nil {
		t.Fatalf("scan with zero rules: got %q %q, want pending", d.Event.Kind, d.Event.Reason)
	}
	h.Expect(*d.Pending)
	if got := zero.Expire(h, clk(at(8, 1, 59))); len(got) != 0 {
		t.Errorf("Expire after 1m59s with zero rules: got %d refusals, want 0", len(got))
	}
	d = zero.Decide(fp("T-gen", "desk", at(8, 1, 59)), f.x, h, clk(at(8, 1, 59)))
	if d.Event.Kind != ledger.VoucherCheckin {
		t.Errorf("holder after 1m59s with zero rules: got %q %q, want voucher_checkin", d.Event.Kind, d.Event.Reason)
	}
	if got := zero.WithDefaults(); got.Suppress != checkin.DefaultSuppress || got.TwoDevices != checkin.DefaultTwoDevices ||
		got.Rapid != checkin.DefaultRapid || got.VoucherWindow != checkin.DefaultVoucherWindow || got.AbsentShare != checkin.DefaultAbsentShare {
		t.Errorf("WithDefaults: got %+v", got)
	}
	set := checkin.Rules{Suppress: time.Second, TwoDevices: 2 * time.Second, Rapid: 3 * time.Second, VoucherWindow: 4 * time.Second, AbsentShare: 0.3}
	if got := set.WithDefaults(); got.Suppress != time.Second || got.TwoDevices != 2*time.Second ||
		got.Rapid != 3*time.Second || got.VoucherWindow != 4*time.Second || got.AbsentShare != 0.3 {
		t.Errorf("WithDefaults overrode set fields: got %+v", got)
	}
}

// Decide only reads the History: deciding the same reading twice gives the same event.
func TestDecideDoesNotWrite(t *testing.T) {
	f := newFixture(t)
	rules := testRules()
	h := historyOf(signIn("in-1", "T-plain", "S-elec-am", "room1", at(8, 55)))
	rd := fp("T-plain", "room1", at(11, 40))
	first := rules.Decide(rd, f.x, h, clk(rd.At))
	second := rules.Decide(rd, f.x, h, clk(rd.At))
	if first.Event.Kind != ledger.SignOut || second.Event.Kind != ledger.SignOut || first.Event.Ref != second.Event.Ref {
		t.Errorf("got %q then %q, want sign_out twice", first.Event.Kind, second.Event.Kind)
	}
}
