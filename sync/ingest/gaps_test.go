package ingest

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// commandLog is a store that keeps every command it is asked to issue, as the ingester hands it
// over: the gap timer's tests read what was asked, and when, without a broker.
type commandLog struct {
	store
	cmds []wire.Command
}

func (c *commandLog) command(ctx context.Context, institution string, cmd *wire.Command) error {
	if err := c.store.command(ctx, institution, cmd); err != nil {
		return err
	}
	c.cmds = append(c.cmds, *cmd)
	return nil
}

// gapIngester is an ingester made by New over a bbolt file, not run: the test calls the worker's
// steps itself, at the times it gives. Its broker is never connected (publishes fail at once,
// which the ingester does not wait for).
func gapIngester(t *testing.T, gapTimeout time.Duration) (*Ingester, *commandLog) {
	t.Helper()
	dir := t.TempDir()
	central, _, err := ledger.GenerateKeyFiles(filepath.Join(dir, "central"), "central")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Broker: "tcp://127.0.0.1:1", DB: filepath.Join(dir, "ingest.db"), DeviceKeysDir: dir,
		CentralKeyFile: central, DatasetDir: filepath.Join(dir, "datasets"), GapTimeout: gapTimeout}
	in, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	log := &commandLog{store: in.st}
	in.st = log
	return in, log
}

// A batch beyond the chain's end that stays alone for GapTimeout (not a nanosecond less) makes the
// ingester ask the device to resync from the first missing seq; while the gap stays open it asks
// again after GapTimeout, then twice as long each time, never less often than once a minute.
// Once the store's chain reaches the last batch held beyond the gap (another member of the group
// stored what was missing), it stops asking and the status shows no gap.
func TestGapTimerAsksForAResyncWithDoublingIntervals(t *testing.T) {
	const G = 10 * time.Second
	in, log := gapIngester(t, G)
	ctx := context.Background()
	fd := newFakeDevice(t, "jn-0001-r101")
	fd.seal(t, 8, 7)
	if r := commitOne(t, in.st, fd.batch(8, 1, 3)); r.outcome != stored {
		t.Fatalf("seqs 1-3: %v (%v), want stored", r.outcome, r.err)
	}
	t0 := time.Now()
	in.devices[fd.name] = &device{name: fd.name, rec: deviceRecord{Institution: "0001", Epoch: 8}, chains: map[uint64]chainEnd{8: {Seq: 3}},
		gapSince: t0, gapEpoch: 8, gapLast: 7, sent: map[string]sentDataset{}}

	asked := func(what string, at time.Duration, want int) {
		t.Helper()
		before := len(log.cmds)
		in.checkGaps(ctx, t0.Add(at))
		if got := len(log.cmds) - before; got != want {
			t.Fatalf("%s (%v after the gap): %d resyncs asked, want %d", what, at, got, want)
		}
		if want == 1 {
			c := log.cmds[len(log.cmds)-1]
			if c.Cmd != wire.CmdResync || c.Device != fd.name || c.Epoch != 8 || c.FromSeq != 4 {
				t.Fatalf("%s: asked %+v, want a resync of %s epoch 8 from seq 4", what, c, fd.name)
			}
		}
	}
	asked("a nanosecond before GapTimeout", G-1, 0)
	at := G
	asked("GapTimeout", at, 1)
	for i, wait := range []time.Duration{G, 2 * G, 4 * G, time.Minute, time.Minute} {
		asked("a nanosecond early", at+wait-1, 0)
		at += wait
		asked("the next interval", at, 1)
		if i == 0 {
			if s := in.statusNow(fd.name); !s.Gap {
				t.Fatalf("status while the gap is open: %+v, want gap", s)
			}
		}
	}
	if r := commitOne(t, in.st, fd.batch(8, 4, 7)); r.outcome != stored { // another member fills it
		t.Fatalf("seqs 4-7: %v (%v), want stored", r.outcome, r.err)
	}
	asked("the chain reached the last batch held", at+time.Minute, 0)
	asked("a minute later", at+2*time.Minute, 0)
	if s := in.statusNow(fd.name); s.Gap || s.AckedThrough != 7 {
		t.Fatalf("status after the gap filled: gap %v, acked through %d; want no gap, 7", s.Gap, s.AckedThrough)
	}
}

