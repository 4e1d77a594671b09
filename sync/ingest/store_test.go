package ingest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/internal/pgtest"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// storeKinds are the stores every contract test runs against: the same behaviour is required of
// the bbolt file and of PostgreSQL.
var storeKinds = []struct {
	name string
	open func(t *testing.T) store
}{
	{"bbolt", func(t *testing.T) store {
		s, err := openBolt(filepath.Join(t.TempDir(), "ingest.db"), false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.close() })
		return s
	}},
	{"postgres", func(t *testing.T) store {
		s, err := openPG(context.Background(), pgtest.DB(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.close() })
		return s
	}},
}

func eachStore(t *testing.T, fn func(t *testing.T, s store)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k.open(t)) })
	}
}

// fakeDevice seals chains as a device does.
type fakeDevice struct {
	name, institution string
	pub               ed25519.PublicKey
	key               ed25519.PrivateKey
	heads             map[uint64][32]byte
	recs              map[uint64][]ledger.Record // per epoch, seq-1 indexed
}

func newFakeDevice(t testing.TB, name string) *fakeDevice {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeDevice{name: name, institution: "0001", pub: pub, key: key, heads: map[uint64][32]byte{}, recs: map[uint64][]ledger.Record{}}
}

// seal appends n events to epoch and returns the device's whole chain of that epoch.
func (d *fakeDevice) seal(t testing.TB, epoch uint64, n int) []ledger.Record {
	for i := 0; i < n; i++ {
		seq := uint64(len(d.recs[epoch]) + 1)
		e := ledger.Event{Device: d.name, Epoch: epoch, Seq: seq, ID: ledger.NewID(time.Now()), Kind: ledger.SignIn,
			Time:    ledger.Clock{Wall: time.Date(2026, 11, 27, 8, 0, int(seq%60), 0, time.FixedZone("CST", 8*3600)), Synced: true},
			Trainee: fmt.Sprintf("T%04d", seq), Session: "S1", Method: "fingerprint", Institution: d.institution,
			Flags: []ledger.Flag{ledger.Flag("late")}, Evidence: []ledger.Photo{{SHA256: strings.Repeat("ab", 32), Kind: "crop", Size: 1234}}}
		r, err := ledger.Seal(&e, d.heads[epoch], d.key)
		if err != nil {
			t.Fatal(err)
		}
		d.heads[epoch] = r.Hash()
		d.recs[epoch] = append(d.recs[epoch], r)
	}
	return d.recs[epoch]
}

// batch is seqs first..last of epoch.
func (d *fakeDevice) batch(epoch, first, last uint64) batchWrite {
	return batchWrite{device: d.name, institution: d.institution, pub: d.pub, epoch: epoch, first: first,
		recs: d.recs[epoch][first-1 : last]}
}

