package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

func benchEvent() ledger.Event {
	return ledger.Event{Kind: ledger.SignIn, Source: "door-finger", Method: "fingerprint", Trainee: "T000123",
		IDMasked: "370102********1234", Session: "S-2026-11-27-am", Voucher: "SD2026-000123", Institution: "0001",
		Score: 182, Detail: "page 17", Flags: []ledger.Flag{ledger.FlagLate},
		Time: ledger.Clock{Wall: time.Now(), Mono: 123456789, Boot: "0c8f3a8e-5d7c-4c55-9c1e-8a8f2b0f6d11", Synced: true}}
}

// BenchmarkAppend measures a durable append of a decided, signed event against the baseline of a
// bare bbolt Update putting one value of the same size on the same disk, in the same run. Target:
// ratio >= 0.8 (encoding, hashing and signing cost at most a fifth of the fsync).
func BenchmarkAppend(b *testing.B) {
	cfg := testConfig(b)
	s := open(b, cfg)
	e := benchEvent()
	sealed, _ := ledger.Seal(&e, ledger.ZeroHash, cfg.Key)
	size := len(sealed)

	db, err := bolt.Open(filepath.Join(filepath.Dir(cfg.Path), "bare.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucketEvents); return err })
	val := make([]byte, size)

	// The baseline runs the same number of iterations in the same run, outside the timer.
	b.StopTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Put(u64(uint64(i+1)), val) })
		if err != nil {
			b.Fatal(err)
		}
	}
	bareDur := time.Since(start)
	b.StartTimer()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Append(e); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perSec := float64(b.N) / b.Elapsed().Seconds()
	bareSec := float64(b.N) / bareDur.Seconds()
	b.ReportMetric(perSec, "appends/s")
	b.ReportMetric(bareSec, "bare-updates/s")
	b.ReportMetric(perSec/bareSec, "ratio")
	b.ReportMetric(float64(size), "record-bytes")
}

// BenchmarkVerify measures `kaoqin verify` (Store.Verify) over a 1,000,000-event ledger, beside
// the baseline of a bare cursor scan that only hashes each record. Target: >= 200,000 events/s.
// It also reports the file's size per event, what five years of a classroom cost in disk.
func BenchmarkVerify(b *testing.B) {
	benchVerify(b, 1_000_000, VerifyOptions{}, 200_000)
}

// BenchmarkVerifyAllSignatures is `kaoqin verify --all-signatures`, every event's own ed25519
// signature checked too, over 100,000 events: the cost the default anchoring avoids.
func BenchmarkVerifyAllSignatures(b *testing.B) {
	benchVerify(b, 100_000, VerifyOptions{AllSignatures: true}, 0)
}

func benchVerify(b *testing.B, n int, opt VerifyOptions, target float64) {
	cfg := testConfig(b)
	buildLedger(b, cfg, n)
	ro, err := OpenReadOnly(cfg.Path)
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	var used int64 // the pages in use, not the file's preallocated tail
	ro.db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	pk := pub(cfg)

	b.ResetTimer()
	b.StopTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		ro.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketEvents).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				ledger.Record(v).Hash()
			}
			return nil
		})
	}
	bareDur := time.Since(start)
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		sum, err := ro.Verify(pk, opt)
		if err != nil || sum.Events != uint64(n) {
			b.Fatalf("verify: %d events, %v", sum.Events, err)
		}
	}
	b.StopTimer()
	rate := float64(n*b.N) / b.Elapsed().Seconds()
	bareRate := float64(n*b.N) / bareDur.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(bareRate, "bare-hash-scan/s")
	b.ReportMetric(rate/bareRate, "ratio")
	b.ReportMetric(float64(used)/float64(n), "disk-bytes/event")
	if target > 0 {
		b.ReportMetric(rate/target, "x-target")
	}
}

// buildLedger writes n signed, chained events straight into the file in large transactions (the
// ledger a year of a busy classroom makes; Append would take minutes of fsyncs to build it).
func buildLedger(b *testing.B, cfg Config, n int) {
	b.Helper()
	s := open(b, cfg) // epoch alarm at seq 1
	seq, head := s.Head()
	e := benchEvent()
	for seq < uint64(n) {
		err := s.update(func(tx *bolt.Tx) error {
			ev := events(tx)
			for j := 0; j < 10000 && seq < uint64(n); j++ {
				seq++
				e.Device, e.Epoch, e.Seq, e.ID = cfg.Device, s.epoch, seq, ledger.NewID(e.Time.Wall)
				rec, err := ledger.Seal(&e, head, cfg.Key)
				if err != nil {
					return err
				}
				head = rec.Hash()
				if err := ev.Put(u64(seq), rec); err != nil {
					return err
				}
			}
			m := tx.Bucket(bucketMeta)
			return errorsJoin(m.Put(keyHeadSeq, u64(seq)), m.Put(keyHeadHash, head[:]))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench fixture: %w", err)
		}
	}
	return nil
}