// statusNow makes the status snapshot and returns the device's.
func (in *Ingester) statusNow(device string) DeviceStatus {
	in.publishStatus()
	for _, s := range in.Status() {
		if s.Device == device {
			return s
		}
	}
	return DeviceStatus{}
}

// A command's ID is above every ID issued before, also when the last one is ahead of the clock
// (the clock was set back, or another ingester's runs ahead), and across a restart.
func TestCommandIDsStayAboveTheLastOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s, err := openBolt(path, false)
	if err != nil {
		t.Fatal(err)
	}
	ahead := uint64(time.Now().Add(time.Hour).UnixMicro())
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyLastCmd, binary.BigEndian.AppendUint64(nil, ahead))
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := &wire.Command{Device: "jn-0001-r101", Cmd: wire.CmdResync, Epoch: 1, FromSeq: 1}
	if err := s.command(ctx, "0001", c); err != nil {
		t.Fatal(err)
	}
	if c.ID != ahead+1 {
		t.Fatalf("with the last ID an hour ahead of the clock: got ID %d, want %d", c.ID, ahead+1)
	}
	s.close()
	if s, err = openBolt(path, false); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.command(ctx, "0001", c); err != nil {
		t.Fatal(err)
	}
	if c.ID != ahead+2 {
		t.Fatalf("after a restart: got ID %d, want %d", c.ID, ahead+2)
	}
}

// One transaction updates every device it names, and a device's last error stays until another
// replaces it (an update without one keeps it).
func TestStoreUpdatesEveryDeviceAndKeepsTheLastError(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Millisecond)
		_, err := s.commit(ctx, &write{updates: []deviceUpdate{
			{device: "jn-0001-r101", institution: "0001", seen: now, lastError: "state refused"},
			{device: "jn-0001-r102", institution: "0001", seen: now},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.commit(ctx, &write{updates: []deviceUpdate{{device: "jn-0001-r101", institution: "0001", seen: now.Add(time.Second)}}}); err != nil {
			t.Fatal(err)
		}
		devs, err := s.devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) != 2 || devs["jn-0001-r102"] == nil {
			t.Fatalf("devices after one transaction naming two: got %d (%v), want both", len(devs), devs)
		}
		if got := devs["jn-0001-r101"].rec.LastError; got != "state refused" {
			t.Fatalf("last error after an update without one: got %q, want %q kept", got, "state refused")
		}
	})
}

// A head alarm raised by one device's update does not cut the transaction short: the other
// devices' updates in it are kept.
func TestStoreHeadAlarmKeepsTheOtherUpdates(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Millisecond)
		h := func(c string) string { return strings.Repeat(c, 64) }
		if _, err := s.commit(ctx, &write{updates: []deviceUpdate{{device: "jn-0001-r101", institution: "0001", seen: now,
			witness: &witness{Epoch: 1, Seq: 10, Hash: h("a"), Seen: now}}}}); err != nil {
			t.Fatal(err)
		}
		// A shorter head than the one signed before: an alarm; and another device in the same commit.
		if _, err := s.commit(ctx, &write{updates: []deviceUpdate{
			{device: "jn-0001-r101", institution: "0001", seen: now.Add(time.Second), witness: &witness{Epoch: 1, Seq: 5, Hash: h("b"), Seen: now.Add(time.Second)}},
			{device: "jn-0001-r102", institution: "0001", seen: now.Add(time.Second)},
		}}); err != nil {
			t.Fatal(err)
		}
		alarms, err := s.alarms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		devs, err := s.devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms) != 1 || devs["jn-0001-r102"] == nil || !devs["jn-0001-r101"].rec.LastSeen.Equal(now.Add(time.Second)) {
			t.Fatalf("after a head alarm and another device in one commit: %d alarms, devices %v; want 1 alarm and both updated", len(alarms), devs)
		}
	})
}