func commitOne(t *testing.T, s store, b batchWrite) batchResult {
	t.Helper()
	res, err := s.commit(context.Background(), &write{batches: []batchWrite{b}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("got %d results, want 1", len(res))
	}
	return res[0]
}

func expect(t *testing.T, what string, r batchResult, o outcome, end uint64) {
	t.Helper()
	if r.outcome != o || r.end.Seq != end {
		t.Fatalf("%s: got %v with the chain at %d (%v), want %v at %d", what, r.outcome, r.end.Seq, r.err, o, end)
	}
}

// stored returns the seqs a store holds per device epoch, failing on a seq held twice.
func storedSeqs(t *testing.T, s store) map[DeviceEpoch][]uint64 {
	t.Helper()
	out := map[DeviceEpoch][]uint64{}
	err := s.scan(context.Background(), func(d string, e, seq uint64, _ ledger.Record) error {
		de := DeviceEpoch{d, e}
		if n := len(out[de]); n > 0 && out[de][n-1] >= seq {
			return fmt.Errorf("%s epoch %d: seq %d after %d", d, e, seq, out[de][n-1])
		}
		out[de] = append(out[de], seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantSeqs(t *testing.T, s store, de DeviceEpoch, n int) {
	t.Helper()
	got := storedSeqs(t, s)[de]
	if len(got) != n || n > 0 && (got[0] != 1 || got[n-1] != uint64(n)) {
		t.Fatalf("%v: got seqs %v, want 1..%d once each", de, got, n)
	}
}

func TestStoreChain(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		d := newFakeDevice(t, "jn-0001-r101")
		d.seal(t, 7, 30)
		expect(t, "first batch", commitOne(t, s, d.batch(7, 1, 10)), stored, 10)
		expect(t, "next batch", commitOne(t, s, d.batch(7, 11, 20)), stored, 20)
		expect(t, "the same batch again", commitOne(t, s, d.batch(7, 11, 20)), duplicate, 20)
		expect(t, "an overlapping batch", commitOne(t, s, d.batch(7, 15, 25)), stored, 25)
		wantSeqs(t, s, DeviceEpoch{d.name, 7}, 25)
		devs, err := s.devices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := devs[d.name]
		if got == nil || got.rec.Institution != "0001" || got.rec.Epoch != 7 || got.chains[7].Seq != 25 ||
			got.chains[7].Head != d.recs[7][24].Hash() || got.rec.HeadSeen != 25 {
			t.Fatalf("device: got %+v, want institution 0001, epoch 7, chain at 25 with the head of record 25, head seen 25", got)
		}
	})
}

// Two batches of one device in one transaction, the second continuing the first; and one
// overlapping what the same transaction inserted.
func TestStoreBatchesInOneTransaction(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		d := newFakeDevice(t, "jn-0001-r101")
		d.seal(t, 1, 30)
		res, err := s.commit(context.Background(), &write{batches: []batchWrite{d.batch(1, 1, 10), d.batch(1, 11, 20), d.batch(1, 5, 25)}})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, "first", res[0], stored, 10)
		expect(t, "second", res[1], stored, 20)
		expect(t, "overlapping", res[2], stored, 25)
		wantSeqs(t, s, DeviceEpoch{d.name, 1}, 25)
	})
}

// A batch that arrives before its predecessor is not stored; it is once the predecessor is.
func TestStoreOutOfOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		d := newFakeDevice(t, "jn-0001-r101")
		d.seal(t, 1, 30)
		expect(t, "batch 2 first", commitOne(t, s, d.batch(1, 11, 20)), gap, 0)
		wantSeqs(t, s, DeviceEpoch{d.name, 1}, 0)
		res, err := s.commit(context.Background(), &write{batches: []batchWrite{d.batch(1, 21, 30), d.batch(1, 1, 10), d.batch(1, 11, 20)}})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, "batch 3, before 1", res[0], gap, 0)
		expect(t, "batch 1", res[1], stored, 10)
		expect(t, "batch 2 again", res[2], stored, 20)
		expect(t, "batch 3 again", commitOne(t, s, d.batch(1, 21, 30)), stored, 30)
		wantSeqs(t, s, DeviceEpoch{d.name, 1}, 30)
	})
}

