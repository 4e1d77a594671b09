package store

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

// Photos are deleted only once acknowledged, and then only past the retention or under budget
// pressure; an unacknowledged photo survives both.
func TestPruneEvidenceKeepsUnacknowledged(t *testing.T) {
	cfg := testConfig(t)
	cfg.EvidenceBudget = 10 << 10
	s := open(t, cfg)
	put := func(tag string, size int) string {
		ref, err := s.PutEvidence(drivers.Crop, []byte("\xff\xd8"+tag+strings.Repeat("x", size)+"\xff\xd9"))
		if err != nil {
			t.Fatal(err)
		}
		return ref.SHA256
	}
	old, oldUnacked, fresh := put("old", 100), put("old unacked", 100), put("fresh", 100)
	long := time.Now().Add(-100 * 24 * time.Hour)
	for _, sha := range []string{old, oldUnacked} {
		if err := os.Chtimes(s.EvidencePath(sha), long, long); err != nil {
			t.Fatal(err)
		}
	}
	for _, sha := range []string{old, fresh} {
		if err := s.AckEvidence(sha); err != nil {
			t.Fatal(err)
		}
	}
	n, _, err := s.PruneEvidence(90*24*time.Hour, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("retention prune: got %d deleted, %v, want 1 (the old acknowledged photo)", n, err)
	}
	exists := func(sha string) bool { _, err := os.Stat(s.EvidencePath(sha)); return err == nil }
	if exists(old) || !exists(oldUnacked) || !exists(fresh) {
		t.Errorf("after the retention prune: old %v, old unacked %v, fresh %v; want false, true, true", exists(old), exists(oldUnacked), exists(fresh))
	}

	// Budget pressure: fill to over nine tenths with unacknowledged photos; only acknowledged ones go.
	var unacked []string
	for i := 0; i < 8; i++ {
		unacked = append(unacked, put(strings.Repeat("u", i+1), 1200))
	}
	if n, _, err := s.PruneEvidence(0, time.Now()); err != nil || n != 1 {
		t.Errorf("budget prune: got %d deleted, %v, want 1 (the only acknowledged photo)", n, err)
	}
	for _, sha := range append(unacked, oldUnacked) {
		if !exists(sha) {
			t.Errorf("unacknowledged photo %s deleted", sha[:12])
		}
	}
}

