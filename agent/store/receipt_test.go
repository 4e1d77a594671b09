package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	bolt "go.etcd.io/bbolt"
)

func receiptAt(t *testing.T, s *Store, seq uint64) Receipt {
	t.Helper()
	recs, err := s.Range(seq, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("range %d: %v", seq, err)
	}
	return Receipt{Device: s.Device(), Epoch: s.Epoch(), Seq: seq, Hash: recs[0].Record.Hash(), Time: time.Unix(100, 0).UTC(), Signed: []byte("envelope")}
}

// A receipt moves the cursor and is kept in the same transaction; one naming another hash, another
// epoch or a seq beyond the head moves nothing and keeps nothing.
func TestAckReceipt(t *testing.T) {
	cfg := fourEvents(t)
	s := open(t, cfg)
	defer s.Close()
	bad := receiptAt(t, s, 3)
	bad.Hash[0] ^= 1
	if _, err := s.AckReceipt(bad); !errors.Is(err, ErrReceiptMismatch) {
		t.Errorf("a receipt naming another hash: got %v, want ErrReceiptMismatch", err)
	}
	other := receiptAt(t, s, 3)
	other.Epoch++
	if _, err := s.AckReceipt(other); !errors.Is(err, ErrStaleEpoch) {
		t.Errorf("a receipt of another epoch: got %v, want ErrStaleEpoch", err)
	}
	beyond := receiptAt(t, s, 4)
	beyond.Seq = 5
	if _, err := s.AckReceipt(beyond); !errors.Is(err, ErrAckBeyondHead) {
		t.Errorf("a receipt beyond the head: got %v, want ErrAckBeyondHead", err)
	}
	if acked, _ := s.Acked(); acked != 0 {
		t.Fatalf("cursor after refused receipts: got %d, want 0", acked)
	}
	if _, ok, _ := s.LatestReceipt(); ok {
		t.Fatal("a refused receipt was kept")
	}
	good := receiptAt(t, s, 3)
	if adv, err := s.AckReceipt(good); err != nil || !adv {
		t.Fatalf("a good receipt: got advanced %v, %v; want true, nil", adv, err)
	}
	if adv, err := s.AckReceipt(receiptAt(t, s, 2)); err != nil || adv {
		t.Errorf("an older receipt: got advanced %v, %v; want false, nil", adv, err)
	}
	got, ok, err := s.LatestReceipt()
	if err != nil || !ok || got.Seq != 3 || got.Hash != good.Hash || string(got.Signed) != "envelope" {
		t.Errorf("kept receipt: got %+v ok %v, %v; want the receipt through 3", got, ok, err)
	}
	if acked, _ := s.Acked(); acked != 3 {
		t.Errorf("cursor: got %d, want 3", acked)
	}
	sum, err := s.Verify(pub(cfg), VerifyOptions{})
	if err != nil || sum.Receipt == nil || sum.Receipt.Seq != 3 {
		t.Errorf("verify with the receipt: got %+v, %v; want intact with the receipt at 3", sum.Receipt, err)
	}
}

// An institution holding the box's key rewrites the events from an acknowledged seq on: the chain
// verifies on its own, but the event at the receipt's seq has another hash.
func TestVerifyCatchesARewriteUnderTheReceipt(t *testing.T) {
	cfg := fourEvents(t)
	s := open(t, cfg)
	if _, err := s.AckReceipt(receiptAt(t, s, 3)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	next := func(p ledger.Event) ledger.Event { p.Seq++; p.ID = ""; p.Trainee = "T9"; return p }
	rewrite(t, cfg, 3, []func(ledger.Event) ledger.Event{next, next})
	err := verifyFile(t, cfg)
	wantProblemAt(t, "a rewrite under the receipt", err, 3)
	if err == nil || !strings.Contains(err.Error(), "events removed after seq 3 was acknowledged") {
		t.Errorf("a rewrite under the receipt: got %v, want it named as events removed after seq 3", err)
	}
}

// The receipt's edges: the same receipt twice advances nothing the second time; a receipt at
// exactly the head verifies; a ledger that ends before its receipt is refused at the first
// missing seq, saying where it ends; a receipt of another epoch than the ledger's is refused at
// seq 1, saying so.
func TestReceiptEdges(t *testing.T) {
	cfg := fourEvents(t)
	s := open(t, cfg)
	atHead := receiptAt(t, s, 4)
	if adv, err := s.AckReceipt(atHead); err != nil || !adv {
		t.Fatalf("a receipt at the head: got advanced %v, %v; want true", adv, err)
	}
	if adv, err := s.AckReceipt(atHead); err != nil || adv {
		t.Errorf("the same receipt again: got advanced %v, %v; want false, nil", adv, err)
	}
	if _, err := s.Verify(pub(cfg), VerifyOptions{}); err != nil {
		t.Fatalf("verify with a receipt at exactly the head: %v", err)
	}
	s.Close()

	edit := func(fn func(tx *bolt.Tx) error) {
		t.Helper()
		db, err := bolt.Open(cfg.Path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	// The last two events deleted and the head moved back, as someone with root would.
	edit(func(tx *bolt.Tx) error {
		ev := tx.Bucket(bucketEvents)
		for _, seq := range []uint64{3, 4} {
			if err := ev.Delete(u64(seq)); err != nil {
				return err
			}
		}
		h := ledger.Record(ev.Get(u64(2))).Hash()
		m := tx.Bucket(bucketMeta)
		return errors.Join(m.Put(keyHeadSeq, u64(2)), m.Put(keyHeadHash, h[:]))
	})
	err := verifyFile(t, cfg)
	wantProblemAt(t, "a ledger ending at seq 2 under a receipt at 4", err, 3)
	if err == nil || !strings.Contains(err.Error(), "the ledger ends at seq 2") {
		t.Errorf("a ledger ending at seq 2 under a receipt at 4: got %v, want it to say where the ledger ends", err)
	}

	// The kept receipt claims another epoch.
	edit(func(tx *bolt.Tx) error {
		r, _, err := receiptIn(tx)
		if err != nil {
			return err
		}
		r.Epoch++
		r.Seq = 1
		v, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyReceipt, v)
	})
	err = verifyFile(t, cfg)
	wantProblemAt(t, "a receipt of another epoch", err, 1)
	if err == nil || !strings.Contains(err.Error(), "the receipt is for epoch") {
		t.Errorf("a receipt of another epoch: got %v, want it named", err)
	}
}

// A ledger rewritten at exactly the acknowledged seq, its last event: the receipt names another
// hash there, and the message says so (not that events are missing).
func TestVerifyCatchesARewriteOfTheAcknowledgedHead(t *testing.T) {
	cfg := fourEvents(t)
	s := open(t, cfg)
	if _, err := s.AckReceipt(receiptAt(t, s, 4)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rewrite(t, cfg, 4, []func(ledger.Event) ledger.Event{func(p ledger.Event) ledger.Event { p.Seq++; p.ID = ""; p.Trainee = "T9"; return p }})
	err := verifyFile(t, cfg)
	wantProblemAt(t, "a rewrite of the acknowledged head", err, 4)
	if err == nil || !strings.Contains(err.Error(), "another hash") {
		t.Errorf("a rewrite of the acknowledged head: got %v, want it named as another hash at seq 4", err)
	}
}
