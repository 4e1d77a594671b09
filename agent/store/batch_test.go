package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// A batch is appended as the events appended one by one would be: in order, each chained to the
// one before and signed, its reading keys and voucher bindings kept, and it survives a reopen.
func TestAppendBatchChainsLikeSingleAppends(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	if _, err := s.Append(signIn("T0")); err != nil {
		t.Fatal(err)
	}
	in := []ledger.Event{signIn("T1"), signIn("T2"),
		{Kind: ledger.VoucherCheckin, Voucher: "V-9", Institution: "0001", Trainee: "T3", Time: ledger.Clock{Wall: time.Now(), Synced: true}}}
	in[0].Key, in[1].Key = "zk:1", "zk:2"
	in[1].ID = ledger.NewID(time.Now())
	recs, err := s.AppendBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := []uint64{recs[0].Seq, recs[1].Seq, recs[2].Seq}; !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("batch seqs: got %v, want [3 4 5] after the epoch alarm and one append", got)
	}
	if recs[1].ID != in[1].ID {
		t.Errorf("an ID set before the batch: got %q, want it kept (%q)", recs[1].ID, in[1].ID)
	}
	if recs[0].ID == "" || recs[2].ID == "" {
		t.Errorf("events without an ID: got IDs %q, %q, want them filled in", recs[0].ID, recs[2].ID)
	}
	if in[0].Seq != 0 || in[0].ID != "" {
		t.Errorf("the caller's slice was changed: %+v", in[0])
	}
	if head, _ := s.Head(); head != 5 {
		t.Errorf("head after the batch: got %d, want 5", head)
	}
	for i, key := range []string{"zk:1", "zk:2"} {
		if seq, ok, err := s.RecordedKey(key); err != nil || !ok || seq != recs[i].Seq {
			t.Errorf("RecordedKey(%q): got %d, %v, %v; want %d", key, seq, ok, err, recs[i].Seq)
		}
	}
	s.Close()
	s = open(t, cfg)
	if b, err := s.Bindings(); err != nil || b["V-9"] != "0001" {
		t.Errorf("bindings after reopen: got %v, %v; want V-9 bound to 0001", b, err)
	}
	if _, err := s.Verify(pub(cfg), VerifyOptions{}); err != nil {
		t.Fatalf("verify after a batch: %v", err)
	}
	after, err := s.Append(signIn("T4"))
	if err != nil || after.Seq != 6 {
		t.Fatalf("append after the batch: got seq %d, %v; want 6", after.Seq, err)
	}
	if _, err := s.Verify(pub(cfg), VerifyOptions{}); err != nil {
		t.Fatalf("verify after a batch and an append: %v", err)
	}
}

// A batch is written whole or not at all: a commit that fails appends none of it, and the store
// refuses what comes after.
func TestAppendBatchFailsWhole(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	s.db.Close() // the next commit fails as a write to a closed file would
	_, err := s.AppendBatch([]ledger.Event{signIn("T1"), signIn("T2")})
	if !errors.Is(err, ErrFatal) {
		t.Fatalf("batch on a failed file: got %v, want ErrFatal", err)
	}
	if head, _ := s.Head(); head != 1 {
		t.Errorf("head after a failed batch: got %d, want 1 (nothing appended)", head)
	}
	if _, err := s.Append(signIn("T3")); !errors.Is(err, ErrFatal) {
		t.Errorf("append after a failed batch: got %v, want ErrFatal", err)
	}
}

// The disk reserve refuses a single capture in Append; a batch leaves it to its caller, who
// checks it before deciding the batch (CheckReserve), and alarms still pass.
func TestCheckReserve(t *testing.T) {
	cfg := testConfig(t)
	cfg.MinFreeBytes = 1 << 62
	s := open(t, cfg)
	if err := s.CheckReserve(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("CheckReserve with a reserve larger than any disk: got %v, want ErrDiskFull", err)
	}
	if _, err := s.Append(signIn("T1")); !errors.Is(err, ErrDiskFull) {
		t.Errorf("a capture under the reserve: got %v, want ErrDiskFull", err)
	}
	if _, err := s.Append(ledger.Event{Kind: ledger.Alarm, Reason: ledger.AlarmDiskFull, Time: ledger.Clock{Wall: time.Now()}}); err != nil {
		t.Errorf("an alarm under the reserve: got %v, want it appended", err)
	}
}
