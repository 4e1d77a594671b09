package checkin_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// station is a registration desk run the way the decision loop runs it: every decision that
// records an event is added to the History with an ID, a pending scan is expected.
type station struct {
	t     *testing.T
	f     fixture
	rules checkin.Rules
	h     *checkin.History
	n     int
}

func newStation(t *testing.T) *station {
	return &station{t: t, f: newFixture(t), rules: testRules(), h: checkin.NewHistory()}
}

// read decides a reading at its own time and records the outcome.
func (s *station) read(rd drivers.Reading) checkin.Decision {
	s.t.Helper()
	d := s.rules.Decide(rd, s.f.x, s.h, clk(rd.At))
	if d.Pending != nil {
		s.h.Expect(*d.Pending)
		return d
	}
	s.n++
	d.Event.ID = "ev-" + string(rune('a'+s.n))
	s.h.Add(&d.Event)
	return d
}

func (s *station) wantEvent(d checkin.Decision, kind ledger.Kind, reason ledger.Reason, trainee, code string) {
	s.t.Helper()
	if d.Pending != nil {
		s.t.Fatalf("got pending %+v, want %q %q", *d.Pending, kind, reason)
	}
	e := d.Event
	if e.Kind != kind || e.Reason != reason {
		s.t.Fatalf("got %q %q (note %q), want %q %q", e.Kind, e.Reason, e.Note, kind, reason)
	}
	if e.Trainee != trainee || e.Voucher != code {
		s.t.Errorf("got trainee %q voucher %q, want %q %q", e.Trainee, e.Voucher, trainee, code)
	}
	wantMasked := ""
	if trainee != "" {
		wantMasked = roster.MaskID(s.f.idOf(s.t, trainee))
	}
	if e.IDMasked != wantMasked {
		s.t.Errorf("got id_masked %q, want %q", e.IDMasked, wantMasked)
	}
	for _, tr := range s.f.r.Trainees {
		if strings.Contains(e.Note, tr.IDNumber) || e.IDMasked == tr.IDNumber {
			s.t.Errorf("event of %q shows the full ID number of %s", e.Kind, tr.ID)
		}
	}
}

func (s *station) wantPending(d checkin.Decision, want checkin.Pending) {
	s.t.Helper()
	if d.Pending == nil {
		s.t.Fatalf("got %q %q (note %q), want a pending scan", d.Event.Kind, d.Event.Reason, d.Event.Note)
	}
	if d.HasEvent() {
		s.t.Errorf("a pending scan reports Record() true, want false")
	}
	if *d.Pending != want {
		s.t.Errorf("got pending %+v, want %+v", *d.Pending, want)
	}
}

