package checkin_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// The fixture is one training day, 2 March 2026, in China Standard Time.
var cst = time.FixedZone("CST", 8*3600)

// at is a time of the fixture day; sec is optional.
func at(hh, mm int, sec ...int) time.Time {
	s := 0
	if len(sec) > 0 {
		s = sec[0]
	}
	return time.Date(2026, 3, 2, hh, mm, s, 0, cst)
}

// Institutions of the fixture. This box serves instHere.
const (
	instHere    = "0001" // accepts vouchers
	instNoVouch = "0002" // not on the list of institutions taking vouchers
	instRetired = "0003" // stopped
	instOther   = "0004" // accepts vouchers, elsewhere
)

// idNumber generates the n-th synthetic resident ID number: a Jinan region code, a birth date in
// 1980-2007 and a sequence, completed with roster.CheckChar. No real person's number is written here.
func idNumber(n int) string {
	return roster.WithCheckChar(fmt.Sprintf("370102%04d%02d%02d%03d", 1980+n%28, 1+n/28%12, 1+n/336%28, n%1000))
}

func institution(code, city, county, name string, acceptsVouchers, retired bool) roster.Institution {
	return roster.Institution{Code: code, City: city, County: county, Name: name, AcceptsVouchers: acceptsVouchers, Retired: retired}
}

func programme(id, inst, occupation, category string) roster.Programme {
	return roster.Programme{ID: id, Institution: inst, Occupation: occupation, Category: category, Hours: 40}
}

func session(id, prog, class string, start, end time.Time, devices ...string) roster.Session {
	return roster.Session{ID: id, Programme: prog, Class: class, Start: start, End: end, Devices: devices}
}

func enrol(class, voucher string) roster.Enrolment {
	return roster.Enrolment{Class: class, Voucher: voucher}
}

func trainee(id string, n int, cards []string, enr ...roster.Enrolment) roster.Trainee {
	return roster.Trainee{ID: id, Name: "学员 " + id, IDNumber: idNumber(n), Enrolments: enr, Cards: cards,
		Fingerprints: []roster.Fingerprint{{Finger: "right-index", Template: []byte{0x03, 0x01, byte(n)}}}}
}

// voucher is valid all of 2026 unless changed.
func voucher(code, holder string, kind roster.VoucherKind, status roster.VoucherStatus) roster.Voucher {
	return roster.Voucher{Code: code, Holder: holder, Kind: kind, Status: status,
		ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, cst), ValidTo: time.Date(2026, 12, 31, 23, 59, 59, 0, cst)}
}

func directed(v roster.Voucher, prog, occupation string, insts ...string) roster.Voucher {
	v.Programme, v.Occupation, v.Institutions = prog, occupation, insts
	return v
}

