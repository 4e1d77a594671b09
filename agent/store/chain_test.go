package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// rewrite replaces stored records from seq on by the events made by mk, sealed with the device's
// own key and linked from the record before, and moves the recorded head to the last of them: what
// an institution holding the box's key could write into the file. It returns the new records.
func rewrite(t *testing.T, cfg Config, from uint64, mk []func(prev ledger.Event) ledger.Event) []ledger.Record {
	t.Helper()
	db, err := bolt.Open(cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []ledger.Record
	err = db.Update(func(tx *bolt.Tx) error {
		b, m := tx.Bucket(bucketEvents), tx.Bucket(bucketMeta)
		prevRec := ledger.Record(b.Get(u64(from - 1)))
		prevEv, err := prevRec.Event()
		if err != nil {
			return err
		}
		prev := prevRec.Hash()
		for i, f := range mk {
			e := f(prevEv)
			r, err := ledger.Seal(&e, prev, cfg.Key)
			if err != nil {
				return err
			}
			if err := b.Put(u64(from+uint64(i)), r); err != nil {
				return err
			}
			prev, prevEv = r.Hash(), e
			out = append(out, r)
		}
		return errors.Join(m.Put(keyHeadSeq, u64(from+uint64(len(mk))-1)), m.Put(keyHeadHash, prev[:]))
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyFile(t *testing.T, cfg Config) error {
	t.Helper()
	ro, err := OpenReadOnly(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.Verify(pub(cfg), VerifyOptions{})
	return err
}

// fourEvents is a closed store of the alarm and three sign-ins, seqs 1-4.
func fourEvents(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := 0; i < 3; i++ {
		if _, err := s.Append(signIn("T1")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return cfg
}

func wantProblemAt(t *testing.T, what string, err error, seq uint64) {
	t.Helper()
	var p *ledger.Problem
	if !errors.As(err, &p) || p.Seq != seq {
		t.Errorf("%s: got %v, want a problem at seq %d", what, err, seq)
	}
}

// Records of an old epoch, signed with the device's key and linked into the file, are caught by
// verify at the first of them; so are records whose seq is not their place, or of another device.
func TestVerifyRefusesSignedRecordsOutOfPlace(t *testing.T) {
	tests := []struct {
		name string
		mk   func(prev ledger.Event) ledger.Event
	}{
		{"an old epoch's record", func(p ledger.Event) ledger.Event { p.Epoch--; p.Seq++; p.ID = ""; return p }},
		{"a seq other than its place", func(p ledger.Event) ledger.Event { p.Seq += 2; return p }},
		{"another device's record", func(p ledger.Event) ledger.Event { p.Device = "jn-0001-r102"; p.Seq++; return p }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fourEvents(t)
			if err := verifyFile(t, cfg); err != nil {
				t.Fatalf("before: %v", err)
			}
			next := func(p ledger.Event) ledger.Event { p.Seq++; return p }
			rewrite(t, cfg, 3, []func(ledger.Event) ledger.Event{tc.mk, next})
			wantProblemAt(t, tc.name+" at seq 3", verifyFile(t, cfg), 3)
		})
	}
}

// A head record altered and its hash written into the meta, so that only its signature can tell,
// is refused on open: the file is moved aside whole and a new epoch begins saying why.
func TestHeadWithBadSignatureIsMovedAside(t *testing.T) {
	cfg := fourEvents(t)
	s := open(t, cfg)
	oldEpoch := s.Epoch()
	s.Close()
	rewrite(t, cfg, 4, []func(ledger.Event) ledger.Event{func(p ledger.Event) ledger.Event {
		p.Seq++
		return p
	}})
	// Flip a byte of the body and record the flipped record's hash as the head.
	db, err := bolt.Open(cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		r := append(ledger.Record(nil), b.Get(u64(4))...)
		i := strings.Index(string(r), `"trainee":"T1"`)
		r[i+len(`"trainee":"T`)] = '9'
		h := r.Hash()
		return errors.Join(b.Put(u64(4), r), tx.Bucket(bucketMeta).Put(keyHeadHash, h[:]))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s2 := open(t, cfg)
	if s2.Epoch() == oldEpoch {
		t.Fatalf("store with a forged head reopened in epoch %d, want a new epoch", oldEpoch)
	}
	recs, err := s2.Range(1, 2)
	if err != nil || len(recs) != 1 {
		t.Fatalf("new epoch: got %d records, %v; want the alarm alone", len(recs), err)
	}
	e, _ := recs[0].Record.Event()
	if e.Reason != ledger.AlarmNewEpoch || !strings.Contains(e.Note, "signature") {
		t.Errorf("new epoch alarm: got %s %q, want new_epoch saying the signature failed", e.Reason, e.Note)
	}
	aside, _ := filepath.Glob(cfg.Path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("files moved aside: got %v, want one", aside)
	}
	if fi, err := os.Stat(aside[0]); err != nil || fi.Size() == 0 {
		t.Fatalf("the moved-aside ledger: %v", err)
	}
}

// The cursor can reach the head and no further: an ack of the event after the head would count
// an event not yet appended as delivered, and it would never be sent.
func TestAckOnePastTheHeadIsRefused(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := 0; i < 3; i++ {
		s.Append(signIn("T1"))
	}
	head, _ := s.Head()
	if adv, err := s.Ack(s.Epoch(), head+1); !errors.Is(err, ErrAckBeyondHead) || adv {
		t.Fatalf("ack of head+1: got advanced %v, %v; want ErrAckBeyondHead", adv, err)
	}
	if got, _ := s.Acked(); got != 0 {
		t.Fatalf("acked after a refused ack: got %d, want 0", got)
	}
	if adv, err := s.Ack(s.Epoch(), head); err != nil || !adv {
		t.Fatalf("ack of the head: got advanced %v, %v; want true, nil", adv, err)
	}
	e, err := s.Append(signIn("T2"))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Range(head+1, 10)
	if len(recs) != 1 || recs[0].Seq != e.Seq {
		t.Fatalf("events after the cursor: got %d, want the new one", len(recs))
	}
	if adv, err := s.Ack(s.Epoch(), e.Seq); err != nil || !adv {
		t.Fatalf("ack of the new head: got advanced %v, %v; want true, nil", adv, err)
	}
}
