package checkin_test

import (
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// withTrainee builds the fixture roster plus trainee T-new enrolled in C-elec (programme P-elec:
// occupation electrician, category A) and paid by the voucher v made for T-new's ID number.
func withTrainee(t *testing.T, v func(holder string) roster.Voucher) fixture {
	t.Helper()
	r := fixtureRoster()
	id := idNumber(900)
	vc := v(id)
	r.Trainees = append(r.Trainees, trainee("T-new", 900, nil, enrol("C-elec", vc.Code)))
	r.Vouchers = append(r.Vouchers, vc)
	x, err := roster.Build(r, at(6, 0))
	if err != nil {
		t.Fatalf("roster refused: %v", err)
	}
	if got := x.Trainee("T-new"); got == nil || got.IDNumber != id {
		t.Fatalf("T-new not in the roster with ID number %s", id)
	}
	return fixture{r: r, x: x}
}

// decideNew is T-new's fingerprint at room1 at the given time, with nothing before it.
func decideNew(f fixture, when time.Time) ledger.Event {
	rules := testRules()
	return rules.Decide(fp("T-new", "room1", when), f.x, checkin.NewHistory(), clk(when)).Event
}

func wantKind(t *testing.T, what string, e ledger.Event, kind ledger.Kind, reason ledger.Reason) {
	t.Helper()
	if e.Kind != kind || e.Reason != reason {
		t.Errorf("%s: got %q %q (note %q), want %q %q", what, e.Kind, e.Reason, e.Note, kind, reason)
	}
}

// A voucher's first and last valid day are both days it can be used: a trainee signs in on the
// first day and on the last, and is refused the day before the first and the day after the last.
// The same holds to the second: valid from 08:55:00 means valid at 08:55:00 and not at 08:54:59.
func TestVoucherValidityEdgesAreInclusive(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, cst) }
	endOf := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 23, 59, 59, 0, cst) }
	valid := func(from, to time.Time) func(string) roster.Voucher {
		return func(h string) roster.Voucher {
			v := voucher("V-new", h, roster.General, roster.Issued)
			v.ValidFrom, v.ValidTo = from, to
			return v
		}
	}
	in := at(8, 55) // the fixture day, 2 March 2026, sign-in open for S-elec-am
	tests := []struct {
		name     string
		from, to time.Time
		when     time.Time
		kind     ledger.Kind
		reason   ledger.Reason
	}{
		{"first valid day is today", day(2026, 3, 2), endOf(2026, 3, 31), in, ledger.SignIn, ""},
		{"last valid day is today", day(2026, 2, 1), endOf(2026, 3, 2), in, ledger.SignIn, ""},
		{"one-day voucher, today", day(2026, 3, 2), endOf(2026, 3, 2), in, ledger.SignIn, ""},
		{"first valid day is tomorrow", day(2026, 3, 3), endOf(2026, 3, 31), in, ledger.Refusal, ledger.ReasonVoucherNotYet},
		{"last valid day was yesterday", day(2026, 2, 1), endOf(2026, 3, 1), in, ledger.Refusal, ledger.ReasonVoucherExpired},
		{"valid from this very second", at(8, 55), endOf(2026, 3, 31), at(8, 55), ledger.SignIn, ""},
		{"valid from the next second", at(8, 55, 1), endOf(2026, 3, 31), at(8, 55), ledger.Refusal, ledger.ReasonVoucherNotYet},
		{"valid to this very second", day(2026, 2, 1), at(8, 55), at(8, 55), ledger.SignIn, ""},
		{"valid to the second before", day(2026, 2, 1), at(8, 54, 59), at(8, 55), ledger.Refusal, ledger.ReasonVoucherExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := withTrainee(t, valid(tc.from, tc.to))
			e := decideNew(f, tc.when)
			wantKind(t, "sign-in", e, tc.kind, tc.reason)
			if e.Voucher != "V-new" {
				t.Errorf("got voucher %q, want V-new", e.Voucher)
			}

			// The scan at a registration desk checks the same days.
			rules := testRules()
			d := rules.Decide(scan("V-new", "reg-qr", tc.when), f.x, checkin.NewHistory(), clk(tc.when))
			if tc.kind == ledger.SignIn {
				if d.Pending == nil {
					t.Errorf("scan: got %q %q (note %q), want a pending scan", d.Event.Kind, d.Event.Reason, d.Event.Note)
				}
			} else {
				if d.Pending != nil {
					t.Fatalf("scan: got a pending scan, want refusal %q", tc.reason)
				}
				wantKind(t, "scan", d.Event, tc.kind, tc.reason)
			}
		})
	}
}

