package checkin_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

const (
	benchTrainees = 10_000
	benchClasses  = 50
	benchWarm     = 3_000 // events in the History before the timed loop
)

// benchRoster is a roster of 10,000 trainees in 50 classes of one institution, each class with a
// morning and an afternoon session today at its own reader, every trainee paying with a general
// voucher.
func benchRoster(tb testing.TB) *roster.Index {
	tb.Helper()
	r := &roster.Roster{Version: 1, Issued: at(6, 0)}
	r.Institutions = []roster.Institution{institution(instHere, "3701", "00", "济南职业培训学校", true, false)}
	for c := range benchClasses {
		pid, class, dev := fmt.Sprintf("P%02d", c), fmt.Sprintf("C%02d", c), fmt.Sprintf("room%02d", c)
		r.Programmes = append(r.Programmes, programme(pid, instHere, "occupation "+pid, "A"))
		r.Sessions = append(r.Sessions,
			session(class+"-am", pid, class, at(9, 0), at(12, 0), dev),
			session(class+"-pm", pid, class, at(14, 0), at(17, 0), dev))
	}
	for i := range benchTrainees {
		id, code := fmt.Sprintf("T%05d", i), fmt.Sprintf("V%05d", i)
		tr := trainee(id, i, []string{fmt.Sprintf("CARD%05d", i)}, enrol(fmt.Sprintf("C%02d", i%benchClasses), code))
		r.Trainees = append(r.Trainees, tr)
		r.Vouchers = append(r.Vouchers, voucher(code, tr.IDNumber, roster.General, roster.Issued))
	}
	x, err := roster.Build(r, at(6, 0))
	if err != nil {
		tb.Fatalf("bench roster refused: %v", err)
	}
	return x
}

type benchInput struct {
	trainee, voucher, programme string
	rd                          drivers.Reading
}

// benchInputs are readings for random trainees at their class's reader, prepared before the loop.
func benchInputs(x *roster.Index, n int, when time.Time) []benchInput {
	rng := rand.New(rand.NewPCG(1, 2))
	in := make([]benchInput, n)
	for i := range in {
		t := &x.Trainees[rng.IntN(benchTrainees)]
		class := t.Enrolments[0].Class
		in[i] = benchInput{trainee: t.ID, voucher: t.Enrolments[0].Voucher, programme: x.Sessions(class)[0].Programme,
			rd: drivers.Reading{Source: "room" + class[1:], Method: drivers.Fingerprint, Subject: t.ID, Score: 80, At: when}}
	}
	return in
}

// benchHistory is warmed with sign-ins of the first trainees between 08:30 and 09:00.
func benchHistory(x *roster.Index) *checkin.History {
	h := checkin.NewHistory()
	for i := range benchWarm {
		t := &x.Trainees[i]
		class := t.Enrolments[0].Class
		e := signIn(fmt.Sprintf("ev-%d", i), t.ID, class+"-am", "room"+class[1:], at(8, 30).Add(time.Duration(i)*600*time.Millisecond))
		e.Voucher, e.Institution = t.Enrolments[0].Voucher, instHere
		h.Add(&e)
	}
	return h
}

// BenchmarkDecide decides one reading of a random trainee at 09:05: about a third were signed in
// while the History was warmed (a duplicate), the rest sign in now.
func BenchmarkDecide(b *testing.B) {
	x := benchRoster(b)
	h := benchHistory(x)
	rules := testRules()
	now := at(9, 5)
	c := clk(now)
	in := benchInputs(x, 1<<14, now)
	kinds := map[ledger.Kind]int{}
	for _, v := range in[:1000] {
		kinds[rules.Decide(v.rd, x, h, c).Event.Kind]++
	}
	if kinds[ledger.SignIn] == 0 || kinds[ledger.Duplicate] == 0 || kinds[ledger.Refusal] != 0 {
		b.Fatalf("bench readings decide as %v, want sign-ins and duplicates only", kinds)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d := rules.Decide(in[i&(len(in)-1)].rd, x, h, c)
		if d.Pending != nil {
			b.Fatal("pending")
		}
		i++
	}
}

var sink struct {
	t *roster.Trainee
	v *roster.Voucher
	p *roster.Programme
}

// BenchmarkMapLookup is the floor under BenchmarkDecide: the three map lookups it cannot avoid
// (trainee by ID, voucher by code, programme by ID) on the same roster and readings.
func BenchmarkMapLookup(b *testing.B) {
	x := benchRoster(b)
	in := benchInputs(x, 1<<14, at(9, 5))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		v := &in[i&(len(in)-1)]
		sink.t, sink.v, sink.p = x.Trainee(v.trainee), x.Voucher(v.voucher), x.Programme(v.programme)
		i++
	}
	if sink.t == nil || sink.v == nil || sink.p == nil {
		b.Fatal("a lookup missed")
	}
}
