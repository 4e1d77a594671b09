package store

import (
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

func testConfig(t testing.TB) Config {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return Config{Path: filepath.Join(dir, "kaoqin.db"), EvidenceDir: filepath.Join(dir, "evidence"), Device: "jn-0001-r101", Key: key}
}

func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func signIn(trainee string) ledger.Event {
	return ledger.Event{Kind: ledger.SignIn, Trainee: trainee, Session: "S1", Time: ledger.Clock{Wall: time.Now(), Synced: true}}
}

func pub(cfg Config) ed25519.PublicKey { return cfg.Key.Public().(ed25519.PublicKey) }

func TestNewStoreStartsEpochWithAlarm(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	seq, _ := s.Head()
	if seq != 1 {
		t.Fatalf("head of a new store: got seq %d, want 1 (the epoch alarm)", seq)
	}
	recs, err := s.Range(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	e, err := recs[0].Record.Event()
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != ledger.Alarm || e.Reason != ledger.AlarmNewEpoch || e.Epoch == 0 || e.Device != cfg.Device {
		t.Errorf("first event: got %+v, want a new_epoch alarm of device %s", e, cfg.Device)
	}
}

func TestAppendSurvivesReopen(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	var last ledger.Event
	for _, tr := range []string{"T1", "T2", "T3"} {
		e, err := s.Append(signIn(tr))
		if err != nil {
			t.Fatal(err)
		}
		last = e
	}
	if last.Seq != 4 || last.ID == "" || last.Prev == "" {
		t.Fatalf("appended event: seq %d id %q prev %q, want seq 4 with id and prev", last.Seq, last.ID, last.Prev)
	}
	epoch := s.Epoch()
	s.Close()

	s2 := open(t, cfg)
	seq, _ := s2.Head()
	if seq != 4 || s2.Epoch() != epoch {
		t.Fatalf("after reopen: seq %d epoch %d, want 4 and %d", seq, s2.Epoch(), epoch)
	}
	e, err := s2.Append(signIn("T4"))
	if err != nil || e.Seq != 5 {
		t.Fatalf("append after reopen: seq %d err %v, want 5", e.Seq, err)
	}
	sum, err := s2.Verify(pub(cfg), VerifyOptions{AllSignatures: true})
	if err != nil || sum.Events != 5 {
		t.Fatalf("verify: %d events, %v; want 5 intact", sum.Events, err)
	}
}

// A byte flipped in any stored event is caught by Verify and blamed on that seq.
func TestVerifyCatchesFlippedByte(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := 0; i < 9; i++ {
		if _, err := s.Append(signIn("T1")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	for _, seq := range []uint64{1, 5, 10} {
		for _, at := range []int{3, 70, 100} { // in the signature, in prev, in the body
			path := filepath.Join(t.TempDir(), "copy.db")
			copyFile(t, cfg.Path, path)
			tamper(t, path, seq, at)
			ro, err := OpenReadOnly(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ro.Verify(pub(cfg), VerifyOptions{})
			ro.Close()
			var p *ledger.Problem
			if !errors.As(err, &p) || p.Seq != seq {
				t.Errorf("byte %d of seq %d flipped: got %v, want a problem at seq %d", at, seq, err, seq)
			}
		}
	}
}

func TestVerifyCatchesDeletedTail(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := 0; i < 4; i++ {
		s.Append(signIn("T1"))
	}
	s.Close()
	db, err := bolt.Open(cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(u64(5)) })
	db.Close()
	ro, err := OpenReadOnly(cfg.Path)
	if err == nil {
		_, err = ro.Verify(pub(cfg), VerifyOptions{})
		ro.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "5") {
		t.Fatalf("last event deleted: got %v, want an error naming seq 5", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tamper flips one byte of a stored record the way an editor of the file would: through bbolt,
// leaving the file itself consistent.
func tamper(t *testing.T, path string, seq uint64, at int) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		v := append([]byte(nil), b.Get(u64(seq))...)
		v[at] ^= 0x20
		return b.Put(u64(seq), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFileMovedAsideAndNewEpoch(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	s.Append(signIn("T1"))
	oldEpoch := s.Epoch()
	s.Close()
	// Garbage over the meta pages: bbolt can no longer open it.
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte(strings.Repeat("garbage!", 1024)), 0)
	f.Close()

	s2 := open(t, cfg)
	if s2.Epoch() == oldEpoch {
		t.Errorf("epoch unchanged after corruption: %d", oldEpoch)
	}
	recs, _ := s2.Range(1, 1)
	e, _ := recs[0].Record.Event()
	if e.Kind != ledger.Alarm || e.Reason != ledger.AlarmNewEpoch || !strings.Contains(e.Note, "moved aside") {
		t.Errorf("first event of the new epoch: got %s %s %q, want a new_epoch alarm saying the file was moved aside", e.Kind, e.Reason, e.Note)
	}
	aside, _ := filepath.Glob(cfg.Path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt files kept: got %v, want one", aside)
	}
	if b, _ := os.ReadFile(aside[0]); !strings.HasPrefix(string(b), "garbage!") {
		t.Error("the moved-aside file is not the corrupt original")
	}
}

func TestTamperedHeadIsCorruption(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	s.Append(signIn("T1"))
	s.Close()
	tamper(t, cfg.Path, 2, 100)
	s2 := open(t, cfg)
	if seq, _ := s2.Head(); seq != 1 {
		t.Errorf("store with a tampered head reopened at seq %d, want a new epoch at 1", seq)
	}
}

func TestWrongKeyRefused(t *testing.T) {
	cfg := testConfig(t)
	open(t, cfg).Close()
	_, other, _ := ed25519.GenerateKey(nil)
	cfg.Key = other
	if _, err := Open(cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("open with another key: got %v, want ErrKeyMismatch", err)
	}
	if _, err := os.Stat(cfg.Path); err != nil {
		t.Fatalf("the ledger must stay in place: %v", err)
	}
}

func TestReadOnlyWhileDaemonRuns(t *testing.T) {
	cfg := testConfig(t)
	open(t, cfg)
	if _, err := OpenReadOnly(cfg.Path); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open beside the writer: got %v, want ErrLocked", err)
	}
}

func TestAck(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := 0; i < 4; i++ {
		s.Append(signIn("T1"))
	}
	ep := s.Epoch()
	steps := []struct {
		epoch, through uint64
		want           uint64
		err            error
		advanced       bool
	}{
		{ep, 2, 2, nil, true},
		{ep, 2, 2, nil, false}, // duplicate
		{ep, 1, 2, nil, false}, // stale / reordered
		{ep + 1, 5, 2, ErrStaleEpoch, false},
		{ep, 9, 2, ErrAckBeyondHead, false},
		{ep, 5, 5, nil, true},
	}
	for i, st := range steps {
		adv, err := s.Ack(st.epoch, st.through)
		got, _ := s.Acked()
		if !errors.Is(err, st.err) || got != st.want || adv != st.advanced {
			t.Errorf("step %d ack(%d, %d): acked %d advanced %v err %v; want %d %v %v", i, st.epoch-ep, st.through, got, adv, err, st.want, st.advanced, st.err)
		}
	}
}

func TestDiskReserveRefusesCapturesKeepsRecords(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	if _, err := s.Append(signIn("T1")); err != nil {
		t.Fatal(err)
	}
	s.cfg.MinFreeBytes = 1 << 62 // more than any disk has
	_, err := s.Append(signIn("T2"))
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("capture over the reserve: got %v, want ErrDiskFull", err)
	}
	if s.Fatal() != nil {
		t.Fatal("a full disk must not be fatal")
	}
	if _, err := s.Append(ledger.Event{Kind: ledger.Alarm, Reason: ledger.AlarmDiskFull}); err != nil {
		t.Fatalf("the alarm saying so must still be recorded: %v", err)
	}
	if _, err := s.PutEvidence(drivers.Frame, []byte("jpeg")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("evidence over the reserve: got %v, want ErrDiskFull", err)
	}
	if sum, err := s.Verify(pub(cfg), VerifyOptions{}); err != nil || sum.Events != 3 {
		t.Fatalf("old records: %d, %v; want all 3 intact", sum.Events, err)
	}
}

func TestEvidenceBudget(t *testing.T) {
	cfg := testConfig(t)
	cfg.EvidenceBudget = 10
	s := open(t, cfg)
	ref, err := s.PutEvidence(drivers.Crop, []byte("0123456"))
	name := ref.SHA256
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(s.EvidencePath(name)); err != nil || string(b) != "0123456" {
		t.Fatalf("stored evidence: %q %v", b, err)
	}
	if again, err := s.PutEvidence(drivers.Crop, []byte("0123456")); err != nil || again != ref {
		t.Fatalf("same evidence again: %+v %v, want %+v stored once", again, err, ref)
	}
	if _, err := s.PutEvidence(drivers.Crop, []byte("abcdef")); !errors.Is(err, ErrEvidenceBudget) {
		t.Fatalf("over budget: got %v, want ErrEvidenceBudget", err)
	}
	if _, err := os.Stat(s.EvidencePath(name)); err != nil {
		t.Fatal("old evidence lost when the budget was reached")
	}
}

// After a failed commit the store takes no more writes and says so.
func TestCommitFailureIsFatal(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	s.db.Close() // every later transaction fails as a dead disk would
	if _, err := s.Append(signIn("T1")); !errors.Is(err, ErrFatal) {
		t.Fatalf("append on a failed disk: got %v, want ErrFatal", err)
	}
	if _, err := s.Append(ledger.Event{Kind: ledger.Alarm}); !errors.Is(err, ErrFatal) {
		t.Fatalf("append after a fatal error: got %v, want ErrFatal", err)
	}
}

func TestRecent(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	old := signIn("OLD")
	old.Time.Wall = time.Now().Add(-48 * time.Hour)
	s.Append(old)
	s.Append(signIn("NEW"))
	evs, err := s.Recent(time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Kind)+":"+e.Trainee)
	}
	if strings.Join(got, ",") != "alarm:,sign_in:NEW" {
		t.Errorf("recent events: got %v, want [alarm: sign_in:NEW] in seq order", got)
	}
}

func testRoster(version uint64, retired bool) *roster.Roster {
	return &roster.Roster{Version: version, Institutions: []roster.Institution{{Code: "0001", City: "3701", County: "00", Name: "济南技师学院", Retired: retired}}}
}

func TestSnapshotIsAConsistentLedger(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := 0; i < 5; i++ {
		s.Append(signIn("T1"))
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.Append(signIn("T2")) // the daemon goes on; the snapshot does not change
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	sum, err := ro.Verify(pub(cfg), VerifyOptions{})
	if err != nil || sum.Events != 6 {
		t.Fatalf("snapshot: %d events, %v; want 6 intact", sum.Events, err)
	}
}

// The ledger's pages are packed: keys only grow, so split pages are never refilled. With one
// commit per event, bbolt's default split leaves the leaf pages 47% used; the store's fill makes
// it 62% (a quarter less disk).
func TestLedgerPagesArePacked(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	e := benchEvent() // a real event's size
	for i := 0; i < 1000; i++ {
		if _, err := s.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	var st bolt.BucketStats
	s.view(func(tx *bolt.Tx) error { st = tx.Bucket(bucketEvents).Stats(); return nil })
	t.Logf("1000 events: %d bytes of leaf pages, %d in use", st.LeafAlloc, st.LeafInuse)
	if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); fill < 0.55 {
		t.Errorf("leaf pages of the events bucket: %.0f%% used (%d of %d bytes), want at least 55%%", 100*fill, st.LeafInuse, st.LeafAlloc)
	}
}