// A record other than the one held under its seq is an integrity alarm and stores nothing; so
// is a batch that does not verify.
func TestStoreIntegrityAlarms(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		d := newFakeDevice(t, "jn-0001-r101")
		d.seal(t, 1, 10)
		expect(t, "batch", commitOne(t, s, d.batch(1, 1, 10)), stored, 10)

		// The same key re-creates the epoch with other content (a box rewritten by its owner).
		forger := &fakeDevice{name: d.name, institution: d.institution, pub: d.pub, key: d.key, heads: map[uint64][32]byte{}, recs: map[uint64][]ledger.Record{}}
		forger.seal(t, 1, 12)
		// Seqs 5-7 as held, then the forger's 8-12: the alarm names seq 8, the first that differs.
		mixed := d.batch(1, 5, 7)
		mixed.recs = append(append([]ledger.Record{}, mixed.recs...), forger.recs[1][7:12]...)
		r := commitOne(t, s, mixed)
		expect(t, "other bytes under held seqs", r, conflict, 10)

		// A flipped byte in a new record.
		d.seal(t, 1, 5)
		b := d.batch(1, 11, 15)
		bad := append(ledger.Record(nil), b.recs[2]...)
		bad[len(bad)-3] ^= 1
		b.recs = append(append(append([]ledger.Record{}, b.recs[:2]...), bad), b.recs[3:]...)
		expect(t, "a flipped byte", commitOne(t, s, b), refused, 10)
		// And in the batch's first and last records: each named as received.
		var ends []ledger.Record
		for _, i := range []int{0, 4} {
			b := d.batch(1, 11, 15)
			e := append(ledger.Record(nil), b.recs[i]...)
			e[len(e)-3] ^= 1
			b.recs = append(append(append([]ledger.Record{}, b.recs[:i]...), e), b.recs[i+1:]...)
			expect(t, fmt.Sprintf("a flipped byte in seq %d", 11+i), commitOne(t, s, b), refused, 10)
			ends = append(ends, e)
		}
		wantSeqs(t, s, DeviceEpoch{d.name, 1}, 10)

		alarms, err := s.alarms(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms) != 4 || alarms[2].seq != 11 || alarms[2].received != wire.SHA256Hex(ends[0]) ||
			alarms[3].seq != 15 || alarms[3].received != wire.SHA256Hex(ends[1]) {
			t.Fatalf("alarms: got %+v, want the third and fourth at seqs 11 and 15, naming the records received", alarms)
		}
		if alarms[0].kind != "conflict" || alarms[0].seq != 8 || alarms[0].held != wire.SHA256Hex(d.recs[1][7]) ||
			alarms[0].received != wire.SHA256Hex(forger.recs[1][7]) ||
			alarms[1].kind != "unverified" || alarms[1].seq != 13 || alarms[1].received != wire.SHA256Hex(bad) {
			t.Fatalf("alarms: got %+v, want a conflict at seq 8 naming the held and the received record, then an unverified record at seq 13 naming the one received", alarms)
		}
		expect(t, "the honest batch", commitOne(t, s, d.batch(1, 11, 15)), stored, 15)
	})
}

// A device that replays an old epoch: its records are duplicates (acked again at that epoch's
// end), other bytes are a conflict, and the device's epoch stays the newest.
func TestStoreOldEpochReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		d := newFakeDevice(t, "jn-0001-r101")
		d.seal(t, 100, 10)
		d.seal(t, 200, 5)
		expect(t, "epoch 100", commitOne(t, s, d.batch(100, 1, 10)), stored, 10)
		expect(t, "epoch 200", commitOne(t, s, d.batch(200, 1, 5)), stored, 5)
		expect(t, "epoch 100 replayed", commitOne(t, s, d.batch(100, 1, 10)), duplicate, 10)
		d.seal(t, 100, 3) // an old epoch that goes on (the tail was never acked) is stored
		expect(t, "epoch 100 continued", commitOne(t, s, d.batch(100, 9, 13)), stored, 13)
		devs, err := s.devices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := devs[d.name]; got.rec.Epoch != 200 || got.chains[100].Seq != 13 || got.chains[200].Seq != 5 {
			t.Fatalf("device: got epoch %d, chains %v; want epoch 200, chains 100:13 200:5", got.rec.Epoch, got.chains)
		}
		wantSeqs(t, s, DeviceEpoch{d.name, 100}, 13)
		wantSeqs(t, s, DeviceEpoch{d.name, 200}, 5)
	})
}

// A device registered under one institution cannot store under another.
func TestStoreInstitution(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		d := newFakeDevice(t, "jn-0001-r101")
		d.seal(t, 1, 4)
		expect(t, "batch", commitOne(t, s, d.batch(1, 1, 2)), stored, 2)
		b := d.batch(1, 3, 4)
		b.institution = "0002"
		if r := commitOne(t, s, b); r.outcome != refused || !strings.Contains(fmt.Sprint(r.err), "0001") {
			t.Fatalf("got %v (%v), want refused naming institution 0001", r.outcome, r.err)
		}
		wantSeqs(t, s, DeviceEpoch{d.name, 1}, 2)
	})
}

