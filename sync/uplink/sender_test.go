package uplink_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// The tests of this file turn the sender's loop by hand (uplink.Stepper): each step is one turn
// at a time the test gives, on a real connection to a real broker, so the window, the acks, the
// stall timer and the state refresh are pinned to the nanosecond without a sleep. Acks and
// commands are handed to the uplink's message handler as the broker would hand them, signed with
// the central key.

// rig is one device's store and uplink, stepped by hand.
type rig struct {
	t   *testing.T
	env *synckit.Env
	b   *brokertest.Broker
	st  *store.Store
	u   *uplink.Uplink
	p   *uplink.Stepper
	key ed25519.PrivateKey // the central key
	t0  time.Time
	cmd uint64
}

// stepConfig is one event a batch, three batches in flight, a stall after 10s doubling to 25s,
// and the state refreshed every minute.
func stepConfig(env *synckit.Env, b *brokertest.Broker) uplink.Config {
	cfg := env.UplinkConfig(device, b.URL())
	cfg.BatchSize, cfg.Window = 1, 3
	cfg.AckTimeout, cfg.MaxAckTimeout = 10*time.Second, 25*time.Second
	cfg.StateInterval = time.Minute
	cfg.KeepAlive, cfg.PingTimeout = 30*time.Second, 10*time.Second
	return cfg
}

// newRig opens a store (with an evidence directory) holding the epoch alarm and events more
// sign-ins, and connects its uplink with cfg changed by edit.
func newRig(t *testing.T, events int, edit func(*uplink.Config, *store.Store)) *rig {
	t.Helper()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	k := synckit.Ed25519(t, env.DeviceKey(device))
	st, err := store.Open(store.Config{Path: env.StorePath(device), Device: device, Key: k, Institution: synckit.Institution,
		EvidenceDir: filepath.Join(env.Dir, "evidence")}, env.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	synckit.Append(t, st, events)
	cfg := stepConfig(env, b)
	if edit != nil {
		edit(&cfg, st)
	}
	return stepped(t, env, b, st, cfg)
}

// stepped connects an uplink of st, with cfg, to the broker b, its loop turned by hand.
func stepped(t *testing.T, env *synckit.Env, b *brokertest.Broker, st *store.Store, cfg uplink.Config) *rig {
	t.Helper()
	u, err := uplink.New(cfg, st, env.Log)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, env: env, b: b, st: st, u: u, key: synckit.Ed25519(t, env.CentralKey), t0: time.Now(), cmd: uint64(time.Now().UnixMicro())}
	r.p = uplink.NewStepper(t, u)
	return r
}

// step turns the loop once at t0+at.
func (r *rig) step(at time.Duration) {
	r.t.Helper()
	if err := r.p.Step(r.t0.Add(at)); err != nil {
		r.t.Fatalf("step at %v: %v", at, err)
	}
}

