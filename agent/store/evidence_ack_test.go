package store

import (
	"os"
	"strings"
	"testing"
	"time"

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