// State, applied and last contact are kept; command IDs increase.
func TestStoreDeviceUpdatesAndCommands(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Millisecond)
		st := &wire.State{V: 1, Device: "jn-0001-r101", Online: true, Epoch: 1, HeadSeq: 40, AckedThrough: 30, Backlog: 10,
			DatasetVersions: map[string]uint64{"roster": 3}}
		ap := &wire.Applied{V: 1, Dataset: "roster", Version: 3, SHA256: strings.Repeat("0", 64), Status: wire.StatusApplied}
		_, err := s.commit(ctx, &write{updates: []deviceUpdate{{device: "jn-0001-r101", institution: "0001", seen: now, state: st, applied: ap}}})
		if err != nil {
			t.Fatal(err)
		}
		devs, err := s.devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := devs["jn-0001-r101"]
		if got == nil || !got.rec.LastSeen.Equal(now) || got.rec.State == nil || got.rec.State.Backlog != 10 ||
			got.rec.Applied["roster"].Version != 3 || got.rec.HeadSeen != 40 {
			t.Fatalf("device: got %+v, want last seen %v, state with backlog 10, roster 3 applied, head seen 40", got, now)
		}
		// Members of a group commit in any order: an older state committed later does not win.
		older := &wire.State{V: 1, Device: "jn-0001-r101", Online: true, Epoch: 1, HeadSeq: 35, AckedThrough: 20, Backlog: 15}
		if _, err := s.commit(ctx, &write{updates: []deviceUpdate{{device: "jn-0001-r101", institution: "0001", seen: now.Add(-time.Second), state: older}}}); err != nil {
			t.Fatal(err)
		}
		if devs, err = s.devices(ctx); err != nil {
			t.Fatal(err)
		}
		if got := devs["jn-0001-r101"].rec.State; got == nil || got.Backlog != 10 {
			t.Fatalf("state after an older one committed later: got %+v, want the newer one (backlog 10)", got)
		}
		var last uint64
		for i := 0; i < 3; i++ {
			c := &wire.Command{Device: "jn-0001-r101", Cmd: wire.CmdResync, Epoch: 1, FromSeq: 31, Issued: now}
			if err := s.command(ctx, "0001", c); err != nil {
				t.Fatal(err)
			}
			if c.ID <= last {
				t.Fatalf("command %d: got ID %d after %d, want increasing", i, c.ID, last)
			}
			last = c.ID
		}
	})
}

// Two consumers commit the same batch at once: it is stored once, and both report the same end.
func TestStoreSameBatchTwice(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			a := k.open(t)
			b := a
			if k.name == "postgres" { // a second connection pool, as a second process has
				url := a.(*pgStore).pool.Config().ConnString()
				var err error
				if b, err = openPG(context.Background(), url); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.close() })
			}
			for round := 0; round < 20; round++ {
				d := newFakeDevice(t, fmt.Sprintf("jn-0001-r%03d", round))
				d.seal(t, 1, 50)
				var wg sync.WaitGroup
				res := make([]batchResult, 2)
				for i, s := range []store{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r, err := s.commit(context.Background(), &write{batches: []batchWrite{d.batch(1, 1, 50)}})
						if err != nil {
							t.Error(err)
							return
						}
						res[i] = r[0]
					}()
				}
				wg.Wait()
				if res[0].end.Seq != 50 || res[1].end.Seq != 50 || res[0].outcome == res[1].outcome {
					t.Fatalf("round %d: got %v at %d and %v at %d, want one stored and one duplicate, both at 50",
						round, res[0].outcome, res[0].end.Seq, res[1].outcome, res[1].end.Seq)
				}
				wantSeqs(t, a, DeviceEpoch{d.name, 1}, 50)
			}
		})
	}
}

