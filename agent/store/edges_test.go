package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

// Range returns at most the number asked for, in order, from the seq asked.
func TestRangeReturnsAtMostMax(t *testing.T) {
	s := open(t, testConfig(t))
	for i := 0; i < 4; i++ {
		s.Append(signIn("T1"))
	}
	for _, tc := range []struct {
		from uint64
		max  int
		want []uint64
	}{{1, 2, []uint64{1, 2}}, {2, 1, []uint64{2}}, {4, 10, []uint64{4, 5}}, {6, 10, nil}, {1, 0, nil}} {
		recs, err := s.Range(tc.from, tc.max)
		var got []uint64
		for _, r := range recs {
			got = append(got, r.Seq)
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Range(%d, %d): got %v, %v; want %v", tc.from, tc.max, got, err, tc.want)
		}
	}
}

// Recent reads back from the head and stops after 1000 older events: a recent event behind a
// thousand older ones (a clock that jumped) is not looked for.
func TestRecentStopsAfterAThousandOlder(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	now := time.Now()
	newA := signIn("NEW-A")
	if _, err := s.Append(newA); err != nil {
		t.Fatal(err)
	}
	// A thousand old events in one transaction (Recent reads the records, not the chain).
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		for i := uint64(3); i <= 1002; i++ {
			e := signIn("OLD")
			e.Device, e.Epoch, e.Seq, e.ID = cfg.Device, s.epoch, i, ledger.NewID(now)
			e.Time.Wall = now.Add(-48 * time.Hour)
			r, err := ledger.Seal(&e, ledger.ZeroHash, cfg.Key)
			if err != nil {
				return err
			}
			if err := b.Put(u64(i), r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.headSeq = 1002
	if _, err := s.Append(signIn("NEW-B")); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Recent(now.Add(-time.Hour))
	var got []string
	for _, e := range evs {
		got = append(got, e.Trainee)
	}
	if err != nil || !slices.Equal(got, []string{"NEW-B"}) {
		t.Errorf("Recent: got %v, %v; want [NEW-B] (NEW-A is behind 1000 older events)", got, err)
	}
}

// The evidence budget is a ceiling that may be reached exactly, not passed.
func TestEvidenceBudgetReachedExactly(t *testing.T) {
	cfg := testConfig(t)
	cfg.EvidenceBudget = 10
	s := open(t, cfg)
	if _, err := s.PutEvidence(drivers.Crop, []byte("0123456")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutEvidence(drivers.Crop, []byte("789")); err != nil {
		t.Fatalf("evidence filling the budget exactly: got %v, want it stored", err)
	}
	if _, err := s.PutEvidence(drivers.Crop, []byte("x")); err == nil {
		t.Fatal("evidence one byte over the budget: stored, want ErrEvidenceBudget")
	}
}

// Evidence that would take the free space under the reserve is refused, though the free space
// is over the reserve now: the reserve counts the JPEG about to be written.
func TestEvidenceCountsItsOwnSizeAgainstTheReserve(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	free, err := freeBytes(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	s.cfg.MinFreeBytes = free - size/2 // half the JPEG fits above the reserve
	if _, err := s.PutEvidence(drivers.Frame, make([]byte, size)); err == nil {
		t.Fatal("an 8 MiB JPEG with 4 MiB above the reserve: stored, want ErrDiskFull")
	}
	if ents, _ := os.ReadDir(cfg.EvidenceDir); len(ents) != 0 {
		t.Errorf("evidence directory after the refusal: %d entries, want none", len(ents))
	}
}

func TestEvidencePathOfShortNames(t *testing.T) {
	s := open(t, testConfig(t))
	if p := s.EvidencePath("a"); p != "" {
		t.Errorf("EvidencePath(a): got %q, want empty", p)
	}
	if p := s.EvidencePath("ab"); p != filepath.Join(s.cfg.EvidenceDir, "ab", "ab.jpg") {
		t.Errorf("EvidencePath(ab): got %q, want evidence/ab/ab.jpg", p)
	}
}

// Chunks are numbered 0 to n-1: others are refused, and each stored chunk is no longer missing.
func TestStageChunkIndexes(t *testing.T) {
	s := open(t, testConfig(t))
	if _, err := s.Stage(RosterDataset, 3, []byte("m"), -1); err == nil {
		t.Error("staging -1 chunks: got nil, want an error")
	}
	st, err := s.Stage(RosterDataset, 3, []byte("m"), 0)
	if err != nil || !st.Complete() {
		t.Errorf("staging an empty dataset: got %+v, %v; want it complete", st, err)
	}
	if st, err = s.Stage(RosterDataset, 3, []byte("m"), 3); err != nil || !slices.Equal(st.Missing, []int{0, 1, 2}) {
		t.Fatalf("staging 3 chunks: got %+v, %v; want 0, 1, 2 missing", st, err)
	}
	for _, i := range []int{-1, 3, 4} {
		if _, err := s.StageChunk(RosterDataset, 3, i, []byte("x")); err == nil {
			t.Errorf("chunk %d of 3: got nil, want an error", i)
		}
	}
	if st, err = s.StageChunk(RosterDataset, 3, 1, []byte("x")); err != nil || !slices.Equal(st.Missing, []int{0, 2}) {
		t.Errorf("after chunk 1: got %+v, %v; want 0 and 2 missing", st, err)
	}
	if st, err = s.StageChunk(RosterDataset, 3, 2, []byte("x")); err != nil || !slices.Equal(st.Missing, []int{0}) {
		t.Errorf("after chunk 2: got %+v, %v; want 0 missing", st, err)
	}
}

// A voucher check-in binds the voucher in the same transaction that records it.
func TestVoucherCheckinIsBound(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	e := ledger.Event{Kind: ledger.VoucherCheckin, Voucher: "V-1", Institution: "0001", Trainee: "T1",
		Time: ledger.Clock{Wall: time.Now(), Synced: true}}
	if _, err := s.Append(e); err != nil {
		t.Fatal(err)
	}
	// One read from a terminal, which names it by its own record serial.
	e.Voucher, e.Key = "V-2", "zk-1:000042"
	if _, err := s.Append(e); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, cfg)
	if b, err := s.Bindings(); err != nil || len(b) != 2 || b["V-1"] != "0001" || b["V-2"] != "0001" {
		t.Fatalf("bindings after reopen: got %v, %v; want V-1 and V-2 bound to 0001", b, err)
	}
}

// A reserve well under the free space refuses nothing: the free space is measured, not guessed.
func TestReserveUnderTheFreeSpaceRefusesNothing(t *testing.T) {
	cfg := testConfig(t)
	var fs syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(cfg.Path), &fs); err != nil {
		t.Fatal(err)
	}
	cfg.MinFreeBytes = fs.Bavail * uint64(fs.Bsize) / 2
	s := open(t, cfg)
	if _, err := s.Append(signIn("T1")); err != nil {
		t.Fatalf("append with half the free space in reserve: %v", err)
	}
	if _, err := s.PutEvidence(drivers.Crop, []byte("jpeg")); err != nil {
		t.Fatalf("evidence with half the free space in reserve: %v", err)
	}
}

// The evidence budget counts the files kept before a restart.
func TestEvidenceBudgetCountsOldFiles(t *testing.T) {
	cfg := testConfig(t)
	cfg.EvidenceBudget = 10
	s := open(t, cfg)
	if _, err := s.PutEvidence(drivers.Crop, []byte("0123456")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, cfg)
	if _, err := s.PutEvidence(drivers.Crop, []byte("abcde")); err == nil {
		t.Fatal("5 bytes after a restart with 7 of 10 used: stored, want ErrEvidenceBudget")
	}
}

// Verify reports its progress once a batch of 4,096 events: a small ledger is one batch.
func TestVerifyProgressOncePerBatch(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := 0; i < 9; i++ {
		s.Append(signIn("T1"))
	}
	var calls [][2]uint64
	sum, err := s.Verify(pub(cfg), VerifyOptions{Progress: func(done, total uint64) { calls = append(calls, [2]uint64{done, total}) }})
	if err != nil || sum.Events != 10 {
		t.Fatalf("verify: %d events, %v; want 10", sum.Events, err)
	}
	if len(calls) != 1 || calls[0] != [2]uint64{10, 10} {
		t.Errorf("progress calls: got %v, want one, [10 10]", calls)
	}
}

// A ledger whose last events were deleted (and its head left as it was) fails verify at the
// first missing seq.
func TestVerifyNamesTheFirstMissingSeq(t *testing.T) {
	cfg := fourEvents(t)
	db, err := bolt.Open(cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return errors.Join(tx.Bucket(bucketEvents).Delete(u64(4)), tx.Bucket(bucketEvents).Delete(u64(3)))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	wantProblemAt(t, "seqs 3 and 4 deleted", verifyFile(t, cfg), 3)
}
