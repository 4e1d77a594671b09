package uplink_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// An ack the central key did not sign moves nothing: an unsigned one (the form before receipts),
// one signed by another key, and one signed by the central key but naming another hash than the
// device's event at its seq. The device keeps only the receipt it could check.
func TestForgedAckDoesNotMoveTheCursor(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	synckit.Append(t, st, 4) // seqs 2-5 after the epoch alarm
	a := newAcker(t, env, b, st)
	u, _ := env.StartUplink(st, cursorConfig(env, b, 10))
	a.sentThrough(5)
	ep := st.Epoch()
	topic := wire.AckTopic(synckit.Institution, device)

	a.publish(topic, []byte(`{"v":1,"epoch":`+itoa(ep)+`,"acked_through":5}`))
	waitStats(t, u, "unsigned ack", func(s uplink.Stats) bool { return s.RefusedAcks == 1 })
	wantAcked(t, st, "after an unsigned ack", 0)

	_, other, _ := ed25519.GenerateKey(nil)
	a.ackWith(other, ep, 5)
	waitStats(t, u, "ack signed by another key", func(s uplink.Stats) bool { return s.RefusedAcks == 2 })
	wantAcked(t, st, "after an ack signed by another key", 0)

	p, err := wire.SealAck(&wire.Ack{Device: device, Epoch: ep, AckedThrough: 5, Hash: wire.SHA256Hex([]byte("another chain")), Time: time.Now()}, a.key)
	if err != nil {
		t.Fatal(err)
	}
	a.publish(topic, p)
	waitStats(t, u, "ack naming another hash", func(s uplink.Stats) bool { return s.RefusedAcks == 3 })
	wantAcked(t, st, "after an ack naming another hash", 0)
	if _, ok, err := st.LatestReceipt(); ok || err != nil {
		t.Fatalf("receipt kept after refused acks: got ok %v, %v; want none", ok, err)
	}

	a.ack(ep, 3)
	waitAcked(t, st, "after a signed ack through 3", 3)
	r, ok, err := st.LatestReceipt()
	if err != nil || !ok {
		t.Fatalf("receipt: got ok %v, %v; want the ack through 3", ok, err)
	}
	recs, _ := st.Range(3, 1)
	if r.Seq != 3 || r.Epoch != ep || r.Hash != recs[0].Record.Hash() {
		t.Errorf("receipt: got seq %d epoch %d hash %x; want seq 3 epoch %d hash %x", r.Seq, r.Epoch, r.Hash[:8], ep, recs[0].Record.Hash())
	}
	got, err := wire.DecodeAck(r.Signed, a.key.Public().(ed25519.PublicKey))
	if err != nil || got.AckedThrough != 3 {
		t.Errorf("kept envelope: got %+v, %v; want an ack through 3 signed by the central key", got, err)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// The tail-deletion attack, end to end: the box syncs with the central system and keeps its
// signed receipt; then someone with root deletes the newest events from the bbolt file and
// rewrites the unsigned head record to the last event kept (no key needed). The chain that is
// left verifies on its own, but not against the receipt.
func TestTailDeletionAfterReceiptIsNotIntact(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	keyFile := env.DeviceKey(device)
	st := env.OpenStore(device, keyFile)
	env.StartIngester(env.IngestConfig("central", b.URL()))
	_, run := env.StartUplink(st, env.UplinkConfig(device, b.URL()))
	synckit.Append(t, st, 11) // seqs 2-12
	synckit.WaitDrained(t, st, 20*time.Second)
	if err := run.Stop(); err != nil {
		t.Fatal(err)
	}
	r, ok, err := st.LatestReceipt()
	if err != nil || !ok || r.Seq != 12 {
		t.Fatalf("receipt after the sync: got %+v ok %v, %v; want one through seq 12", r, ok, err)
	}
	pub := synckit.Ed25519(t, keyFile).Public().(ed25519.PublicKey)
	if _, err := st.Verify(pub, store.VerifyOptions{}); err != nil {
		t.Fatalf("before the attack: %v", err)
	}
	st.Close()

	tamper(t, env.StorePath(device), 8, false)

	ro, err := store.OpenReadOnly(env.StorePath(device))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	sum, err := ro.Verify(pub, store.VerifyOptions{})
	var removed *store.RemovedAfterReceipt
	if !errors.As(err, &removed) || !strings.Contains(err.Error(), "events removed after seq 12 was acknowledged") {
		t.Fatalf("after deleting seqs 9-12: got %v, want \"events removed after seq 12 was acknowledged\"", err)
	}
	if sum.Events != 8 || removed.Have != 8 {
		t.Errorf("events verified: got %d (have %d), want 8", sum.Events, removed.Have)
	}
}

// tamper is the attack: it deletes every event after seq keep and rewrites the head record of
// the meta bucket to the event at keep, as a 30-line program with root on the box would; with
// cursor, it also moves the acknowledged cursor back to keep, so that the box sends on as if
// nothing happened.
func tamper(t *testing.T, path string, keep uint64, cursor bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		ev, meta := tx.Bucket([]byte("events")), tx.Bucket([]byte("meta"))
		var drop [][]byte
		c := ev.Cursor()
		for k, _ := c.Seek(u64(keep + 1)); k != nil; k, _ = c.Next() {
			drop = append(drop, append([]byte(nil), k...))
		}
		for _, k := range drop {
			if err := ev.Delete(k); err != nil {
				return err
			}
		}
		last := ev.Get(u64(keep))
		if last == nil {
			return errors.New("no event at the kept seq")
		}
		h := sha256.Sum256(last)
		if cursor {
			if err := meta.Put([]byte("acked"), u64(keep)); err != nil {
				return err
			}
		}
		return errors.Join(meta.Put([]byte("head_seq"), u64(keep)), meta.Put([]byte("head_hash"), h[:]))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// The central system holds the box to the head it signed: after the tail deletion (the cursor
// moved back too), the box's next state shows a shorter chain, and the ingester raises a head
// alarm naming it. Events recorded after the deletion that reach the witnessed seq with other
// bytes would raise one as well (see the store contract test).
func TestIngesterAlarmsOnAShorterChainThanASignedHead(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	keyFile := env.DeviceKey(device)
	st := env.OpenStore(device, keyFile)
	in, _ := env.StartIngester(env.IngestConfig("central", b.URL()))
	_, run := env.StartUplink(st, env.UplinkConfig(device, b.URL()))
	synckit.Append(t, st, 11) // seqs 2-12
	synckit.WaitDrained(t, st, 20*time.Second)
	waitStatus(t, in, "the signed head at 12", func(s ingest.DeviceStatus) bool { return s.WitnessedSeq == 12 })
	if err := run.Stop(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	tamper(t, env.StorePath(device), 8, true)

	st = env.OpenStore(device, keyFile)
	defer st.Close()
	env.StartUplink(st, env.UplinkConfig(device, b.URL()))
	got := waitStatus(t, in, "a head alarm", func(s ingest.DeviceStatus) bool {
		return strings.Contains(s.LastError, "integrity alarm: head")
	})
	if !strings.Contains(got.LastError, "chain ending at seq 8") || !strings.Contains(got.LastError, "signed a head at seq 12") || got.WitnessedSeq != 12 {
		t.Errorf("ingester: got last error %q, witnessed seq %d; want a head alarm naming seq 8 and the head signed at 12, still witnessed at 12",
			got.LastError, got.WitnessedSeq)
	}
}

func waitStatus(t *testing.T, in *ingest.Ingester, what string, cond func(ingest.DeviceStatus) bool) ingest.DeviceStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, s := range in.Status() {
			if s.Device == device && cond(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: ingester status %+v", what, in.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