// A device's signed heads: the highest is kept; a later head that is shorter, different at the
// same seq, or of an older epoch raises a head alarm; a head received before the one held (a
// member of a group committing late) does not; and records stored later that differ at the
// witnessed seq raise one too.
func TestStoreWitnessedHeads(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		d := newFakeDevice(t, "jn-0001-r101")
		recs := d.seal(t, 1, 10)
		at := time.Now().Truncate(time.Millisecond)
		head := func(epoch, seq uint64, rec ledger.Record, seen time.Time) {
			t.Helper()
			h := rec.Hash()
			w := &witness{Epoch: epoch, Seq: seq, Hash: hex.EncodeToString(h[:]), Seen: seen}
			if _, err := s.commit(ctx, &write{updates: []deviceUpdate{{device: d.name, institution: d.institution, pub: d.pub, seen: seen, witness: w}}}); err != nil {
				t.Fatal(err)
			}
		}
		alarmsNow := func() []alarm {
			t.Helper()
			a, err := s.alarms(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		head(1, 10, recs[9], at)
		head(1, 4, recs[3], at.Add(-time.Second)) // received before the head held: no alarm
		if a := alarmsNow(); len(a) != 0 {
			t.Fatalf("alarms after an honest head and a delayed one: got %+v, want none", a)
		}
		head(1, 6, recs[5], at.Add(time.Second)) // the tail after 6 deleted
		head(1, 10, recs[8], at.Add(2*time.Second))
		a := alarmsNow()
		if len(a) != 2 || a[0].kind != alarmHead || a[0].seq != 6 || a[0].held != wire.SHA256Hex(recs[9]) ||
			!strings.Contains(a[0].detail, "events removed") || a[1].kind != alarmHead || a[1].seq != 10 {
			t.Fatalf("alarms: got %+v, want a head alarm at seq 6 naming the head held at 10, then one for another hash at 10", a)
		}
		devs, err := s.devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w := devs[d.name].rec.Witnessed; w == nil || w.Seq != 10 || w.Hash != wire.SHA256Hex(recs[9]) {
			t.Fatalf("witnessed head: got %+v, want seq 10 of epoch 1", w)
		}
		head(2, 1, d.seal(t, 2, 1)[0], at.Add(3*time.Second)) // a new epoch: no alarm
		head(1, 10, recs[9], at.Add(4*time.Second))           // the old ledger back
		if a := alarmsNow(); len(a) != 3 || a[2].kind != alarmHead || !strings.Contains(a[2].detail, "epoch 1 seq 10 after it signed epoch 2") {
			t.Fatalf("alarms after the old epoch came back: got %+v, want a third naming the epochs", a)
		}

		// A head shown before its records arrive, then a rewritten chain sent.
		e := newFakeDevice(t, "jn-0001-r102")
		e.seal(t, 1, 8)
		head2 := e.recs[1][4].Hash()
		if _, err := s.commit(ctx, &write{updates: []deviceUpdate{{device: e.name, institution: e.institution, pub: e.pub, seen: at,
			witness: &witness{Epoch: 1, Seq: 5, Hash: hex.EncodeToString(head2[:]), Seen: at}}}}); err != nil {
			t.Fatal(err)
		}
		forger := &fakeDevice{name: e.name, institution: e.institution, pub: e.pub, key: e.key, heads: map[uint64][32]byte{}, recs: map[uint64][]ledger.Record{}}
		forger.seal(t, 1, 3)
		expect(t, "the rewritten chain", commitOne(t, s, forger.batch(1, 1, 3)), stored, 3)
		if a := alarmsNow(); len(a) != 3 {
			t.Fatalf("alarms before the witnessed seq is reached: got %d, want 3", len(a))
		}
		forger.seal(t, 1, 4)
		expect(t, "the rewritten chain through the witnessed seq", commitOne(t, s, forger.batch(1, 4, 7)), stored, 7)
		if a := alarmsNow(); len(a) != 4 || a[3].kind != alarmHead || a[3].seq != 5 || a[3].device != e.name || a[3].held != hex.EncodeToString(head2[:]) {
			t.Fatalf("alarms after the rewritten chain passed the witnessed seq: got %+v, want a head alarm at seq 5 of %s", a, e.name)
		}
	})
}