// fixtureRoster is the roster every checkin test starts from. Sessions:
//
//	S-elec-am  C-elec   09:00-12:00  0001, all devices, default windows
//	S-elec-pm  C-elec   14:00-17:00  0001, all devices (listed first)
//	S-bake     C-bake   09:00-12:00  0001, late after 5m, sign-in closes after 20m
//	S-cook     C-cook   09:00-12:00  0002 (takes no vouchers), device room2 only
//	S-weld     C-weld   09:00-12:00  0003 (retired)
//	S-elec4    C-elec4  09:00-12:00  0004, device room4 only
//
// Trainees T-plain and T-plain2 have no voucher; T-v* each hold a voucher in a different state;
// T-gen holds the general voucher V-gen used for voucher check-in.
func fixtureRoster() *roster.Roster {
	r := &roster.Roster{Version: 7, Issued: at(6, 0)}
	r.Institutions = []roster.Institution{
		institution(instHere, "3701", "00", "济南职业培训学校", true, false),
		institution(instNoVouch, "3701", "02", "历下技能中心", false, false),
		institution(instRetired, "3702", "00", "青岛旧培训中心", true, true),
		institution(instOther, "3700", "00", "省级培训基地", true, false),
	}
	r.Programmes = []roster.Programme{
		programme("P-elec", instHere, "electrician", "A"),
		programme("P-bake", instHere, "baker", "A"),
		programme("P-cook", instNoVouch, "cook", "B"),
		programme("P-weld", instRetired, "welder", "A"),
		programme("P-elec4", instOther, "electrician", "C"),
	}
	bake := session("S-bake", "P-bake", "C-bake", at(9, 0), at(12, 0))
	bake.LateAfter, bake.SignInCloses = roster.Duration(5*time.Minute), roster.Duration(20*time.Minute)
	r.Sessions = []roster.Session{
		session("S-elec-pm", "P-elec", "C-elec", at(14, 0), at(17, 0)),
		session("S-elec-am", "P-elec", "C-elec", at(9, 0), at(12, 0)),
		bake,
		session("S-cook", "P-cook", "C-cook", at(9, 0), at(12, 0), "room2"),
		session("S-weld", "P-weld", "C-weld", at(9, 0), at(12, 0)),
		session("S-elec4", "P-elec4", "C-elec4", at(9, 0), at(12, 0), "room4"),
	}

	n := 0
	add := func(id string, cards []string, enr ...roster.Enrolment) string {
		n++
		r.Trainees = append(r.Trainees, trainee(id, n, cards, enr...))
		return r.Trainees[len(r.Trainees)-1].IDNumber
	}
	add("T-plain", []string{"CARD-1"}, enrol("C-elec", ""))
	add("T-plain2", nil, enrol("C-elec", ""))
	add("T-cook", nil, enrol("C-cook", ""))
	add("T-weld", nil, enrol("C-weld", ""))
	add("T-bake", nil, enrol("C-bake", ""))

	vs := []struct {
		trainee string
		class   string
		v       func(holder string) roster.Voucher
	}{
		{"T-vok", "C-elec", func(h string) roster.Voucher {
			return directed(voucher("V-ok", h, roster.Directed, roster.Issued), "P-elec", "", instHere)
		}},
		{"T-vrev", "C-elec", func(h string) roster.Voucher {
			return directed(voucher("V-revoked", h, roster.Directed, roster.Revoked), "P-elec", "", instHere)
		}},
		{"T-vused", "C-elec", func(h string) roster.Voucher {
			return directed(voucher("V-used", h, roster.Directed, roster.Used), "P-elec", "", instHere)
		}},
		{"T-vnotyet", "C-elec", func(h string) roster.Voucher {
			v := voucher("V-notyet", h, roster.General, roster.Issued)
			v.ValidFrom = time.Date(2026, 4, 1, 0, 0, 0, 0, cst)
			return v
		}},
		{"T-vexp", "C-elec", func(h string) roster.Voucher {
			v := voucher("V-expired", h, roster.General, roster.Issued)
			v.ValidTo = time.Date(2026, 3, 1, 23, 59, 59, 0, cst)
			return v
		}},
		{"T-vbother", "C-elec", func(h string) roster.Voucher {
			v := voucher("V-bound-other", h, roster.General, roster.Bound)
			v.BoundTo = instOther
			return v
		}},
		{"T-vbhere", "C-elec", func(h string) roster.Voucher {
			v := voucher("V-bound-here", h, roster.General, roster.Bound)
			v.BoundTo = instHere
			return v
		}},
		{"T-vprog", "C-elec", func(h string) roster.Voucher {
			return directed(voucher("V-other-prog", h, roster.Directed, roster.Issued), "P-bake", "", instHere)
		}},
		{"T-vocc", "C-elec", func(h string) roster.Voucher {
			return directed(voucher("V-occ", h, roster.Directed, roster.Issued), "", "cook", instHere)
		}},
		{"T-vinst", "C-elec", func(h string) roster.Voucher {
			return directed(voucher("V-inst4", h, roster.General, roster.Issued), "", "", instOther)
		}},
		{"T-vnoacc", "C-cook", func(h string) roster.Voucher { return voucher("V-noacc", h, roster.General, roster.Issued) }},
		// A directed voucher for a programme of 0004 that also names 0001: 0001 does not run it.
		{"T-vdir4", "C-elec4", func(h string) roster.Voucher {
			return directed(voucher("V-dir4", h, roster.Directed, roster.Issued), "P-elec4", "", instHere, instOther)
		}},
	}
	for _, c := range vs {
		v := c.v(idNumber(n + 1))
		add(c.trainee, nil, enrol(c.class, v.Code))
		r.Vouchers = append(r.Vouchers, v)
	}
	// T-gen is enrolled at 0004 (room4 only) and here, both paid by the general voucher V-gen.
	h := add("T-gen", []string{"CARD-gen"}, enrol("C-elec4", "V-gen"), enrol("C-elec", "V-gen"))
	r.Vouchers = append(r.Vouchers, voucher("V-gen", h, roster.General, roster.Issued))
	return r
}

