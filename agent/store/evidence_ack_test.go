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
