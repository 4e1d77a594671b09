package uplink_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// acker is a hand-driven central system that receives the device's batches and acknowledges
// exactly what the test says, when it says.
type acker struct {
	*central
	st      *store.Store
	batches chan wire.Batch
	cmdID   uint64
}

func newAcker(t *testing.T, env *synckit.Env, b *brokertest.Broker, st *store.Store) *acker {
	t.Helper()
	a := &acker{central: newCentral(t, b.URL(), synckit.Ed25519(t, env.CentralKey)), st: st,
		batches: make(chan wire.Batch, 1000), cmdID: uint64(time.Now().UnixMicro())}
	a.sub(wire.EventsTopic(synckit.Institution, device), func(p []byte) {
		bt, err := wire.DecodeBatch(p)
		if err != nil {
			t.Errorf("device sent a malformed batch: %v", err)
			return
		}
		a.batches <- *bt
	})
	return a
}

// cursorConfig sends one event per batch, and never again on its own for a minute: every batch
// the test sees was asked for by the first connection, an ack or a resync.
func cursorConfig(env *synckit.Env, b *brokertest.Broker, window int) uplink.Config {
	cfg := env.UplinkConfig(device, b.URL())
	cfg.BatchSize, cfg.Window = 1, window
	cfg.AckTimeout, cfg.MaxAckTimeout = time.Minute, time.Minute
	cfg.FlushTimeout = 100 * time.Millisecond
	cfg.KeepAlive, cfg.PingTimeout = 30*time.Second, 10*time.Second // no reconnect (and resend) on a busy machine
	return cfg
}

func (a *acker) ack(epoch, through uint64) {
	a.t.Helper()
	a.ackWith(a.key, epoch, through)
}

// ackWith signs an ack naming the hash of the device's own event at through (a zero hash beyond
// its head) with key.
func (a *acker) ackWith(key ed25519.PrivateKey, epoch, through uint64) {
	a.t.Helper()
	var hash [32]byte
	if recs, err := a.st.Range(through, 1); err == nil && len(recs) == 1 && recs[0].Seq == through {
		hash = recs[0].Record.Hash()
	}
	p, err := wire.SealAck(&wire.Ack{Device: device, Epoch: epoch, AckedThrough: through, Hash: hex.EncodeToString(hash[:]), Time: time.Now()}, key)
	if err != nil {
		a.t.Fatal(err)
	}
	a.publish(wire.AckTopic(synckit.Institution, device), p)
}

func (a *acker) resync(from uint64) {
	a.t.Helper()
	a.cmdID++
	p, err := wire.SealCommand(&wire.Command{ID: a.cmdID, Device: device, Issued: time.Now(), Cmd: wire.CmdResync,
		Epoch: a.st.Epoch(), FromSeq: from}, a.key)
	if err != nil {
		a.t.Fatal(err)
	}
	a.publish(wire.CmdTopic(synckit.Institution, device), p)
}

// sent collects the first seqs of the batches received until one starting at last arrives.
func (a *acker) sentThrough(last uint64) []uint64 {
	a.t.Helper()
	var got []uint64
	deadline := time.After(10 * time.Second)
	for {
		select {
		case bt := <-a.batches:
			got = append(got, bt.FirstSeq)
			if bt.FirstSeq == last {
				return got
			}
		case <-deadline:
			a.t.Fatalf("batches received: %v, want them to reach seq %d", got, last)
		}
	}
}

// quiet checks that no batch arrives for a while.
func (a *acker) quiet(what string) {
	a.t.Helper()
	select {
	case bt := <-a.batches:
		a.t.Fatalf("%s: got a batch from seq %d, want none", what, bt.FirstSeq)
	case <-time.After(300 * time.Millisecond):
	}
}

