package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/internal/pgtest"
	"github.com/kaoqin/kaoqin/sync/wire"
)

var cst = time.FixedZone("CST", 8*3600)

func at(hm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", "2026-11-27 "+hm, cst)
	if err != nil {
		panic(err)
	}
	return t
}

// sealOne appends one event of kind for trainee in session at wall to the device's epoch.
func (d *fakeDevice) sealOne(t testing.TB, epoch uint64, kind ledger.Kind, trainee, session string, wall time.Time, flags ...ledger.Flag) {
	seq := uint64(len(d.recs[epoch]) + 1)
	e := ledger.Event{Device: d.name, Epoch: epoch, Seq: seq, ID: ledger.NewID(wall), Kind: kind,
		Time: ledger.Clock{Wall: wall, Synced: len(flags) == 0}, Trainee: trainee, Session: session, Method: "fingerprint",
		Institution: d.institution, Flags: flags}
	r, err := ledger.Seal(&e, d.heads[epoch], d.key)
	if err != nil {
		panic(err) // these fields always encode
	}
	d.heads[epoch] = r.Hash()
	d.recs[epoch] = append(d.recs[epoch], r)
}

// The views of docs/central.md on a small known day.
func TestViews(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s, err := openPG(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	roster := []byte(`{"version":1,"sessions":[{"id":"S1","programme":"P-electrician","class":"C1",` +
		`"start":"2026-11-27T08:00:00+08:00","end":"2026-11-27T12:00:00+08:00"}]}`)
	if err := s.dataset(ctx, &dataset{name: "roster", version: 1, content: roster, sha: wire.SHA256Hex(roster)}); err != nil {
		t.Fatal(err)
	}
	a, b := newFakeDevice(t, "jn-0001-r101"), newFakeDevice(t, "jn-0001-r102")
	a.sealOne(t, 1, ledger.SignIn, "T1", "S1", at("08:02"))
	a.sealOne(t, 1, ledger.SignIn, "T2", "S1", at("08:03"))
	a.sealOne(t, 1, ledger.SignIn, "T3", "S1", at("07:40"))
	a.sealOne(t, 1, ledger.Refusal, "T4", "S1", at("08:05"))
	a.sealOne(t, 1, ledger.SignOut, "T1", "S1", at("11:32"))
	a.sealOne(t, 1, ledger.SignOut, "T3", "S1", at("12:30"), ledger.Flag("clock_unsynced"))
	b.sealOne(t, 1, ledger.SignIn, "T9", "S1", at("08:00"))
	b.sealOne(t, 2, ledger.SignIn, "T9", "S1", at("08:01"))
	w := &write{batches: []batchWrite{a.batch(1, 1, 6), b.batch(1, 1, 1), b.batch(2, 1, 1)},
		updates: []deviceUpdate{{device: a.name, institution: "0001", seen: time.Now(),
			state: &wire.State{V: 1, Device: a.name, Online: true, Epoch: 1, HeadSeq: 9, AckedThrough: 6, Backlog: 3}}}}
	if _, err := s.commit(ctx, w); err != nil {
		t.Fatal(err)
	}
	forged := newFakeDevice(t, b.name)
	forged.key, forged.pub = b.key, b.pub
	forged.sealOne(t, 1, ledger.SignIn, "T8", "S1", at("08:00"))
	if r := commitOne(t, s, forged.batch(1, 1, 1)); r.outcome != conflict {
		t.Fatalf("forged record: got %v, want conflict", r.outcome)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE devices SET last_seen = now() - interval '2 days' WHERE device = $1", b.name); err != nil {
		t.Fatal(err)
	}
	query := func(sql string) []string {
		t.Helper()
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			cols := make([]string, len(v))
			for i, c := range v {
				cols[i] = fmt.Sprint(c)
			}
			out = append(out, strings.Join(cols, "|"))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(name, sql string, want ...string) {
		t.Helper()
		got := query(sql)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s:\n got  %q\n want %q", name, got, want)
		}
	}
	check("events per institution and day",
		"SELECT institution, day::text, events, attendance, sign_ins, refusals, clock_unsynced, trainees, devices FROM events_per_institution_day",
		"0001|2026-11-27|8|7|5|1|1|5|2")
	check("class hours",
		"SELECT trainee, programme, hours::text, unpaired, doubtful FROM class_hours ORDER BY trainee",
		"T1|P-electrician|3.50|false|false", "T2|P-electrician|0|true|false", "T3|P-electrician|4.00|false|true", "T9|P-electrician|0|true|false")
	check("class hours per trainee and programme",
		"SELECT trainee, programme, days, hours::text, unpaired_days, doubtful_days FROM class_hours_per_trainee_programme ORDER BY trainee",
		"T1|P-electrician|1|3.50|0|0", "T2|P-electrician|1|0|1|0", "T3|P-electrician|1|4.00|0|1", "T9|P-electrician|1|0|1|0")
	check("device backlog",
		"SELECT device, online, acked_through, head, backlog, reported_backlog FROM device_backlog ORDER BY device",
		"jn-0001-r101|true|6|9|3|3", "jn-0001-r102|false|1|1|0|<nil>")
	check("devices silent", "SELECT device FROM devices_silent", "jn-0001-r102")
	check("chain problems", "SELECT device, epoch, problem FROM chain_problems ORDER BY problem",
		"jn-0001-r102|1|integrity alarm: conflict", "jn-0001-r102|1|new epoch")
}
