package ingest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// A batch verified and decoded before the transaction (prepare) is stored, refused, held or
// alarmed exactly as one the store verifies inside it: the same outcomes, chain ends, errors,
// alarms and stored rows, in both stores. Each step runs against two fresh stores of a kind, one
// given prepared batches, the other raw ones.
func TestStorePreparedBatchesAsRaw(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			withPre, raw := k.open(t), k.open(t)
			d := newFakeDevice(t, "jn-0001-r101")
			d.seal(t, 3, 25)

			// A fork: the device's key, the right seqs, a predecessor other than the held one.
			fork := &fakeDevice{name: d.name, institution: d.institution, pub: d.pub, key: d.key,
				heads: map[uint64][32]byte{3: d.recs[3][23].Hash()}, recs: map[uint64][]ledger.Record{3: append([]ledger.Record{}, d.recs[3][:25]...)}}
			fork.seal(t, 3, 5) // 26..30, record 26 linked to record 24
			// A rewrite: other bytes from seq 20 on, signed by the same key.
			rewrite := &fakeDevice{name: d.name, institution: d.institution, pub: d.pub, key: d.key,
				heads: map[uint64][32]byte{3: d.recs[3][18].Hash()}, recs: map[uint64][]ledger.Record{3: append([]ledger.Record{}, d.recs[3][:19]...)}}
			rewrite.seal(t, 3, 8) // 20..27
			d.seal(t, 3, 10)      // 26..35, the honest continuation

			flipped := func(b batchWrite, i, at int) batchWrite {
				r := append(ledger.Record(nil), b.recs[i]...)
				r[len(r)+at] ^= 1
				b.recs = append(append(append([]ledger.Record{}, b.recs[:i]...), r), b.recs[i+1:]...)
				return b
			}
			steps := []struct {
				what     string
				b        batchWrite
				want     outcome
				end      uint64
				verifies bool // whether it verifies on its own (prepare's verdict)
			}{
				{"the first batch", d.batch(3, 1, 10), stored, 10, true},
				{"ahead of a gap", d.batch(3, 16, 20), gap, 10, true},
				{"the next batch", d.batch(3, 11, 15), stored, 15, true},
				{"the one held back, again", d.batch(3, 16, 20), stored, 20, true},
				{"a duplicate", d.batch(3, 11, 20), duplicate, 20, true},
				{"overlapping the end", d.batch(3, 18, 25), stored, 25, true},
				{"a fork, signed by the device, not linked to the head held", fork.batch(3, 26, 30), refused, 25, true},
				{"other bytes under held seqs", rewrite.batch(3, 20, 27), conflict, 25, true},
				{"a flipped byte in a new record's body", flipped(d.batch(3, 26, 30), 2, -3), refused, 25, false},
				{"a flipped byte in the anchoring signature", flipped(d.batch(3, 26, 30), 4, -len(d.recs[3][29])+1), refused, 25, false},
				{"a flipped byte in the first new record, overlapping the end", flipped(d.batch(3, 24, 30), 2, -5), refused, 25, false},
				{"the honest continuation", d.batch(3, 26, 35), stored, 35, true},
			}
			for _, st := range steps {
				ps := []batchWrite{st.b}
				prepare(ps)
				if ps[0].pre == nil || ps[0].pre.ok != st.verifies {
					t.Fatalf("%s: prepared %+v, want verified on its own: %v", st.what, ps[0].pre, st.verifies)
				}
				if st.verifies && len(ps[0].pre.cols) != len(st.b.recs) {
					t.Fatalf("%s: got %d decoded records, want %d", st.what, len(ps[0].pre.cols), len(st.b.recs))
				}
				got := commitOne(t, withPre, ps[0])
				want := commitOne(t, raw, st.b)
				expect(t, st.what+" (prepared)", got, st.want, st.end)
				expect(t, st.what+" (raw)", want, st.want, st.end)
				if got.end != want.end || got.stored != want.stored || fmt.Sprint(got.err) != fmt.Sprint(want.err) {
					t.Fatalf("%s: prepared got %+v, raw %+v; want the same", st.what, got, want)
				}
			}
			ga, err := withPre.alarms(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			wa, err := raw.alarms(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(ga) != 5 || !reflect.DeepEqual(ga, wa) {
				t.Fatalf("alarms: prepared %+v, raw %+v; want the same five", ga, wa)
			}
			wantSeqs(t, withPre, DeviceEpoch{d.name, 3}, 35)
			if p, ok := withPre.(*pgStore); ok {
				if g, w := eventRows(t, p), eventRows(t, raw.(*pgStore)); len(g) != 36 || !reflect.DeepEqual(g, w) {
					t.Fatalf("events: prepared %v, raw %v; want the same 35 rows and their evidence", g, w)
				}
			}
		})
	}
}

// eventRows are the stored events' columns and the hashes of their records, in order, and the
// number of evidence rows.
func eventRows(t *testing.T, s *pgStore) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT device, epoch, seq, institution, kind, trainee, session, method,
		flags, time, encode(sha256(record), 'hex') FROM events ORDER BY device, epoch, seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var ev int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM evidence").Scan(&ev); err != nil {
		t.Fatal(err)
	}
	return append(out, fmt.Sprintf("%d evidence rows", ev))
}