func TestVoucherCheckin(t *testing.T) {
	pendingGen := checkin.Pending{Station: "reg", Code: "V-gen", Source: "reg-qr", At: at(8, 0)}

	t.Run("the holder completes the scan", func(t *testing.T) {
		s := newStation(t)
		s.wantPending(s.read(scan("V-gen", "reg-qr", at(8, 0))), pendingGen)
		// Readings that identify nobody, or fail identity, keep the scan waiting.
		s.wantEvent(s.read(fp("", "reg-fp", at(8, 0, 10))), ledger.Refusal, ledger.ReasonUnidentified, "", "")
		s.wantEvent(s.read(fp("T-nobody", "reg-fp", at(8, 0, 15))), ledger.Refusal, ledger.ReasonUnknownTrainee, "", "")
		s.wantEvent(s.read(withScore(fp("T-gen", "reg-fp", at(8, 0, 20)), 10)), ledger.Refusal, ledger.ReasonLowScore, "T-gen", "")
		d := s.read(fp("T-gen", "reg-fp", at(8, 0, 30)))
		s.wantEvent(d, ledger.VoucherCheckin, "", "T-gen", "V-gen")
		if e := d.Event; e.Institution != instHere || e.Session != "" || len(e.Flags) != 0 || !e.Kind.Counted() ||
			e.Source != "reg-fp" || e.Note != "voucher scanned at reg-qr" {
			t.Errorf("voucher check-in: got institution %q session %q flags %v counted %v source %q note %q; "+
				"want 0001, none, none, true, reg-fp, the scanning reader", e.Institution, e.Session, e.Flags, e.Kind.Counted(), e.Source, e.Note)
		}
		if inst, ok := s.h.Bound("V-gen"); !ok || inst != instHere {
			t.Errorf("Bound(V-gen) = %q, %v; want %q, true", inst, ok, instHere)
		}
		if p := s.h.Expired(at(23, 0), time.Minute); len(p) != 0 {
			t.Errorf("after check-in: got pending %+v, want none", p)
		}
		// Bound now: a second scan is refused, and so are sign-ins at another institution.
		s.wantEvent(s.read(scan("V-gen", "reg-qr", at(8, 10))), ledger.Refusal, ledger.ReasonVoucherBound, "", "V-gen")
		s.wantEvent(s.read(scan("V-gen", "desk", at(8, 11))), ledger.Refusal, ledger.ReasonVoucherBound, "", "V-gen")
		s.wantEvent(s.read(fp("T-gen", "room4", at(9, 0))), ledger.Refusal, ledger.ReasonNotAccepted, "T-gen", "V-gen")
		s.wantEvent(s.read(fp("T-gen", "room1", at(9, 1))), ledger.SignIn, "", "T-gen", "V-gen")
	})

	t.Run("another person's finger", func(t *testing.T) {
		s := newStation(t)
		s.wantPending(s.read(scan("V-gen", "reg-qr", at(8, 0))), pendingGen)
		d := s.read(fp("T-plain", "reg-fp", at(8, 0, 30)))
		s.wantEvent(d, ledger.Refusal, ledger.ReasonNotHolder, "T-plain", "V-gen")
		if want := "belongs to " + roster.MaskID(s.f.idOf(t, "T-gen")); !strings.Contains(d.Event.Note, want) {
			t.Errorf("got note %q, want one containing %q", d.Event.Note, want)
		}
		if d.Event.Institution != instHere {
			t.Errorf("got institution %q, want %q", d.Event.Institution, instHere)
		}
		// The refusal ends the scan: the holder must scan again.
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 0, 40))), ledger.Refusal, ledger.ReasonNoSession, "T-gen", "")
		if _, ok := s.h.Bound("V-gen"); ok {
			t.Errorf("Bound(V-gen) after a refusal: got true, want false")
		}
		s.wantPending(s.read(scan("V-gen", "reg-qr", at(8, 1))), checkin.Pending{Station: "reg", Code: "V-gen", Source: "reg-qr", At: at(8, 1)})
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 1, 10))), ledger.VoucherCheckin, "", "T-gen", "V-gen")
	})

	t.Run("a face completes the scan", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		d := s.read(face("T-gen", "reg-fp", at(8, 0, 30), 0.9, 0.1))
		s.wantEvent(d, ledger.VoucherCheckin, "", "T-gen", "V-gen")
		if !slices.Equal(d.Event.Flags, []ledger.Flag{ledger.FlagLowMargin}) {
			t.Errorf("got flags %v, want [low_margin]", d.Event.Flags)
		}
	})

	// A card or an operator is not the holder's biometric identity: the scan keeps waiting.
	t.Run("a card does not complete the scan", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		s.wantEvent(s.read(card("CARD-gen", "reg-fp", at(8, 0, 20))), ledger.Refusal, ledger.ReasonNoSession, "T-gen", "")
		s.wantEvent(s.read(manual("T-gen", "reg-fp", at(8, 0, 25), "op-wang", "finger worn")), ledger.Refusal, ledger.ReasonNoSession, "T-gen", "")
		if _, ok := s.h.Bound("V-gen"); ok {
			t.Fatalf("a card bound the voucher")
		}
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 0, 30))), ledger.VoucherCheckin, "", "T-gen", "V-gen")
	})

	t.Run("a reader of another station does not complete the scan", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 40)))
		s.wantEvent(s.read(fp("T-gen", "room1", at(8, 40, 30))), ledger.SignIn, "", "T-gen", "V-gen")
		if _, ok := s.h.Bound("V-gen"); ok {
			t.Errorf("a sign-in at room1 bound the voucher scanned at reg")
		}
		if p := s.h.Expired(at(8, 42, 31), 2*time.Minute); len(p) != 1 {
			t.Errorf("got %d pending scans after the sign-in elsewhere, want 1", len(p))
		}
	})

	t.Run("a reader not in any station is a station of its own", func(t *testing.T) {
		s := newStation(t)
		s.wantPending(s.read(scan("V-gen", "desk", at(8, 0))), checkin.Pending{Station: "desk", Code: "V-gen", Source: "desk", At: at(8, 0)})
		s.wantEvent(s.read(fp("T-gen", "desk", at(8, 0, 30))), ledger.VoucherCheckin, "", "T-gen", "V-gen")
	})

	t.Run("the holder after the window", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		if got := s.rules.Expire(s.h, clk(at(8, 2))); len(got) != 0 {
			t.Errorf("Expire at the window's end: got %d refusals, want 0", len(got))
		}
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 2, 1))), ledger.Refusal, ledger.ReasonNoSession, "T-gen", "")
		c := clk(at(8, 2, 1))
		got := s.rules.Expire(s.h, c)
		if len(got) != 1 {
			t.Fatalf("Expire after the window: got %d refusals, want 1", len(got))
		}
		e := got[0]
		if e.Kind != ledger.Refusal || e.Reason != ledger.ReasonVoucherTimeout || e.Voucher != "V-gen" ||
			e.Source != "reg-qr" || e.Method != string(drivers.Voucher) || e.Institution != instHere ||
			e.Time != c.Clock || e.Trainee != "" || !strings.Contains(e.Note, "within 2m0s") {
			t.Errorf("got %+v, want a voucher_checkin_timeout refusal of V-gen from reg-qr at 0001", e)
		}
		if again := s.rules.Expire(s.h, clk(at(8, 3))); len(again) != 0 {
			t.Errorf("second Expire: got %d refusals, want 0", len(again))
		}
		s.h.Add(&e) // the loop records it; nothing is left waiting
		if _, ok := s.h.Bound("V-gen"); ok {
			t.Errorf("Bound after a timeout: got true, want false")
		}
	})

	t.Run("voucher window set in the rules", func(t *testing.T) {
		s := newStation(t)
		s.rules.VoucherWindow = 30 * time.Second
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		got := s.rules.Expire(s.h, clk(at(8, 0, 31)))
		if len(got) != 1 || got[0].Reason != ledger.ReasonVoucherTimeout || !strings.Contains(got[0].Note, "within 30s") {
			t.Fatalf("Expire after 31s: got %+v, want one timeout saying 30s", got)
		}
		s.read(scan("V-gen", "reg-qr", at(8, 1)))
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 1, 30))), ledger.VoucherCheckin, "", "T-gen", "V-gen")
	})

	t.Run("several stations time out together", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		s.read(scan("V-ok", "desk", at(8, 0, 30)))
		s.read(scan("V-bound-here", "desk2", at(8, 1))) // refused, nothing waits
		got := s.rules.Expire(s.h, clk(at(8, 5)))
		var codes []string
		for _, e := range got {
			codes = append(codes, e.Voucher)
		}
		slices.Sort(codes)
		if !slices.Equal(codes, []string{"V-gen", "V-ok"}) {
			t.Errorf("got timeouts for %v, want V-gen and V-ok", codes)
		}
	})

	t.Run("a new scan at the station replaces the old one", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		s.wantPending(s.read(scan("V-ok", "reg-qr", at(8, 0, 20))), checkin.Pending{Station: "reg", Code: "V-ok", Source: "reg-qr", At: at(8, 0, 20)})
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 0, 30))), ledger.Refusal, ledger.ReasonNotHolder, "T-gen", "V-ok")
	})

	t.Run("the same voucher at two stations binds once", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		s.read(scan("V-gen", "desk", at(8, 0, 5)))
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 0, 30))), ledger.VoucherCheckin, "", "T-gen", "V-gen")
		if p := s.h.Expired(at(23, 0), time.Minute); len(p) != 0 {
			t.Errorf("got pending %+v after the check-in, want none", p)
		}
		s.wantEvent(s.read(fp("T-gen", "desk", at(8, 3))), ledger.Refusal, ledger.ReasonNoSession, "T-gen", "")
	})

	t.Run("the roster changed under the scan", func(t *testing.T) {
		s := newStation(t)
		s.read(scan("V-gen", "reg-qr", at(8, 0)))
		r := fixtureRoster()
		r.Version++
		r.Vouchers = slices.DeleteFunc(r.Vouchers, func(v roster.Voucher) bool { return v.Code == "V-gen" })
		for i := range r.Trainees {
			for j := range r.Trainees[i].Enrolments {
				if r.Trainees[i].Enrolments[j].Voucher == "V-gen" {
					r.Trainees[i].Enrolments[j].Voucher = ""
				}
			}
		}
		x, err := roster.Build(r, at(6, 0))
		if err != nil {
			t.Fatal(err)
		}
		s.f.x = x
		s.wantEvent(s.read(fp("T-gen", "reg-fp", at(8, 0, 30))), ledger.Refusal, ledger.ReasonUnknownVoucher, "T-gen", "V-gen")
	})

	t.Run("a valid directed voucher", func(t *testing.T) {
		s := newStation(t)
		s.wantPending(s.read(scan("V-ok", "reg-qr", at(8, 0))), checkin.Pending{Station: "reg", Code: "V-ok", Source: "reg-qr", At: at(8, 0)})
		s.wantEvent(s.read(fp("T-vok", "reg-fp", at(8, 0, 30))), ledger.VoucherCheckin, "", "T-vok", "V-ok")
	})
}