// ack hands the uplink the central system's signed ack through seq of the device's epoch.
func (r *rig) ack(through uint64) {
	r.t.Helper()
	var hash [32]byte
	if recs, err := r.st.Range(through, 1); err == nil && len(recs) == 1 && recs[0].Seq == through {
		hash = recs[0].Record.Hash()
	}
	p, err := wire.SealAck(&wire.Ack{Device: device, Epoch: r.st.Epoch(), AckedThrough: through, Hash: hex.EncodeToString(hash[:]), Time: time.Now()}, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	r.p.Handle(wire.AckTopic(synckit.Institution, device), p)
}

// resync hands the uplink a signed resync command.
func (r *rig) resync(epoch, from uint64) {
	r.t.Helper()
	r.cmd++
	p, err := wire.SealCommand(&wire.Command{ID: r.cmd, Device: device, Issued: time.Now(), Cmd: wire.CmdResync, Epoch: epoch, FromSeq: from}, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	r.p.Handle(wire.CmdTopic(synckit.Institution, device), p)
}

// window checks the batches in flight.
func (r *rig) window(what string, want ...[2]uint64) {
	r.t.Helper()
	if got := r.p.InFlight(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		r.t.Fatalf("%s: batches in flight %v, want %v", what, got, want)
	}
}

// stats checks the counters that matter here.
func (r *rig) stats(what string, batches, resent, goBacks uint64) {
	r.t.Helper()
	s := r.u.Stats()
	if s.Batches != batches || s.Resent != resent || s.GoBacks != goBacks {
		r.t.Fatalf("%s: batches %d, resent %d, go-backs %d; want %d, %d, %d", what, s.Batches, s.Resent, s.GoBacks, batches, resent, goBacks)
	}
}

func (r *rig) acked(what string, want uint64) {
	r.t.Helper()
	wantAcked(r.t, r.st, what, want)
}

// flights is n batches of one event from seq first.
func flights(first uint64, n int) [][2]uint64 {
	var f [][2]uint64
	for i := range uint64(n) {
		f = append(f, [2]uint64{first + i, first + i})
	}
	return f
}

// The window holds Window batches of at most BatchSize events; an ack takes out of it the batches
// it covers whole (not one it covers in part), and the next batches go out in their place.
func TestSenderWindow(t *testing.T) {
	r := newRig(t, 9, func(c *uplink.Config, _ *store.Store) { c.BatchSize, c.Window = 3, 2 }) // seqs 1-10
	r.step(0)
	r.window("first connection", [2]uint64{1, 3}, [2]uint64{4, 6})
	r.stats("first connection", 2, 0, 0) // nothing was in flight: not a go-back
	r.step(time.Second)
	r.window("a step with nothing new", [2]uint64{1, 3}, [2]uint64{4, 6})
	r.stats("a step with nothing new", 2, 0, 0)

	r.ack(3)
	r.step(2 * time.Second)
	r.acked("ack through 3", 3)
	r.window("after the ack through 3", [2]uint64{4, 6}, [2]uint64{7, 9})
	r.ack(5) // half of the batch 4-6
	r.step(3 * time.Second)
	r.acked("ack through 5", 5)
	r.window("after the ack through 5", [2]uint64{4, 6}, [2]uint64{7, 9})
	r.stats("after the ack through 5", 3, 0, 0)
	r.ack(6)
	r.step(4 * time.Second)
	r.window("after the ack through 6", [2]uint64{7, 9}, [2]uint64{10, 10})
	if s := r.u.Stats(); s.Acks != 3 || s.StaleAcks != 0 {
		t.Fatalf("acks accepted %d, stale %d; want 3, 0", s.Acks, s.StaleAcks)
	}
	r.ack(6) // again: stale
	r.step(5 * time.Second)
	if s := r.u.Stats(); s.Acks != 3 || s.StaleAcks != 1 {
		t.Fatalf("after the same ack again: acks accepted %d, stale %d; want 3, 1", s.Acks, s.StaleAcks)
	}
	r.ack(10)
	r.step(6 * time.Second)
	r.acked("ack through 10", 10)
	r.window("everything acknowledged")
	r.stats("everything acknowledged", 4, 0, 0)
}

// A batch ends before its records would pass BatchBytes; a record larger than BatchBytes goes
// alone, never stuck.
func TestSenderBatchBytes(t *testing.T) {
	t.Run("two records to the byte", func(t *testing.T) {
		var sizes []int
		r := newRig(t, 5, func(c *uplink.Config, st *store.Store) {
			recs, err := st.Range(1, 4)
			if err != nil || len(recs) != 4 {
				t.Fatalf("range: %d records, %v", len(recs), err)
			}
			for _, rec := range recs {
				sizes = append(sizes, len(rec.Record))
			}
			c.BatchSize, c.Window, c.BatchBytes = 10, 2, sizes[2]+sizes[3]
		})
		r.step(0)
		r.window(fmt.Sprintf("batch bytes %d, records of %v", sizes[2]+sizes[3], sizes), [2]uint64{1, 2}, [2]uint64{3, 4})
	})
	t.Run("one byte", func(t *testing.T) {
		r := newRig(t, 5, func(c *uplink.Config, _ *store.Store) { c.BatchSize, c.Window, c.BatchBytes = 10, 3, 1 })
		r.step(0)
		r.window("batch bytes 1", flights(1, 3)...)
	})
}

// Acks that stall for AckTimeout (not a nanosecond less) send everything unacknowledged again;
// the timeout doubles on each stall up to MaxAckTimeout, and returns to AckTimeout once an ack
// moves the cursor. A stale ack moves nothing, so it does not put the stall off.
func TestSenderStallTimer(t *testing.T) {
	r := newRig(t, 2, nil) // seqs 1-3; AckTimeout 10s, MaxAckTimeout 25s
	const s = time.Second
	r.step(0)
	r.window("first connection", flights(1, 3)...)
	r.step(10 * s)
	r.stats("AckTimeout without an ack, to the nanosecond", 3, 0, 0)
	r.step(10*s + 1)
	r.stats("just past AckTimeout without an ack", 6, 3, 1)
	r.window("after the stall", flights(1, 3)...)

	at := 10*s + 1 // the last stall: the timeout is now 20s
	r.step(at + 20*s)
	r.stats("20s after the first stall", 6, 3, 1)
	r.step(at + 20*s + 1)
	r.stats("just past 20s after the first stall", 9, 6, 2)
	at += 20*s + 1 // now 25s, the most
	r.step(at + 25*s)
	r.stats("25s after the second stall", 9, 6, 2)
	r.step(at + 25*s + 1)
	r.stats("just past 25s after the second stall", 12, 9, 3)
	at += 25*s + 1
	r.step(at + 25*s + 1)
	r.stats("the timeout stays at MaxAckTimeout", 15, 12, 4)
	at += 25*s + 1

	r.ack(1) // progress: back to 10s from now
	r.step(at + s)
	r.acked("ack through 1", 1)
	r.window("after the ack through 1", flights(2, 2)...)
	r.step(at + s + 9*s)
	r.ack(1) // stale: moves nothing
	r.step(at + s + 9*s + s/2)
	r.stats("a stale ack before the timeout", 15, 12, 4)
	r.step(at + s + 10*s + 1)
	r.stats("AckTimeout after the last progress, a stale ack in between", 17, 14, 5)
	r.window("after the stall", flights(2, 2)...)
}

// The stall timer runs from the oldest batch in flight: a batch sent into an empty window starts
// it, one sent beside it does not.
func TestSenderStallTimerRunsFromTheOldestBatch(t *testing.T) {
	r := newRig(t, 0, nil) // seq 1
	const s = time.Second
	r.step(0)
	r.ack(1)
	r.step(s)
	r.window("everything acknowledged")
	r.step(20 * s) // nothing in flight for 19s: no stall
	// seq 2, into an empty window at 30s
	synckit.Append(t, r.st, 1)
	r.step(30 * s)
	synckit.Append(t, r.st, 1) // seq 3, beside it at 35s
	r.step(35 * s)
	r.window("two batches", [2]uint64{2, 2}, [2]uint64{3, 3})
	r.stats("two batches", 3, 0, 0)
	r.step(40 * s)
	r.stats("10s after the oldest batch", 3, 0, 0)
	r.step(40*s + 1)
	r.stats("just past 10s after the oldest batch", 5, 2, 1)
}

// A new connection sends everything in flight again at once, and refreshes the state at once; a
// new connection with nothing in flight is not a go-back.
func TestSenderReconnect(t *testing.T) {
	r := newRig(t, 4, nil) // seqs 1-5
	const s = time.Second
	r.step(0)
	if !r.p.StateAt().Equal(r.t0) {
		t.Fatalf("first connection: state last published at %v, want at once", r.p.StateAt().Sub(r.t0))
	}
	r.ack(2)
	r.step(s)
	r.window("after the ack through 2", flights(3, 3)...)
	r.stats("after the ack through 2", 5, 0, 0)
	r.p.Reconnect()
	r.step(2 * s)
	r.window("after the reconnection", flights(3, 3)...)
	r.stats("after the reconnection", 8, 3, 1)
	if !r.p.StateAt().Equal(r.t0.Add(2 * s)) {
		t.Fatalf("reconnection: state last published at %v, want 2s (at once)", r.p.StateAt().Sub(r.t0))
	}
	r.ack(5)
	r.step(3 * s)
	r.window("everything acknowledged")
	r.p.Reconnect()
	r.step(4 * s)
	r.stats("reconnection with nothing in flight", 8, 3, 1)
}

// A process that starts with events a previous run sent takes an ack of them even before it sent
// them itself, and goes on after what the ack covers.
func TestSenderTakesAnAckOfWhatAPreviousRunSent(t *testing.T) {
	r := newRig(t, 4, func(c *uplink.Config, _ *store.Store) { c.Window = 1 }) // seqs 1-5, all "sent" before
	r.step(0)
	r.window("first connection", [2]uint64{1, 1})
	r.ack(2) // the previous run's batch 2
	r.step(time.Second)
	r.acked("ack through 2", 2)
	r.window("after the ack through 2", [2]uint64{3, 3})
	r.ack(5)
	r.step(2 * time.Second)
	r.acked("ack through 5", 5)
	r.window("after the ack through 5")
	r.ack(6) // never in the ledger
	r.step(3 * time.Second)
	if s := r.u.Stats(); s.BeyondAcks != 1 {
		t.Fatalf("ack beyond the head: beyond-acks %d, want 1", s.BeyondAcks)
	}
	r.acked("ack through 6 of 5", 5)
}

// The state is refreshed every StateInterval (to the nanosecond), and while the ledger or the
// cursor moves every 5s at most; not while nothing moves.
func TestSenderStateRefresh(t *testing.T) {
	r := newRig(t, 0, nil) // seq 1; StateInterval 1m
	const s = time.Second
	at := func(what string, want time.Duration) {
		t.Helper()
		if got := r.p.StateAt().Sub(r.t0); got != want {
			t.Fatalf("%s: state last published at %v, want %v", what, got, want)
		}
	}
	r.step(0)
	at("first connection", 0)
	synckit.Append(t, r.st, 1)
	r.step(4 * s)
	at("the head moved 4s after the state", 0)
	r.step(5 * s)
	at("the head moved 5s after the state", 5*s)
	r.step(11 * s)
	at("nothing moved", 5*s)
	r.ack(2)
	r.step(12 * s)
	at("the cursor moved 7s after the state", 12*s)
	r.step(12*s + time.Minute - 1)
	at("nothing moved for less than StateInterval", 12*s)
	r.step(12*s + time.Minute)
	at("nothing moved for StateInterval", 12*s+time.Minute)
}

// A resync of another epoch is ignored; one of the device's epoch sends again from where it asks.
func TestSenderResyncOfAnotherEpoch(t *testing.T) {
	r := newRig(t, 4, nil) // seqs 1-5
	r.step(0)
	r.ack(3)
	r.step(time.Second)
	r.window("after the ack through 3", flights(4, 2)...)
	ep := r.st.Epoch()
	r.resync(ep+1, 1)
	r.resync(ep-1, 1)
	r.step(2 * time.Second)
	r.stats("resyncs of other epochs", 5, 0, 0)
	r.resync(ep, 2)
	r.step(3 * time.Second)
	r.window("resync from 2", flights(2, 3)...)
	r.stats("resync from 2", 8, 3, 1)
}

// Photos go up only once every event is acknowledged, at most four waiting for their ack; a photo
// is sent again when its ack has not come after AckTimeout (not a nanosecond earlier), even with
// the window full of late photos, or when
// the connection comes back. The evidence cursor stops before the first event whose photo is not
// acknowledged; an ack that arrives while events are in flight is kept.
func TestSenderEvidence(t *testing.T) {
	r := newRig(t, 0, func(c *uplink.Config, _ *store.Store) { c.Window = 10 })
	const s = time.Second
	var photos []ledger.Photo
	for i := range 6 {
		ref, err := r.st.PutEvidence(drivers.Crop, []byte(fmt.Sprintf("\xff\xd8face %d\xff\xd9", i)))
		if err != nil {
			t.Fatal(err)
		}
		photos = append(photos, ledger.Photo{SHA256: ref.SHA256, Kind: string(ref.Kind), Size: ref.Size})
	}
	// seqs 2-7 each name one photo; seq 8 names none.
	for _, p := range photos {
		if _, err := r.st.Append(ledger.Event{Kind: ledger.SpotCheck, Source: "room-cam", Session: "S-1", Evidence: []ledger.Photo{p}, Time: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	synckit.Append(t, r.st, 1)
	sent := func(what string, want uint64) {
		t.Helper()
		if got := r.u.Stats().EvidenceSent; got != want {
			t.Fatalf("%s: photos sent %d, want %d", what, got, want)
		}
	}
	through := func(what string, want uint64) {
		t.Helper()
		if got, err := r.st.EvidenceThrough(); err != nil || got != want {
			t.Fatalf("%s: evidence cursor %d (%v), want %d", what, got, err, want)
		}
	}
	evack := func(i int) {
		t.Helper()
		p, err := (&wire.EvidenceAck{SHA256: photos[i].SHA256}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		r.p.Handle(wire.EvidenceAckTopic(synckit.Institution, device), p)
	}
	r.step(0)
	sent("events in flight", 0)
	r.ack(7) // seq 8 still in flight
	r.step(s)
	sent("an event in flight", 0)
	evack(0) // an ack that comes while events are in flight (photo 0 was sent by an earlier run)
	r.step(2 * s)
	r.ack(8)
	r.step(3 * s)
	sent("every event acknowledged", 4) // photos 1-4: the window
	through("photo 0 acknowledged, 1 not", 2)
	r.step(3*s + 10*s - 1)
	sent("a nanosecond before AckTimeout after the photos", 4)
	r.step(3*s + 10*s)
	sent("AckTimeout after the photos", 8)
	evack(1)
	evack(2)
	r.step(14 * s)
	through("photos 0-2 acknowledged", 4)
	sent("two acks: room in the window for the last photo", 9) // photo 5
	r.p.Reconnect()
	r.step(15 * s)
	sent("after a reconnection", 12) // 3, 4, 5 again
	for i := 3; i < 6; i++ {
		evack(i)
	}
	r.step(16 * s)
	through("every photo acknowledged", 8)
	for i, p := range photos {
		if ok, err := r.st.EvidenceAcked(p.SHA256); err != nil || !ok {
			t.Errorf("photo %d: acknowledged %v (%v), want true", i, ok, err)
		}
	}
}

// An ack beyond what was sent, with the alarm it raises, does not keep a good ack that came with
// it from moving the cursor; a second one raises no second alarm.
func TestSenderAckBeyondBesideAGoodAck(t *testing.T) {
	r := newRig(t, 0, nil)
	synckit.Append(t, r.st, 4) // seqs 2-5 after the uplink started: 1-3 sent
	r.step(0)
	r.ack(5)
	r.ack(2)
	r.step(time.Second)
	r.acked("an ack through 5 of 3 sent, then one through 2", 2)
	if s := r.u.Stats(); s.BeyondAcks != 1 || s.Acks != 1 {
		t.Fatalf("beyond-acks %d, acks %d; want 1, 1", s.BeyondAcks, s.Acks)
	}
	r.window("after the acks", flights(3, 3)...)
	r.ack(9) // beyond again, the next step: the same alarm is not recorded twice within its interval
	r.step(2 * time.Second)
	n := 0
	r.st.Scan(1, func(_ uint64, rec ledger.Record) error {
		if e, err := rec.Event(); err == nil && e.Reason == ledger.AlarmAckBeyond {
			n++
		}
		return nil
	})
	if s := r.u.Stats(); s.BeyondAcks != 2 || n != 1 {
		t.Fatalf("two acks beyond what was sent: beyond-acks %d, alarms in the ledger %d; want 2, 1", s.BeyondAcks, n)
	}
}

// A publish that fails at once (the connection dropped before the sender heard of it) puts
// nothing in flight, and the sender waits for the connection instead of filling the window with
// batches that never left.
func TestSenderPublishFailsWhileDisconnected(t *testing.T) {
	r := newRig(t, 4, nil) // seqs 1-5
	r.step(0)
	r.window("connected", flights(1, 3)...)
	r.b.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for r.p.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("the uplink was not told the broker is gone within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.p.Reconnect() // told "up" again, though the broker is gone
	r.step(time.Second)
	r.window("after a failed publish")
	r.stats("after a failed publish", 3, 0, 1)
	r.step(2 * time.Second)
	r.stats("a step after the failed publish", 3, 0, 1)
}

// Run returns at once when everything is acknowledged: the flush waits for nothing.
func TestRunStopsAtOnceWhenEverythingIsAcknowledged(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	env.StartIngester(env.IngestConfig("central", b.URL()))
	cfg := env.UplinkConfig(device, b.URL())
	cfg.FlushTimeout = time.Minute
	_, run := env.StartUplink(st, cfg)
	synckit.Append(t, st, 5)
	synckit.WaitDrained(t, st, 30*time.Second)
	stopped := make(chan error, 1)
	go func() { stopped <- run.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run still flushing 20s after cancel with everything acknowledged, want it to return at once (flush timeout 1m)")
	}
}

// photoEvent appends a spot check naming one new photo and returns the photo.
func (r *rig) photoEvent(name string) ledger.Photo {
	r.t.Helper()
	ref, err := r.st.PutEvidence(drivers.Frame, []byte("\xff\xd8"+name+"\xff\xd9"))
	if err != nil {
		r.t.Fatal(err)
	}
	p := ledger.Photo{SHA256: ref.SHA256, Kind: string(ref.Kind), Size: ref.Size}
	if _, err := r.st.Append(ledger.Event{Kind: ledger.SpotCheck, Source: "room-cam", Session: "S-1", Evidence: []ledger.Photo{p}, Time: clock.Now()}); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// The evidence cursor moves over events without photos several hundred at a step, and a photo
// named after a long stretch of them goes up in the same step that reaches it, also once the
// cursor is past the first stretch.
func TestSenderEvidenceAfterALongStretchWithoutPhotos(t *testing.T) {
	r := newRig(t, 300, func(c *uplink.Config, _ *store.Store) { c.BatchSize, c.Window = 1000, 1 }) // seqs 1-301
	r.step(0)
	r.ack(301)
	r.step(time.Second)
	if got, err := r.st.EvidenceThrough(); err != nil || got != 301 {
		t.Fatalf("301 events without photos, acknowledged: evidence cursor %d (%v), want 301", got, err)
	}
	r.photoEvent("the room") // seq 302
	r.step(2 * time.Second)
	r.ack(302)
	r.step(3 * time.Second)
	if got := r.u.Stats().EvidenceSent; got != 1 {
		t.Fatalf("a photo at seq 302: photos sent %d, want 1", got)
	}
}

// A photo an event names and the box no longer has is never sent, and never asked for again: it
// counts as done for the evidence cursor, and the sender goes on.
func TestSenderEvidenceMissingOnTheBox(t *testing.T) {
	r := newRig(t, 0, nil)
	gone := r.photoEvent("deleted") // seq 2
	if err := os.Remove(r.st.EvidencePath(gone.SHA256)); err != nil {
		t.Fatal(err)
	}
	kept := r.photoEvent("kept") // seq 3
	r.step(0)
	r.ack(3)
	r.step(time.Second)
	if ok, err := r.st.EvidenceAcked(gone.SHA256); err != nil || !ok {
		t.Fatalf("the missing photo: done %v (%v), want true", ok, err)
	}
	if got := r.u.Stats().EvidenceSent; got != 1 {
		t.Fatalf("photos sent %d, want 1 (the one the box has)", got)
	}
	evack, err := (&wire.EvidenceAck{SHA256: kept.SHA256}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	r.p.Handle(wire.EvidenceAckTopic(synckit.Institution, device), evack)
	r.step(2 * time.Second)
	if got, err := r.st.EvidenceThrough(); err != nil || got != 3 {
		t.Fatalf("evidence cursor %d (%v), want 3", got, err)
	}
}

// states subscribes to the device's state topic and returns what arrives from now on.
func (r *rig) states() chan *wire.State {
	r.t.Helper()
	c := brokertest.Dial(r.t, r.b.URL(), "test-central-states")
	got := make(chan *wire.State, 10)
	c.Subscribe(wire.StateTopic(synckit.Institution, device), func(_ string, p []byte) {
		if s, err := wire.DecodeState(p); err == nil && s.Online {
			select {
			case got <- s:
			default:
			}
		}
	})
	return got
}

// The state says what the central system holds the box to: the head, signed with the device key,
// the cursor and the backlog between them, the age of the oldest unacknowledged event, the disk,
// the active datasets and the sources' health.
func TestSenderStateContent(t *testing.T) {
	r := newRig(t, 0, func(c *uplink.Config, _ *store.Store) {
		c.Drivers = func() map[string]drivers.Health {
			return map[string]drivers.Health{"fp1": {State: drivers.StateOK, Readings: 7}}
		}
	})
	for _, age := range []time.Duration{2 * time.Hour, time.Hour, 0, 0} { // seqs 2-5
		e := synckit.SignIn(int(age / time.Hour))
		e.Time.Wall = time.Now().Add(-age)
		if _, err := r.st.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	m, chunks, err := wire.Split("roster", 2, device, rosterJSON(t, 2), 1<<20, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mp, err := wire.SealManifest(m, r.key)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := chunks[0].Encode()
	if err != nil {
		t.Fatal(err)
	}
	r.p.Handle(wire.DataTopic(synckit.Institution, device, "roster"), mp)
	r.p.Handle(wire.DataTopic(synckit.Institution, device, "roster"), cp) // roster 2 applied: seq 6
	got := r.states()
	r.step(0)
	r.ack(2)
	r.step(time.Second)
	r.p.Reconnect() // a new state at once
	r.step(2 * time.Second)
	var s *wire.State
	for s == nil || s.AckedThrough != 2 {
		select {
		case s = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("no state with the cursor at 2 in 10s (last %+v)", s)
		}
	}
	if s.HeadSeq != 6 || s.Backlog != 4 || s.Epoch != r.st.Epoch() {
		t.Errorf("state: head %d, acked %d, backlog %d, epoch %d; want 6, 2, 4, %d", s.HeadSeq, s.AckedThrough, s.Backlog, s.Epoch, r.st.Epoch())
	}
	if s.DatasetVersions["roster"] != 2 {
		t.Errorf("state dataset versions %v, want roster 2", s.DatasetVersions)
	}
	recs, err := r.st.Range(6, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := recs[0].Record.Hash()
	if s.HeadHash != hex.EncodeToString(h[:]) {
		t.Errorf("state head hash %q, want the hash of seq 6 %x", s.HeadHash, h)
	}
	pub, err := ledger.LoadPublicKey(filepath.Join(r.env.DeviceKeysDir, device+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyHead(pub); err != nil {
		t.Errorf("state head signature: %v", err)
	}
	if s.OldestUnackedAge < 3500 || s.OldestUnackedAge > 3700 {
		t.Errorf("oldest unacknowledged age %.0fs, want about an hour (seq 3)", s.OldestUnackedAge)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(r.env.Dir, &fs); err != nil {
		t.Fatal(err)
	}
	total, free := fs.Blocks*uint64(fs.Bsize), fs.Bavail*uint64(fs.Bsize)
	if s.Disk == nil || s.Disk.TotalBytes != total || s.Disk.FreeBytes < free/2 || s.Disk.FreeBytes > total {
		t.Errorf("state disk %+v, want total %d and free about %d", s.Disk, total, free)
	}
	if d := s.Drivers["fp1"]; d.State != string(drivers.StateOK) || d.Readings != 7 {
		t.Errorf("state drivers %+v, want fp1 ok with 7 readings", s.Drivers)
	}
}

// An ack the central system signed for another device moves nothing.
func TestSenderRefusesAnAckForAnotherDevice(t *testing.T) {
	r := newRig(t, 2, nil)
	r.step(0)
	recs, err := r.st.Range(2, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := recs[0].Record.Hash()
	p, err := wire.SealAck(&wire.Ack{Device: "jn-0001-r102", Epoch: r.st.Epoch(), AckedThrough: 2, Hash: hex.EncodeToString(h[:]), Time: time.Now()}, r.key)
	if err != nil {
		t.Fatal(err)
	}
	r.p.Handle(wire.AckTopic(synckit.Institution, device), p)
	r.step(time.Second)
	r.acked("an ack for jn-0001-r102 on this device's topic", 0)
	if s := r.u.Stats(); s.RefusedAcks != 1 || s.Acks != 0 {
		t.Fatalf("refused acks %d, acks %d; want 1, 0", s.RefusedAcks, s.Acks)
	}
}

// A signed command the uplink does not run itself goes to the agent's Downlink, once: a replay of
// it does not.
func TestCommandsGoToTheDownlinkOnce(t *testing.T) {
	var got []uplink.Delivery
	r := newRig(t, 0, func(c *uplink.Config, _ *store.Store) {
		c.Downlink = uplink.DownlinkFunc(func(d uplink.Delivery) { got = append(got, d) })
	})
	r.cmd++
	p, err := wire.SealCommand(&wire.Command{ID: r.cmd, Device: device, Issued: time.Now(), Cmd: wire.CmdSpotcheck}, r.key)
	if err != nil {
		t.Fatal(err)
	}
	topic := wire.CmdTopic(synckit.Institution, device)
	r.p.Handle(topic, p)
	r.p.Handle(topic, p)
	if len(got) != 1 || got[0].Command == nil || got[0].Command.Cmd != wire.CmdSpotcheck || got[0].Command.ID != r.cmd {
		t.Fatalf("deliveries %+v, want the spotcheck command %d once", got, r.cmd)
	}
}

// A dataset missing a chunk waits for it until DatasetTimeout: the downlink's timer and a restart
// leave a young staging alone, and the chunk that comes later completes it.
func TestIncompleteDatasetWaitsForItsChunk(t *testing.T) {
	r := newRig(t, 0, func(c *uplink.Config, _ *store.Store) { c.DatasetTimeout = time.Hour })
	m, chunks, err := wire.Split("roster", 2, device, rosterJSON(t, 2), 256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mp, err := wire.SealManifest(m, r.key)
	if err != nil {
		t.Fatal(err)
	}
	topic := wire.DataTopic(synckit.Institution, device, "roster")
	r.p.Handle(topic, mp)
	for i := 1; i < len(chunks); i++ {
		p, err := chunks[i].Encode()
		if err != nil {
			t.Fatal(err)
		}
		r.p.Handle(topic, p)
	}
	r.p.ExpireStaged()
	if s, ok, err := r.st.StagedDataset("roster"); err != nil || !ok || s.Version != 2 {
		t.Fatalf("after the timer, chunk 0 missing: staged %+v, %v, %v; want version 2 waiting", s, ok, err)
	}
	r.p.RecoverStaged() // as at a restart
	if s, ok, err := r.st.StagedDataset("roster"); err != nil || !ok || s.Version != 2 {
		t.Fatalf("after a restart, chunk 0 missing: staged %+v, %v, %v; want version 2 waiting", s, ok, err)
	}
	p, err := chunks[0].Encode()
	if err != nil {
		t.Fatal(err)
	}
	r.p.Handle(topic, p)
	if v := activeRoster(t, r.st); v != 2 {
		t.Fatalf("active roster %d after the last chunk, want 2", v)
	}
}

// An ack of a one-event batch (its first seq is its last) gives the central system's clock like
// any other: the batch is found by the seq the ack names.
func TestAckOfAOneEventBatchGivesTheCentralsClock(t *testing.T) {
	var got []uplink.CentralTime
	r := newRig(t, 0, keepCentralTimes(&got))
	synckit.Append(t, r.st, 1) // seq 2, recorded after the uplink started: published once, by it
	r.step(0)
	r.window("started", flights(1, 2)...)
	r.ack(2)
	r.step(time.Second)
	if len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("central times after the ack of seq 2 (a batch of one event): %+v, want one for seq 2", got)
	}
}

// A batch sent again after a stall gives no central time when its ack comes, down to the last
// seq published before (its ack may answer the first copy, sent at a time this copy does not know).
func TestResentBatchGivesNoCentralTime(t *testing.T) {
	var got []uplink.CentralTime
	r := newRig(t, 0, keepCentralTimes(&got))
	synckit.Append(t, r.st, 2) // seqs 2 and 3, after the uplink started
	r.step(0)
	r.window("started", flights(1, 3)...)
	r.step(10*time.Second + time.Nanosecond) // AckTimeout: all three sent again
	r.window("resent", flights(1, 3)...)
	r.ack(3)
	r.step(11 * time.Second)
	if len(got) != 0 {
		t.Fatalf("central times after the ack of a resent batch: %d (the first for seq %d), want none", len(got), got[0].Seq)
	}
}

// keepCentralTimes is a newRig edit: the uplink's downlink keeps the central times it is given in got.
func keepCentralTimes(got *[]uplink.CentralTime) func(*uplink.Config, *store.Store) {
	return func(c *uplink.Config, _ *store.Store) {
		c.Downlink = uplink.DownlinkFunc(func(d uplink.Delivery) {
			if d.Time != nil {
				*got = append(*got, *d.Time)
			}
		})
	}
}
