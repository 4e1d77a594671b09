package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// ledgerFile writes a closed ledger of n sign-ins and returns its config and bytes.
func ledgerFile(t testing.TB, n int) (Config, []byte) {
	t.Helper()
	cfg := testConfig(t)
	s, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.Append(signIn(fmt.Sprintf("T%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	raw, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, raw
}

// One flipped byte in a page header of a stopped agent's file: the box opens a new epoch with an
// alarm that names the damage, keeps taking events, and keeps every event that still verifies.
func TestDamagedPageHeaderStartsANewEpochAndSalvages(t *testing.T) {
	cfg, raw := ledgerFile(t, 300)
	var pageSize = 4096
	if os.Getpagesize() > pageSize {
		pageSize = os.Getpagesize()
	}
	raw[2*pageSize+8] ^= 0xff // page 2's header: its flags
	if err := os.WriteFile(cfg.Path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open of a damaged file: got %v, want a new epoch", err)
	}
	defer s.Close()
	var alarm ledger.Event
	if err := s.Scan(1, func(seq uint64, r ledger.Record) error {
		alarm, err = r.Event()
		return ErrStop
	}); err != nil {
		t.Fatal(err)
	}
	if alarm.Kind != ledger.Alarm || alarm.Reason != ledger.AlarmNewEpoch || !strings.Contains(alarm.Note, "damaged") || !strings.Contains(alarm.Note, "salvaged") {
		t.Fatalf("first event: got %s/%s %q, want a new_epoch alarm naming the damage and the salvage", alarm.Kind, alarm.Reason, alarm.Note)
	}
	if _, err := s.Append(signIn("T999")); err != nil {
		t.Fatalf("append after the damage: %v", err)
	}
	n := movedAsideAndSalvaged(t, cfg, s)
	if n == 0 {
		t.Fatal("no event salvaged from a file with one damaged page header")
	}
	t.Logf("salvaged %d of 301 events: %s", n, alarm.Note)
}

// Salvage of an intact file finds the whole chain; of a truncated one, the chain up to the cut.
func TestSalvage(t *testing.T) {
	cfg, raw := ledgerFile(t, 200)
	sv := salvage(raw, pub(cfg))
	if len(sv.Records) != 201 || sv.BrokeAt != 0 {
		t.Fatalf("intact file: got %d records, broke at %d; want all 201 (the new_epoch alarm and 200 sign-ins)", len(sv.Records), sv.BrokeAt)
	}
	// Every copy of seq 100 damaged: the chain is salvaged up to seq 99, and the break is named.
	cut := append([]byte(nil), raw...)
	for off := 0; ; {
		i := bytes.Index(cut[off:], []byte(`"seq":100,`))
		if i < 0 {
			break
		}
		cut[off+i+3] ^= 0x20
		off += i + 1
	}
	broken := salvage(cut, pub(cfg))
	if len(broken.Records) != 99 || broken.BrokeAt != 100 || broken.Last != 201 {
		t.Fatalf("seq 100 damaged: got %d records, broke at %d, last %d; want 99, 100, 201", len(broken.Records), broken.BrokeAt, broken.Last)
	}
	for i, r := range broken.Records {
		if e, err := r.Event(); err != nil || e.Seq != uint64(i+1) {
			t.Fatalf("salvaged record %d: seq %d %v", i, e.Seq, err)
		}
	}
	if got := salvage(raw[:len(raw)/3], pub(cfg)); len(got.Records) > 201 {
		t.Fatalf("a truncated file: %d records", len(got.Records))
	}
	other := testConfig(t)
	if sv := salvage(raw, pub(other)); len(sv.Records) != 0 || sv.Signed != 0 {
		t.Fatalf("with another device's key: got %d records, want none (nothing it did not sign)", len(sv.Records))
	}
}

// Reading a damaged file never panics: Verify and the readers return ErrDamaged or a Problem.
func TestReadersOfADamagedFileDoNotPanic(t *testing.T) {
	cfg, raw := ledgerFile(t, 300)
	opened := 0
	for _, at := range []int{2*4096 + 8, 3*4096 + 20, len(raw) / 2} {
		b := append([]byte(nil), raw...)
		b[at] ^= 0xff
		path := filepath.Join(t.TempDir(), "kaoqin.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenReadOnly(path)
		if err != nil {
			continue // refused at open: fine, not a panic
		}
		opened++
		_, verr := s.Verify(pub(cfg), VerifyOptions{})
		s.Recent(time.Time{}) // must return, not panic
		s.Bindings()
		s.Close()
		if verr == nil {
			t.Errorf("flip at %d: Verify said intact", at)
		}
	}
	if opened == 0 {
		t.Fatal("every damaged file was refused at open: no reader of a damaged file was exercised")
	}
}

// FuzzOpen: a ledger file flipped or cut anywhere opens (moved aside if need be) without a panic,
// and the new store takes appends.
func FuzzOpen(f *testing.F) {
	f.Add(uint32(8192+8), uint8(0xff), uint32(0))
	f.Add(uint32(12000), uint8(1), uint32(0))
	f.Add(uint32(0), uint8(0), uint32(20000))
	f.Add(uint32(4096+16), uint8(0x80), uint32(0))
	cfg, raw := ledgerFile(f, 40)
	f.Fuzz(func(t *testing.T, at uint32, mask uint8, cut uint32) {
		b := append([]byte(nil), raw...)
		if int(at) < len(b) {
			b[at] ^= mask
		}
		if cut > 0 && int(cut) < len(b) {
			b = b[:cut]
		}
		c := cfg
		c.Path = filepath.Join(t.TempDir(), "kaoqin.db")
		c.EvidenceDir = ""
		if err := os.WriteFile(c.Path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(c, slog.New(slog.DiscardHandler))
		if err != nil {
			if errors.Is(err, ErrKeyMismatch) {
				return
			}
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if _, err := s.Append(signIn("T1")); err != nil {
			t.Fatalf("append: %v", err)
		}
	})
}

// The salvaged epoch is listed with its last seq, read back in ranges, and its cursor (how far the
// central system holds it) only moves forward and survives a reopen.
func TestSalvagedEpochCursor(t *testing.T) {
	cfg, raw := ledgerFile(t, 300)
	raw[2*4096+8] ^= 0xff
	if err := os.WriteFile(cfg.Path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, cfg)
	eps, err := s.SalvagedEpochs()
	if err != nil || len(eps) != 1 || eps[0].Epoch == s.Epoch() || eps[0].Last < 2 || eps[0].Acked != 0 {
		t.Fatalf("salvaged epochs: got %+v, %v; want the old epoch, several seqs, none acknowledged", eps, err)
	}
	old, last := eps[0].Epoch, eps[0].Last
	recs, err := s.SalvagedRange(old, 2, 3)
	if err != nil || len(recs) != 3 || recs[0].Seq != 2 || recs[2].Seq != 4 {
		t.Fatalf("SalvagedRange(old, 2, 3): got %d records from %v, %v; want seqs 2-4", len(recs), recs, err)
	}
	if e, err := recs[0].Record.Event(); err != nil || e.Epoch != old || e.Seq != 2 || recs[0].Record.Verify(pub(cfg)) != nil {
		t.Errorf("salvaged seq 2: got %+v, %v; want the old epoch's seq 2, verifying", e, err)
	}
	if recs, _ := s.SalvagedRange(old, last, 10); len(recs) != 1 || recs[0].Seq != last {
		t.Errorf("SalvagedRange from the last seq: got %d records, want 1 (seq %d): another epoch's records are not read", len(recs), last)
	}
	if recs, _ := s.SalvagedRange(old+1, 1, 10); len(recs) != 0 {
		t.Errorf("SalvagedRange of an epoch not salvaged: got %d records, want none", len(recs))
	}
	for _, through := range []uint64{5, 3} {
		if err := s.AckSalvaged(old, through); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, cfg)
	if eps, err := s.SalvagedEpochs(); err != nil || len(eps) != 1 || eps[0].Acked != 5 || eps[0].Last != last {
		t.Errorf("after acks through 5 then 3 and a reopen: got %+v, %v; want acked through 5 (never back), last %d", eps, err, last)
	}
}

// Salvage at the edges of the bytes it is given: a record at their very start (its signature
// the first 64 bytes) is found, and a chain whose last record found does not link breaks there.
func TestSalvageEdges(t *testing.T) {
	cfg := testConfig(t)
	chain := func(n int, forkLast bool) []byte {
		var raw []byte
		prev := ledger.ZeroHash
		for i := range n {
			e := signIn(fmt.Sprintf("T%d", i))
			e.Device, e.Epoch, e.Seq = cfg.Device, 1, uint64(i+1)
			link := prev
			if forkLast && i == n-1 {
				link[0] ^= 1
			}
			r, err := ledger.Seal(&e, link, cfg.Key)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, r...)
			prev = r.Hash()
		}
		return raw
	}
	sv := salvage(chain(3, false), pub(cfg))
	if len(sv.Records) != 3 || sv.BrokeAt != 0 || sv.Last != 3 || sv.Epoch != 1 || sv.Device != cfg.Device {
		t.Errorf("three linked records, the first at byte 0: got %d records, broke at %d, last %d, epoch %d, device %q; want 3, 0, 3, 1, %q",
			len(sv.Records), sv.BrokeAt, sv.Last, sv.Epoch, sv.Device, cfg.Device)
	}
	sv = salvage(chain(3, true), pub(cfg))
	if len(sv.Records) != 2 || sv.BrokeAt != 3 || sv.Last != 3 {
		t.Errorf("the last record not linking: got %d records, broke at %d, last %d; want 2, 3, 3", len(sv.Records), sv.BrokeAt, sv.Last)
	}
}

// Damage that appears under a running store, after the checks at open (flash failing while the
// box runs), is found by the next append: the file is moved aside, a new epoch starts with an
// alarm naming the damage, the reading that found it is recorded in the new epoch, and the old
// epoch's signed events are salvaged.
func TestDamageFoundByAnAppendStartsANewEpoch(t *testing.T) {
	cfg, s := runningLedger(t, 300)
	oldEpoch := s.Epoch()
	// Every tree page's type cleared: whichever page the append reaches first is no longer a
	// branch or a leaf. The records on them are untouched, for the salvage.
	damagePages(t, cfg.Path, func(hdr []byte) (int, []byte) {
		if hdr[8]&(branchFlag|leafFlag) == 0 {
			return 0, nil
		}
		return 8, []byte{0, 0}
	})

	e, err := s.Append(signIn("T999"))
	if err != nil {
		t.Fatalf("the append that finds the damage: %v, want it recorded in a new epoch", err)
	}
	if e.Epoch == oldEpoch || e.Seq != 2 {
		t.Fatalf("the append that found the damage: epoch %d seq %d; want a new epoch (not %d), seq 2 after its alarm", e.Epoch, e.Seq, oldEpoch)
	}
	var alarm ledger.Event
	if err := s.Scan(1, func(_ uint64, r ledger.Record) (err error) {
		if alarm, err = r.Event(); err == nil {
			err = ErrStop
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if alarm.Kind != ledger.Alarm || alarm.Reason != ledger.AlarmNewEpoch || !strings.Contains(alarm.Note, "damaged") {
		t.Fatalf("the new epoch's first event: %s/%s %q, want a new_epoch alarm naming the damage", alarm.Kind, alarm.Reason, alarm.Note)
	}
	if n := movedAsideAndSalvaged(t, cfg, s); n != 301 {
		t.Fatalf("salvaged %d events, want all 301 (the alarm and 300 sign-ins: only page types were damaged)", n)
	}
}

// Check finds a page whose overflow count is damaged under an open store (the next write would
// allocate and free without bound): in a leaf, and in a branch.
func TestCheckFindsADamagedOverflowCount(t *testing.T) {
	for _, kind := range []struct {
		name string
		flag byte
	}{{"leaf", leafFlag}, {"branch", branchFlag}} {
		cfg, s := runningLedger(t, 300)
		if err := s.Check(); err != nil {
			t.Fatalf("an intact file: %v", err)
		}
		n := damagePages(t, cfg.Path, func(hdr []byte) (int, []byte) {
			if hdr[8] != kind.flag {
				return 0, nil
			}
			return 12, binary.LittleEndian.AppendUint32(nil, 1<<20)
		})
		if n == 0 {
			t.Fatalf("no %s page in a ledger of 300 events", kind.name)
		}
		if err := s.Check(); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "spans") {
			t.Errorf("every %s page's overflow count damaged under an open store: Check says %v, want ErrDamaged naming the pages the bucket spans", kind.name, err)
		}
	}
}

// runningLedger is an open store holding the epoch's alarm and n sign-ins.
func runningLedger(t *testing.T, n int) (Config, *Store) {
	t.Helper()
	cfg := testConfig(t)
	s := open(t, cfg)
	for i := range n {
		if _, err := s.Append(signIn(fmt.Sprintf("T%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, s
}

// damagePages changes the file at path in place, through a descriptor of its own, as failing
// flash would under a store that has it open: for the header of each page after the metas, fn
// returns bytes to write at an offset into the page, or nil to leave it. It returns how many
// pages it changed.
func damagePages(t *testing.T, path string, fn func(hdr []byte) (off int, b []byte)) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.LittleEndian.Uint32(raw[pageHeaderSize+8:]))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for at := 2 * ps; at+ps <= len(raw); at += ps {
		if off, b := fn(raw[at : at+pageHeaderSize]); b != nil {
			if _, err := f.WriteAt(b, int64(at+off)); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

// movedAsideAndSalvaged fails unless exactly one damaged file was moved aside, and returns how
// many records s salvaged from it, each verified with the device's key.
func movedAsideAndSalvaged(t *testing.T, cfg Config, s *Store) int {
	t.Helper()
	if asides, _ := filepath.Glob(cfg.Path + ".corrupt-*"); len(asides) != 1 {
		t.Fatalf("files moved aside: %v, want one", asides)
	}
	n := 0
	if err := s.SalvagedRecords(func(epoch, seq uint64, rec ledger.Record) error {
		n++
		return rec.Verify(pub(cfg))
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