// A voucher directed to an occupation pays for any programme of that occupation: a trainee of an
// electrician programme holding a voucher for electricians signs in; one for cooks is refused. The
// programme's category is not its occupation.
func TestVoucherDirectedToOccupation(t *testing.T) {
	occ := func(occupation string) func(string) roster.Voucher {
		return func(h string) roster.Voucher {
			return directed(voucher("V-new", h, roster.Directed, roster.Issued), "", occupation, instHere)
		}
	}
	t.Run("matching occupation is accepted", func(t *testing.T) {
		e := decideNew(withTrainee(t, occ("electrician")), at(8, 55))
		wantKind(t, "electrician voucher at an electrician programme", e, ledger.SignIn, "")
		if e.Session != "S-elec-am" || e.Voucher != "V-new" {
			t.Errorf("got session %q voucher %q, want S-elec-am V-new", e.Session, e.Voucher)
		}
	})
	t.Run("the category is not the occupation", func(t *testing.T) {
		e := decideNew(withTrainee(t, occ("A")), at(8, 55)) // P-elec's category is A
		wantKind(t, "voucher for occupation A", e, ledger.Refusal, ledger.ReasonNotAccepted)
	})
	t.Run("another occupation is refused", func(t *testing.T) {
		e := decideNew(withTrainee(t, occ("cook")), at(8, 55))
		wantKind(t, "cook voucher at an electrician programme", e, ledger.Refusal, ledger.ReasonNotAccepted)
	})
	t.Run("matching programme and occupation is accepted", func(t *testing.T) {
		f := withTrainee(t, func(h string) roster.Voucher {
			return directed(voucher("V-new", h, roster.Directed, roster.Issued), "P-elec", "electrician", instHere)
		})
		wantKind(t, "voucher for P-elec electricians", decideNew(f, at(8, 55)), ledger.SignIn, "")
	})
	t.Run("matching occupation completes a scan at the desk", func(t *testing.T) {
		f := withTrainee(t, occ("electrician"))
		rules := testRules()
		d := rules.Decide(scan("V-new", "reg-qr", at(8, 0)), f.x, checkin.NewHistory(), clk(at(8, 0)))
		if d.Pending == nil {
			t.Fatalf("scan: got %q %q (note %q), want a pending scan", d.Event.Kind, d.Event.Reason, d.Event.Note)
		}
	})
}

// A trainee enrolled with someone else's voucher is refused at sign-in: the voucher pays for its
// holder's place only. roster.Build refuses such an enrolment; Decide checks again rather than
// trust every index it is given, so the index is changed after the build here. The refusal names
// the holder by the masked number, never the full one.
func TestSignInWithAnotherPersonsVoucher(t *testing.T) {
	for _, kind := range []roster.VoucherKind{roster.General, roster.Directed} {
		t.Run(string(kind), func(t *testing.T) {
			f := withTrainee(t, func(h string) roster.Voucher {
				v := voucher("V-new", h, kind, roster.Issued)
				if kind == roster.Directed {
					v = directed(v, "P-elec", "electrician", instHere)
				}
				return v
			})
			wantKind(t, "sign-in with the trainee's own voucher", decideNew(f, at(8, 55)), ledger.SignIn, "")
			f.x.Voucher("V-new").Holder = f.idOf(t, "T-plain")
			e := decideNew(f, at(8, 55))
			wantKind(t, "sign-in with T-plain's voucher", e, ledger.Refusal, ledger.ReasonNotHolder)
			if want := "the voucher belongs to " + roster.MaskID(f.idOf(t, "T-plain")); e.Note != want {
				t.Errorf("got note %q, want %q", e.Note, want)
			}
			if e.Trainee != "T-new" || e.Voucher != "V-new" || e.Session != "S-elec-am" {
				t.Errorf("got trainee %q voucher %q session %q, want T-new V-new S-elec-am", e.Trainee, e.Voucher, e.Session)
			}
		})
	}
}

// A second reading at the very instant of a counted event is a repeat of it: a sign-out asked for
// in the same second as the sign-in is a duplicate naming the sign-in, not a sign-out.
func TestRepeatAtTheSameInstantIsDuplicate(t *testing.T) {
	f := newFixture(t)
	rules := testRules()
	h := historyOf(signIn("in-1", "T-plain", "S-elec-am", "room1", at(8, 55)))
	rd := withIntent(fp("T-plain", "room1", at(8, 55)), drivers.SignOut)
	e := rules.Decide(rd, f.x, h, clk(rd.At)).Event
	if e.Kind != ledger.Duplicate || e.Ref != "in-1" {
		t.Errorf("got %q ref %q (note %q), want duplicate of in-1", e.Kind, e.Ref, e.Note)
	}
}

// Only the holder's wrong finger or the window's end ends a waiting scan: a refusal of another
// kind that names the same voucher (its holder refused at a classroom reader, say) leaves the scan
// waiting, and the holder still completes it.
func TestOtherRefusalsLeaveTheScanWaiting(t *testing.T) {
	s := newStation(t)
	s.wantPending(s.read(scan("V-gen", "reg-qr", at(8, 0))), checkin.Pending{Station: "reg", Code: "V-gen", Source: "reg-qr", At: at(8, 0)})
	for _, r := range []ledger.Reason{ledger.ReasonNotAccepted, ledger.ReasonLowScore, ledger.ReasonVoucherBound} {
		s.h.Add(&ledger.Event{ID: "r-" + string(r), Kind: ledger.Refusal, Reason: r, Voucher: "V-gen", Trainee: "T-gen",
			Source: "room1", Time: ledger.Clock{Wall: at(8, 0, 5), Synced: true}})
	}
	s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 0, 30))), ledger.VoucherCheckin, "", "T-gen", "V-gen")
}
