package uplink_test

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// A box whose ledger file is damaged after the central system acknowledged part of it starts a
// new epoch and salvages the old one. The old epoch's tail that was never acknowledged (recorded
// while the box was offline) still reaches the central system: once the new epoch is drained, the
// salvaged records go up as batches of their own epoch, the central stores those it lacks,
// chained on to its end, and the box's cursor for that epoch reaches the last salvaged seq.
func TestSalvagedEventsReachTheCentralSystem(t *testing.T) {
	r := newSalvageRig(t, nil)
	st, in, old, acked, last := r.st, r.in, r.old, r.acked, r.last
	r.env.StartUplink(st, r.env.UplinkConfig(salvageDev, r.b.URL()))
	synckit.WaitDrained(t, st, 30*time.Second)
	if !testkit.WaitFor(t, func() bool { return r.salvagedAcked(t) == last }, 30*time.Second) {
		t.Fatalf("salvaged epoch acknowledged: got through %d, want through seq %d", r.salvagedAcked(t), last)
	}
	central := map[uint64]ledger.Record{}
	if err := in.Scan(func(device string, epoch, seq uint64, rec ledger.Record) error {
		if epoch == old {
			central[seq] = rec
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if uint64(len(central)) != last {
		t.Errorf("the central holds %d events of the old epoch, want %d (1-%d acknowledged before the damage, the rest salvaged)", len(central), last, acked)
	}
	recs, err := st.SalvagedRange(old, 1, int(last))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if !bytes.Equal(central[r.Seq], r.Record) {
			t.Errorf("seq %d of the old epoch: the central's copy is not the salvaged record", r.Seq)
			break
		}
	}
	// The new epoch as any other: every event stored once, none invented.
	newEpoch := func(fn func(device string, epoch, seq uint64, rec ledger.Record) error) error {
		return in.Scan(func(device string, epoch, seq uint64, rec ledger.Record) error {
			if epoch == old {
				return nil
			}
			return fn(device, epoch, seq, rec)
		})
	}
	if err := synckit.Check(st, newEpoch); err != nil {
		t.Fatal(err)
	}
}

// salvageRig is a box whose ledger was damaged after the central system acknowledged part of it
// (acked), with the old epoch salvaged through last, and the ingester (its acks through mangle);
// the box's uplink is not started.
type salvageRig struct {
	env              *synckit.Env
	b                *brokertest.Broker
	st               *store.Store
	in               *ingest.Ingester
	old, acked, last uint64
}

const salvageDev = device

func newSalvageRig(t *testing.T, mangle func(string, wire.Ack) []wire.Ack) *salvageRig {
	t.Helper()
	const dev = salvageDev
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	key := env.DeviceKey(dev)
	st := env.OpenStore(dev, key)
	old := st.Epoch()
	synckit.Append(t, st, 300)
	icfg := env.IngestConfig("central", b.URL())
	icfg.MangleAck = mangle
	in, _ := env.StartIngester(icfg)
	_, up := env.StartUplink(st, env.UplinkConfig(dev, b.URL()))
	synckit.WaitDrained(t, st, 30*time.Second)
	if err := up.Stop(); err != nil {
		t.Fatal(err)
	}
	acked, _ := st.Head()      // the central holds the old epoch through here
	synckit.Append(t, st, 100) // offline: never sent
	st = damagedReopened(t, env, st, dev, key)
	if st.Epoch() == old {
		t.Fatal("the damaged file was opened as it was: want a new epoch")
	}
	eps, err := st.SalvagedEpochs()
	if err != nil || len(eps) != 1 || eps[0].Epoch != old || eps[0].Last <= acked || eps[0].Acked != 0 {
		t.Fatalf("salvaged: got %+v, %v; want epoch %d salvaged beyond seq %d (what the central holds), none acknowledged", eps, err, old, acked)
	}
	return &salvageRig{env: env, b: b, st: st, in: in, old: old, acked: acked, last: eps[0].Last}
}

// damagedReopened closes st, flips one byte of a page header in its file and opens it again: the
// file is moved aside, its records salvaged, and a new epoch starts.
func damagedReopened(t *testing.T, env *synckit.Env, st *store.Store, dev string, key string) *store.Store {
	t.Helper()
	st.Close()
	raw, err := os.ReadFile(env.StorePath(dev))
	if err != nil {
		t.Fatal(err)
	}
	raw[2*4096+8] ^= 0xff
	if err := os.WriteFile(env.StorePath(dev), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	st = env.OpenStore(dev, key)
	t.Cleanup(func() { st.Close() })
	return st
}

// salvagedAcked is the box's cursor of the salvaged epoch.
func (r *salvageRig) salvagedAcked(t *testing.T) uint64 {
	eps, err := r.st.SalvagedEpochs()
	if err != nil || len(eps) != 1 {
		t.Fatalf("salvaged epochs: got %+v, %v; want one", eps, err)
	}
	return eps[0].Acked
}

// An ack of the salvaged epoch whose hash is not the salvaged record's at its seq: the central
// holds another chain for that epoch. The box does not take it as holding the salvaged events: it
// logs it and stops sending the epoch.
func TestSalvagedEpochAckedWithAnotherHash(t *testing.T) {
	var old atomic.Uint64
	r := newSalvageRig(t, func(_ string, a wire.Ack) []wire.Ack {
		if a.Epoch == old.Load() {
			a.Hash = strings.Repeat("0", 64)
		}
		return []wire.Ack{a}
	})
	old.Store(r.old)
	logs := &testkit.LogBuffer{}
	r.env.Log = slog.New(slog.NewTextHandler(logs, nil))
	r.env.StartUplink(r.st, r.env.UplinkConfig(salvageDev, r.b.URL()))
	if !testkit.WaitFor(t, func() bool { return strings.Contains(logs.String(), "holds another chain") }, 30*time.Second) {
		t.Fatalf("no log of the central holding another chain; the box's cursor of the salvaged epoch: %d", r.salvagedAcked(t))
	}
	if got := r.salvagedAcked(t); got != 0 {
		t.Errorf("the box's cursor of the salvaged epoch: got %d, want 0 (no ack with another hash counts)", got)
	}
}

// salvageStepRig is a box whose ledger file was damaged with 20 events never sent: the old epoch
// is salvaged, the new one holds its alarm. Its uplink is stepped by hand (uplink.Stepper).
type salvageStepRig struct {
	*rig
	old  uint64
	recs []store.Seqd // the salvaged records, seq 1 on
}

func newSalvageStepRig(t *testing.T, edit func(*uplink.Config, []store.Seqd), prep ...func(*synckit.Env, *store.Store, uint64)) *salvageStepRig {
	t.Helper()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	key := env.DeviceKey(device)
	st := env.OpenStore(device, key)
	old := st.Epoch()
	synckit.Append(t, st, 20)
	st = damagedReopened(t, env, st, device, key)
	recs, err := st.SalvagedRange(old, 1, 100)
	if err != nil || len(recs) != 21 {
		t.Fatalf("salvaged: got %d records, %v; want the alarm and 20 sign-ins", len(recs), err)
	}
	for _, p := range prep {
		p(env, st, old)
	}
	cfg := stepConfig(env, b)
	if edit != nil {
		edit(&cfg, recs)
	}
	return &salvageStepRig{rig: stepped(t, env, b, st, cfg), old: old, recs: recs}
}

// drainCurrentEpoch sends the current epoch and has it acknowledged whole (steps at 0 and 1s):
// the salvaged epochs' turn comes next.
func (r *salvageStepRig) drainCurrentEpoch() {
	r.t.Helper()
	r.step(0)
	head, _ := r.st.Head()
	r.ack(head)
	r.step(time.Second)
}

// salvageAck hands the uplink the central's signed ack of the salvaged epoch through seq.
func (r *salvageStepRig) salvageAck(through uint64) {
	r.t.Helper()
	h := r.recs[through-1].Record.Hash()
	p, err := wire.SealAck(&wire.Ack{Device: device, Epoch: r.old, AckedThrough: through, Hash: hex.EncodeToString(h[:]), Time: time.Now()}, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	r.p.Handle(wire.AckTopic(synckit.Institution, device), p)
}

// salvageFlight checks the salvaged batch waiting for its ack.
func (r *salvageStepRig) salvageFlight(what string, first, last uint64) {
	r.t.Helper()
	ep, f, l, ok := r.p.SalvageInFlight()
	if !ok || ep != r.old || f != first || l != last {
		r.t.Fatalf("%s: salvaged batch in flight: epoch %d seq %d-%d (%v); want epoch %d seq %d-%d", what, ep, f, l, ok, r.old, first, last)
	}
}

// The salvaged epoch goes up one batch at a time, after the current epoch is acknowledged: a
// batch is as many contiguous records as BatchSize and BatchBytes allow (a batch exactly
// BatchBytes long included), resent when its ack is AckTimeout late and not before, and the next
// starts after what the central acknowledged.
func TestSalvagedBatchesStepped(t *testing.T) {
	r := newSalvageStepRig(t, func(c *uplink.Config, recs []store.Seqd) {
		c.BatchSize = 5
		c.BatchBytes = len(recs[0].Record) + len(recs[1].Record) + len(recs[2].Record) // seq 1-3 exactly
	})
	r.step(0)
	if _, _, _, ok := r.p.SalvageInFlight(); ok {
		t.Fatal("a salvaged batch sent before the current epoch is acknowledged")
	}
	head, _ := r.st.Head()
	r.ack(head)
	r.step(time.Second)
	r.salvageFlight("the current epoch acknowledged", 1, 3)
	sent := r.u.Stats().Batches

	r.step(time.Second + 10*time.Second - time.Nanosecond) // AckTimeout is 10s
	if got := r.u.Stats().Batches; got != sent {
		t.Fatalf("a nanosecond before the ack is late: %d batches sent, want %d (no resend)", got, sent)
	}
	r.step(time.Second + 10*time.Second)
	if got := r.u.Stats().Batches; got != sent+1 {
		t.Fatalf("the ack AckTimeout late: %d batches sent, want %d (resent)", got, sent+1)
	}
	r.salvageFlight("resent", 1, 3)

	r.salvageAck(3)
	r.step(12 * time.Second)
	r.salvageFlight("seq 1-3 acknowledged", 4, 4+uint64(countFitting(r.recs[3:], 5, len(r.recs[0].Record)+len(r.recs[1].Record)+len(r.recs[2].Record)))-1)
	if eps, err := r.st.SalvagedEpochs(); err != nil || len(eps) != 1 || eps[0].Acked != 3 {
		t.Fatalf("the box's cursor of the salvaged epoch: %+v, %v; want through 3", eps, err)
	}
}

// countFitting is how many of recs, from the first, a batch of at most size records and bytes
// bytes holds (always the first).
func countFitting(recs []store.Seqd, size, bytes int) int {
	n, total := 0, 0
	for _, r := range recs {
		if n == size || (n > 0 && total+len(r.Record) > bytes) {
			break
		}
		n++
		total += len(r.Record)
	}
	return n
}

// A record longer than BatchBytes still goes up, alone in its batch.
func TestSalvagedRecordLongerThanABatch(t *testing.T) {
	r := newSalvageStepRig(t, func(c *uplink.Config, _ []store.Seqd) {
		c.BatchSize, c.BatchBytes = 5, 1
	})
	r.drainCurrentEpoch()
	r.salvageFlight("BatchBytes 1", 1, 1)
	r.salvageAck(1)
	r.step(2 * time.Second)
	r.salvageFlight("seq 1 acknowledged", 2, 2)
}

// A salvaged epoch the central system already holds whole is not sent again, and the box does
// not log its records as missing.
func TestSalvagedEpochHeldWholeIsLeftAlone(t *testing.T) {
	logs := &testkit.LogBuffer{}
	r := newSalvageStepRig(t, nil, func(env *synckit.Env, st *store.Store, old uint64) {
		env.Log = slog.New(slog.NewTextHandler(logs, nil))
		if err := st.AckSalvaged(old, 21); err != nil {
			t.Fatal(err)
		}
	})
	r.drainCurrentEpoch()
	if _, _, _, ok := r.p.SalvageInFlight(); ok {
		t.Fatal("a salvaged batch sent for an epoch the central holds whole")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("errors logged for an epoch the central holds whole:\n%s", logs)
	}
}

// An ack through the last salvaged seq closes the epoch: nothing more is sent for it, and nothing
// is logged as missing.
func TestSalvagedEpochClosedByItsLastAck(t *testing.T) {
	logs := &testkit.LogBuffer{}
	r := newSalvageStepRig(t, func(c *uplink.Config, _ []store.Seqd) { c.BatchSize = 25 }, func(env *synckit.Env, _ *store.Store, _ uint64) {
		env.Log = slog.New(slog.NewTextHandler(logs, nil))
	})
	r.drainCurrentEpoch()
	r.salvageFlight("the current epoch acknowledged", 1, 21)
	r.salvageAck(21)
	r.step(2 * time.Second)
	r.step(3 * time.Second)
	if _, _, _, ok := r.p.SalvageInFlight(); ok {
		t.Fatal("a salvaged batch sent after the epoch's last seq was acknowledged")
	}
	if eps, err := r.st.SalvagedEpochs(); err != nil || len(eps) != 1 || eps[0].Acked != 21 {
		t.Fatalf("the box's cursor of the salvaged epoch: %+v, %v; want through 21", eps, err)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("errors logged for an epoch acknowledged whole:\n%s", logs)
	}
}
