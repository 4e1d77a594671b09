package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
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