// Appends and the uplink's evidence bookkeeping run at once without waiting on each other for
// ever: Append holds the store's lock around its transaction, so nothing may take that lock
// inside a transaction (SetEvidenceThrough once read the epoch there, and the two deadlocked).
func TestAppendBesideEvidenceBookkeeping(t *testing.T) {
	s, err := Open(testConfig(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Closed only when both finished: Close would wait for ever behind a stuck transaction.
	const n = 300
	done := make(chan error, 2)
	go func() {
		for i := range n {
			if _, err := s.AppendBatch([]ledger.Event{signIn(fmt.Sprintf("T%d", i))}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for i := range n {
			if err := s.SetEvidenceThrough(uint64(i + 1)); err != nil {
				done <- err
				return
			}
			if _, err := s.EvidenceThrough(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("appends beside SetEvidenceThrough: not both finished after 30 s (a lock taken inside a transaction?)")
		}
	}
	defer s.Close()
	if got, err := s.EvidenceThrough(); err != nil || got != n {
		t.Errorf("EvidenceThrough: got %d, %v; want %d", got, err, n)
	}
}

// The edges of pruning: a photo exactly as old as the retention stays, one a moment older goes; a
// retention of zero keeps every photo; under budget pressure (over nine tenths used; exactly nine
// tenths is not) acknowledged photos go oldest first until exactly half the budget is used, and
// the space they freed counts at once for new photos.
func TestPruneEvidenceEdges(t *testing.T) {
	cfg := testConfig(t)
	cfg.EvidenceBudget = 1000
	s := open(t, cfg)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var shas []string
	put := func(i int) {
		t.Helper()
		body := fmt.Sprintf("photo %03d", i)
		ref, err := s.PutEvidence(drivers.Crop, []byte("\xff\xd8"+body+strings.Repeat("x", 100-4-len(body))+"\xff\xd9"))
		if err != nil {
			t.Fatalf("photo %d: %v", i, err)
		}
		if ref.Size != 100 {
			t.Fatalf("photo %d: %d bytes, want 100", i, ref.Size)
		}
		if err := os.Chtimes(s.EvidencePath(ref.SHA256), base.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.AckEvidence(ref.SHA256); err != nil {
			t.Fatal(err)
		}
		shas = append(shas, ref.SHA256)
	}
	kept := func() int {
		n := 0
		for _, sha := range shas {
			if _, err := os.Stat(s.EvidencePath(sha)); err == nil {
				n++
			}
		}
		return n
	}
	for i := range 9 {
		put(i)
	}
	// 900 of 1000 bytes: exactly nine tenths, not over. Photo i is 60-i minutes old at now.
	now := base.Add(60 * time.Minute)
	if n, _, err := s.PruneEvidence(0, now); err != nil || n != 0 {
		t.Fatalf("retention 0 at exactly nine tenths of the budget: got %d deleted, %v; want none", n, err)
	}
	if n, freed, err := s.PruneEvidence(55*time.Minute, now); err != nil || n != 5 || freed != 500 || kept() != 4 {
		t.Fatalf("retention 55m, photo 5 exactly 55 minutes old: got %d deleted (%d bytes), %v, %d kept; want photos 0-4 (500 bytes), 4 kept", n, freed, err, kept())
	}
	if _, err := os.Stat(s.EvidencePath(shas[5])); err != nil {
		t.Errorf("photo 5, exactly as old as the retention: %v; want it kept", err)
	}
	// The 500 bytes freed count at once: six more photos fit the budget, 1000 bytes in all.
	for i := 9; i < 15; i++ {
		put(i)
	}
	// Over nine tenths: acknowledged photos go oldest first until exactly half the budget is used.
	if n, _, err := s.PruneEvidence(0, now); err != nil || n != 5 || kept() != 5 {
		t.Fatalf("at the full budget: got %d deleted, %v, %d kept; want photos 5-9 deleted (down to 500 bytes), 5 kept", n, err, kept())
	}
	for _, i := range []int{9, 10} {
		_, err := os.Stat(s.EvidencePath(shas[i]))
		if gone := err != nil; gone != (i == 9) {
			t.Errorf("photo %d: deleted %v, want %v (the budget pressure stops at half the budget)", i, gone, i == 9)
		}
	}
}

// With no budget configured there is no budget pressure: acknowledged photos go by age alone.
func TestPruneEvidenceWithoutABudget(t *testing.T) {
	cfg := testConfig(t)
	cfg.EvidenceBudget = 0
	s := open(t, cfg)
	old := time.Now().Add(-2 * time.Hour)
	var shas []string
	for i := range 3 {
		ref, err := s.PutEvidence(drivers.Crop, []byte(fmt.Sprintf("\xff\xd8photo %d\xff\xd9", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AckEvidence(ref.SHA256); err != nil {
			t.Fatal(err)
		}
		shas = append(shas, ref.SHA256)
	}
	if err := os.Chtimes(s.EvidencePath(shas[0]), old, old); err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.PruneEvidence(0, time.Now()); err != nil || n != 0 {
		t.Fatalf("no retention, no budget: got %d deleted, %v; want none", n, err)
	}
	if n, _, err := s.PruneEvidence(time.Hour, time.Now()); err != nil || n != 1 {
		t.Fatalf("retention 1h, one photo 2h old: got %d deleted, %v; want that one", n, err)
	}
	for i, sha := range shas {
		if _, err := os.Stat(s.EvidencePath(sha)); (err == nil) != (i > 0) {
			t.Errorf("photo %d: present %v, want %v", i, err == nil, i > 0)
		}
	}
}
