// Package demo makes the data of the demonstration classroom that `make run` sets up, and that
// end-to-end tests use: a roster whose session is open now, whose trainees' fingerprint templates
// are the ones the emulated module (drivers/zfm/emu) makes for their fingers, and whose vouchers
// cover every way a voucher check-in can go.
package demo

import (
	"fmt"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

// Institution is the demo classroom's institution code.
const Institution = "0001"

// Finger is the emulator finger ID of a trainee's enrolled right index finger ("T001/right-index"),
// which `place` and `touch` in an emulator script name.
func Finger(trainee string) string { return trainee + "/right-index" }

// TraineeID is the ID of the n-th demo trainee, from 1.
func TraineeID(n int) string { return fmt.Sprintf("T%03d", n) }

// VoucherCode is the voucher of the n-th trainee.
func VoucherCode(n int) string { return fmt.Sprintf("SD2026-%06d", n) }

// RegistrationVoucher is held by the last trainee, not yet checked in: the voucher check-in demo.
const RegistrationVoucher = "SD2026-REG001"

// IDNumber is a synthetic resident ID number (GB 11643 check digit, birth date in 1990-2005).
func IDNumber(n int) string {
	return roster.WithCheckChar(fmt.Sprintf("370102%04d%02d%02d%03d", 1990+n%16, 1+n%12, 1+n%28, n%1000))
}

// The demo classroom's operator accounts and their secrets (PINs): one per role, and a second
// teacher who confirms manual sign-ins above a session's limit.
const (
	Teacher             = "王老师"
	TeacherSecret       = "246810"
	SecondTeacher       = "赵老师"
	SecondTeacherSecret = "975310"
	Registrar           = "李登记"
	RegistrarSecret     = "135790"
	Admin               = "张管理"
	AdminSecret         = "112233"
)

// operators hashes the demo accounts once (argon2id is slow on purpose).
var operators = sync.OnceValue(func() []roster.Operator {
	var out []roster.Operator
	for _, a := range []struct {
		name, secret string
		role         roster.Role
	}{{Teacher, TeacherSecret, roster.Teaching}, {SecondTeacher, SecondTeacherSecret, roster.Teaching},
		{Registrar, RegistrarSecret, roster.Registration}, {Admin, AdminSecret, roster.Administration}} {
		o, err := roster.NewOperator(a.name, a.role, a.secret)
		if err != nil {
			panic(err) // the system's random source failed
		}
		out = append(out, o)
	}
	return out
})

// Operators are the demo classroom's operator accounts.
func Operators() []roster.Operator { return append([]roster.Operator(nil), operators()...) }

// Roster returns a roster of n trainees (n >= 2) in class C-DEMO, whose session started 5 minutes
// before now and lasts 3 hours, at version. Trainee n holds RegistrationVoucher, not yet checked in.
func Roster(now time.Time, n int, version uint64) *roster.Roster {
	start := now.Add(-5 * time.Minute).Truncate(time.Minute)
	r := &roster.Roster{
		Version: version,
		Issued:  now,
		Institutions: []roster.Institution{
			{Code: Institution, City: "3701", County: "02", Name: "济南市历下区职业技能培训学校", AcceptsVouchers: true},
			{Code: "0002", City: "3702", County: "00", Name: "青岛市技能培训中心", AcceptsVouchers: true},
		},
		Programmes: []roster.Programme{{ID: "P-ELEC", Institution: Institution, Occupation: "电工", Category: "A", Hours: 80}},
		Sessions: []roster.Session{{ID: "S-" + start.Format("20060102-1504"), Programme: "P-ELEC", Class: "C-DEMO",
			Start: start, End: start.Add(3 * time.Hour), LateAfter: roster.Duration(10 * time.Minute)}},
		Operators: Operators(),
	}
	from, to := now.AddDate(0, -1, 0), now.AddDate(0, 6, 0)
	for i := 1; i <= n; i++ {
		id := TraineeID(i)
		t := roster.Trainee{ID: id, Name: fmt.Sprintf("学员%02d", i), IDNumber: IDNumber(i),
			Fingerprints: []roster.Fingerprint{{Finger: "right-index", Template: emu.Template(Finger(id))}},
			Cards:        []string{fmt.Sprintf("12:%05d", 34560+i)}}
		v := roster.Voucher{Code: VoucherCode(i), Holder: t.IDNumber, Kind: roster.Directed, Status: roster.Bound,
			Programme: "P-ELEC", Institutions: []string{Institution}, BoundTo: Institution, ValidFrom: from, ValidTo: to}
		if i == n {
			v = roster.Voucher{Code: RegistrationVoucher, Holder: t.IDNumber, Kind: roster.General, Status: roster.Issued,
				ValidFrom: from, ValidTo: to}
		} else {
			t.Enrolments = []roster.Enrolment{{Class: "C-DEMO", Voucher: v.Code}}
		}
		r.Trainees = append(r.Trainees, t)
		r.Vouchers = append(r.Vouchers, v)
	}
	return r
}