func TestHistoryPrune(t *testing.T) {
	f := newFixture(t)
	rules := testRules()
	in1 := signIn("in-1", "T-plain", "S-elec-am", "room1", at(8, 55))
	out1 := signOut("out-1", "T-plain", "S-elec-am", "room1", at(11, 40))
	tests := []struct {
		name   string
		prior  []ledger.Event
		before time.Time
		rd     drivers.Reading
		kind   ledger.Kind
		reason ledger.Reason
		flags  []ledger.Flag
	}{
		{"sign-in at the cut is kept", []ledger.Event{in1}, at(8, 55), fp("T-plain", "room1", at(10, 30)), ledger.Duplicate, "", none},
		{"sign-in before the cut is forgotten", []ledger.Event{in1}, at(8, 55, 1), fp("T-plain", "room1", at(10, 30)), ledger.Refusal, ledger.ReasonSignInClosed, none},
		{"signed-out attendance kept while the sign-out is recent", []ledger.Event{in1, out1}, at(11, 0), fp("T-plain", "room1", at(11, 50)), ledger.Duplicate, "", none},
		{"signed-out attendance forgotten", []ledger.Event{in1, out1}, at(11, 41), fp("T-plain", "room1", at(11, 50)), ledger.Refusal, ledger.ReasonSignInClosed, none},
		{"last event of a reader kept", []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 55))}, at(8, 55), fp("T-plain", "room1", at(8, 55, 1)), ledger.SignIn, "", flags(ledger.FlagRapidSuccession)},
		{"last event of a reader forgotten", []ledger.Event{signIn("in-2", "T-plain2", "S-elec-am", "room1", at(8, 55))}, at(8, 55, 1), fp("T-plain", "room1", at(8, 55, 1)), ledger.SignIn, "", none},
		{"last event of a trainee kept", []ledger.Event{signIn("in-a", "T-gen", "S-elec-am", "room1", at(8, 55))}, at(8, 50), fp("T-gen", "room4", at(8, 58)), ledger.SignIn, "", flags(ledger.FlagTwoDevices)},
		{"last event of a trainee forgotten", []ledger.Event{signIn("in-a", "T-gen", "S-elec-am", "room1", at(8, 55))}, at(8, 56), fp("T-gen", "room4", at(8, 58)), ledger.SignIn, "", none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := historyOf(tc.prior...)
			h.Prune(tc.before)
			d := rules.Decide(tc.rd, f.x, h, clk(tc.rd.At))
			if d.Event.Kind != tc.kind || d.Event.Reason != tc.reason || !slices.Equal(d.Event.Flags, tc.flags) {
				t.Errorf("got %q %q %v, want %q %q %v", d.Event.Kind, d.Event.Reason, d.Event.Flags, tc.kind, tc.reason, tc.flags)
			}
		})
	}

	// Voucher bindings outlive any prune; pending scans are left to Expired.
	h := historyOf(voucherCheckin("vc-1", "T-gen", "V-gen", instHere, "reg-fp", at(8, 0)))
	h.Expect(checkin.Pending{Station: "desk", Code: "V-ok", Source: "desk", At: at(8, 1)})
	h.Prune(at(8, 0).AddDate(1, 0, 0))
	if inst, ok := h.Bound("V-gen"); !ok || inst != instHere {
		t.Errorf("Bound(V-gen) after prune: got %q, %v; want %q, true", inst, ok, instHere)
	}
	if p := h.Expired(at(8, 10), 2*time.Minute); len(p) != 1 || p[0].Code != "V-ok" {
		t.Errorf("Expired after prune: got %+v, want the V-ok scan", p)
	}
	if _, ok := h.Bound("V-ok"); ok {
		t.Errorf("Bound(V-ok): got true, want false")
	}
}