// A batch that contradicts the head its device signed before is stored all the same, with the
// alarm, in one commit: the records the ack will name are in the database. The head is checked
// wherever it falls in the batch, its first and last record included; a head past the batch is
// not its to contradict.
func TestStoreBatchAlarmKeepsItsRecords(t *testing.T) {
	for _, tc := range []struct {
		seq   uint64
		alarm bool
	}{{1, true}, {2, true}, {3, true}, {4, false}} {
		t.Run(fmt.Sprintf("head at seq %d", tc.seq), func(t *testing.T) {
			eachStore(t, func(t *testing.T, s store) {
				ctx := context.Background()
				d := newFakeDevice(t, "jn-0001-r101")
				d.seal(t, 1, 3)
				now := time.Now().Truncate(time.Millisecond)
				if _, err := s.commit(ctx, &write{updates: []deviceUpdate{{device: d.name, institution: d.institution, pub: d.pub, seen: now,
					witness: &witness{Epoch: 1, Seq: tc.seq, Hash: strings.Repeat("a", 64), Seen: now}}}}); err != nil {
					t.Fatal(err)
				}
				expect(t, "seqs 1-3", commitOne(t, s, d.batch(1, 1, 3)), stored, 3)
				alarms, err := s.alarms(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(alarms) == 1 && alarms[0].kind == alarmHead && alarms[0].seq == tc.seq; got != tc.alarm || len(alarms) > 1 {
					t.Fatalf("alarms: %+v, want a head alarm at seq %d: %v", alarms, tc.seq, tc.alarm)
				}
				wantSeqs(t, s, DeviceEpoch{d.name, 1}, 3)
			})
		})
	}
}

// The largest epoch PostgreSQL's bigint holds is stored like any other.
func TestStoreTakesTheLargestEpoch(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		d := newFakeDevice(t, "jn-0001-r101")
		d.seal(t, math.MaxInt64, 2)
		expect(t, "epoch 2^63-1", commitOne(t, s, d.batch(math.MaxInt64, 1, 2)), stored, 2)
		wantSeqs(t, s, DeviceEpoch{d.name, math.MaxInt64}, 2)
	})
}

// Heads that arrive out of order (members of one group commit): the higher is kept, by epoch
// first, then by seq, and neither contradicts the other.
func TestWitnessHeadsOutOfOrderKeepTheHigher(t *testing.T) {
	now := time.Now()
	h := strings.Repeat("a", 64)
	for _, tc := range []struct {
		held, late witness
		want       uint64 // the seq kept
	}{
		{witness{Epoch: 1, Seq: 10, Hash: h, Seen: now}, witness{Epoch: 1, Seq: 12, Hash: h, Seen: now.Add(-time.Second)}, 12},
		{witness{Epoch: 1, Seq: 10, Hash: h, Seen: now}, witness{Epoch: 1, Seq: 8, Hash: h, Seen: now.Add(-time.Second)}, 10},
		{witness{Epoch: 1, Seq: 10, Hash: h, Seen: now}, witness{Epoch: 2, Seq: 3, Hash: h, Seen: now.Add(-time.Second)}, 3},
		{witness{Epoch: 2, Seq: 3, Hash: h, Seen: now}, witness{Epoch: 1, Seq: 12, Hash: h, Seen: now.Add(-time.Second)}, 3},
	} {
		held, late := tc.held, tc.late
		kept, a := witnessHead("jn-0001-r101", &held, &late)
		if a != nil || kept.Seq != tc.want {
			t.Errorf("held %d/%d, %d/%d received before it: kept %d/%d, alarm %v; want seq %d kept, no alarm",
				held.Epoch, held.Seq, late.Epoch, late.Seq, kept.Epoch, kept.Seq, a, tc.want)
		}
	}
}