type fixture struct {
	r *roster.Roster
	x *roster.Index
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	r := fixtureRoster()
	x, err := roster.Build(r, at(6, 0))
	if err != nil {
		t.Fatalf("fixture roster refused: %v", err)
	}
	return fixture{r: r, x: x}
}

// idOf is the full ID number of a trainee of the fixture.
func (f fixture) idOf(t testing.TB, trainee string) string {
	t.Helper()
	tr := f.x.Trainee(trainee)
	if tr == nil {
		t.Fatalf("no trainee %q in the fixture", trainee)
	}
	return tr.IDNumber
}

// testRules are the rules of the box at instHere: windows at their defaults (zero fields), score
// thresholds for fingerprints and faces, and a registration station of a QR scanner and a
// fingerprint reader.
func testRules() checkin.Rules {
	return checkin.Rules{
		Institution: instHere,
		MinScore:    map[drivers.Method]float64{drivers.Fingerprint: 50, drivers.Face: 0.6},
		MinMargin:   map[drivers.Method]float64{drivers.Face: 0.05},
		DoubtMargin: map[drivers.Method]float64{drivers.Face: 0.15},
		Stations:    map[string]string{"reg-qr": "reg", "reg-fp": "reg"},
	}
}

func clk(wall time.Time) checkin.Clock {
	return checkin.Clock{Clock: ledger.Clock{Wall: wall, Mono: int64(wall.Sub(at(0, 0))), Boot: "boot-1", Synced: true}}
}

// Readings.

func fp(subject, source string, when time.Time) drivers.Reading {
	return drivers.Reading{Source: source, Method: drivers.Fingerprint, Subject: subject, Score: 80, At: when, Detail: "page 5"}
}

func face(subject, source string, when time.Time, score, margin float64) drivers.Reading {
	return drivers.Reading{Source: source, Method: drivers.Face, Subject: subject, Score: score, Margin: margin, At: when}
}

func card(number, source string, when time.Time) drivers.Reading {
	return drivers.Reading{Source: source, Method: drivers.Card, Subject: number, At: when}
}

func manual(subject, source string, when time.Time, operator, reason string) drivers.Reading {
	return drivers.Reading{Source: source, Method: drivers.Manual, Subject: subject, At: when, Operator: operator, Reason: reason}
}

func scan(code, source string, when time.Time) drivers.Reading {
	return drivers.Reading{Source: source, Method: drivers.Voucher, Subject: code, At: when}
}

func withIntent(rd drivers.Reading, in drivers.Intent) drivers.Reading {
	rd.Intent = in
	return rd
}

func withScore(rd drivers.Reading, score float64) drivers.Reading {
	rd.Score = score
	return rd
}

// Prior events, as the store would have recorded them.

func event(kind ledger.Kind, id, trainee, session, source string, when time.Time) ledger.Event {
	return ledger.Event{ID: id, Kind: kind, Trainee: trainee, Session: session, Source: source,
		Method: string(drivers.Fingerprint), Time: ledger.Clock{Wall: when, Synced: true}}
}

func signIn(id, trainee, session, source string, when time.Time) ledger.Event {
	return event(ledger.SignIn, id, trainee, session, source, when)
}

func signOut(id, trainee, session, source string, when time.Time) ledger.Event {
	return event(ledger.SignOut, id, trainee, session, source, when)
}

func duplicateOf(id, trainee, session, source string, when time.Time) ledger.Event {
	return event(ledger.Duplicate, id, trainee, session, source, when)
}

func voucherCheckin(id, trainee, code, inst, source string, when time.Time) ledger.Event {
	e := event(ledger.VoucherCheckin, id, trainee, "", source, when)
	e.Voucher, e.Institution = code, inst
	return e
}

func historyOf(events ...ledger.Event) *checkin.History {
	h := checkin.NewHistory()
	for i := range events {
		h.Add(&events[i])
	}
	return h
}