// waitStats waits until cond holds of the uplink's counters.
func waitStats(t *testing.T, u *uplink.Uplink, what string, cond func(uplink.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(u.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, u.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAcked waits until the store's cursor reaches want (the uplink counts an ack before the
// store's commit of it returns).
func waitAcked(t *testing.T, st *store.Store, what string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := st.Acked()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: cursor at %d (%v), want %d", what, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantAcked(t *testing.T, st *store.Store, what string, want uint64) {
	t.Helper()
	if got, err := st.Acked(); err != nil || got != want {
		t.Fatalf("%s: cursor at %d (%v), want %d", what, got, err, want)
	}
}

// An ack for another epoch, older or newer, moves nothing: the cursor stays and the events stay
// to be sent, until an ack of the device's own epoch arrives.
func TestAckForAnotherEpochDoesNotMoveTheCursor(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	synckit.Append(t, st, 4) // seqs 2-5 after the epoch alarm
	a := newAcker(t, env, b, st)
	u, _ := env.StartUplink(st, cursorConfig(env, b, 10))
	if got := a.sentThrough(5); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("first sends: got batches from %v, want 1-5", got)
	}
	ep := st.Epoch()
	for i, other := range []uint64{ep - 1, ep + 1, 1} {
		a.ack(other, 5)
		waitStats(t, u, "ack of another epoch", func(s uplink.Stats) bool { return s.StaleAcks == uint64(i+1) })
		wantAcked(t, st, fmt.Sprintf("after an ack of epoch %d through 5 (current %d)", other, ep), 0)
	}
	if s := u.Stats(); s.Acks != 0 {
		t.Errorf("acks counted as accepted: got %d, want 0", s.Acks)
	}
	a.ack(ep, 3)
	waitStats(t, u, "ack of the epoch", func(s uplink.Stats) bool { return s.Acks == 1 })
	waitAcked(t, st, "after an ack of the epoch through 3", 3)
}

// An ack beyond what was sent is refused with an alarm, and the cursor stays: the events after
// it were never sent, and counting them as delivered would lose them. The boundary: an ack of the
// last seq sent is taken, one past it is not.
func TestAckBeyondWhatWasSentIsRefused(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	a := newAcker(t, env, b, st)
	u, _ := env.StartUplink(st, cursorConfig(env, b, 1)) // one batch in flight: seq 1, the epoch alarm
	if got := a.sentThrough(1); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("first sends: got batches from %v, want 1", got)
	}
	synckit.Append(t, st, 6) // seqs 2-7, held back by the window
	a.quiet("window full")
	ep := st.Epoch()

	a.ack(ep, 2) // one past what was sent; 2 is in the ledger
	waitStats(t, u, "ack one past what was sent", func(s uplink.Stats) bool { return s.BeyondAcks == 1 })
	wantAcked(t, st, "after an ack through 2 with only 1 sent", 0)
	a.ack(ep, 7) // the head
	waitStats(t, u, "ack of unsent events", func(s uplink.Stats) bool { return s.BeyondAcks == 2 })
	wantAcked(t, st, "after an ack through 7 with only 1 sent", 0)

	var alarms []string
	st.Scan(1, func(_ uint64, r ledger.Record) error {
		if e, err := r.Event(); err == nil && e.Reason == ledger.AlarmAckBeyond {
			alarms = append(alarms, e.Note)
		}
		return nil
	})
	if len(alarms) != 1 { // the same alarm once per interval
		t.Errorf("ack_beyond_sent alarms: got %q, want one", alarms)
	}

	a.ack(ep, 1) // exactly what was sent
	waitStats(t, u, "ack of what was sent", func(s uplink.Stats) bool { return s.Acks == 1 })
	waitAcked(t, st, "after an ack through 1", 1)
	if got := a.sentThrough(2); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("after the ack: got batches from %v, want 2 next", got)
	}
}

// A resync asked from beyond the cursor still sends every unacknowledged event: acked through 3
// of 7, a resync from 6 sends 4 and 5 again too. A resync from before the cursor (the central
// lost events it had acknowledged) sends from where it asks.
func TestResyncNeverSkipsUnacknowledgedEvents(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	synckit.Append(t, st, 6) // seqs 2-7
	a := newAcker(t, env, b, st)
	u, _ := env.StartUplink(st, cursorConfig(env, b, 10))
	a.sentThrough(7)
	a.ack(st.Epoch(), 3)
	waitStats(t, u, "ack through 3", func(s uplink.Stats) bool { return s.Acks == 1 })
	waitAcked(t, st, "after the ack", 3)
	a.quiet("after the ack")

	a.resync(6)
	if got := a.sentThrough(7); !slices.Equal(got, []uint64{4, 5, 6, 7}) {
		t.Fatalf("resync from 6 with 4-7 unacknowledged: got batches from %v, want 4, 5, 6, 7", got)
	}
	a.resync(4) // exactly the first unacknowledged
	if got := a.sentThrough(7); !slices.Equal(got, []uint64{4, 5, 6, 7}) {
		t.Fatalf("resync from 4: got batches from %v, want 4, 5, 6, 7", got)
	}
	a.resync(2)
	if got := a.sentThrough(7); !slices.Equal(got, []uint64{2, 3, 4, 5, 6, 7}) {
		t.Fatalf("resync from 2 with 3 acknowledged: got batches from %v, want 2-7", got)
	}
	a.resync(1) // from the start
	if got := a.sentThrough(7); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("resync from 1: got batches from %v, want 1-7", got)
	}
	wantAcked(t, st, "after the resyncs", 3)
}
