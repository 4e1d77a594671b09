package uplink_test

import (
	"bytes"
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
	st.Close()

	// One flipped byte in a page header: the file is moved aside, its records salvaged.
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
	if st.Epoch() == old {
		t.Fatal("the damaged file was opened as it was: want a new epoch")
	}
	eps, err := st.SalvagedEpochs()
	if err != nil || len(eps) != 1 || eps[0].Epoch != old || eps[0].Last <= acked || eps[0].Acked != 0 {
		t.Fatalf("salvaged: got %+v, %v; want epoch %d salvaged beyond seq %d (what the central holds), none acknowledged", eps, err, old, acked)
	}
	return &salvageRig{env: env, b: b, st: st, in: in, old: old, acked: acked, last: eps[0].Last}
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
