package export_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

// memLedger is a ledger of real sealed records held in memory, so that the bundle and the CSV
// export it is compared with read the same records at the same cost.
type memLedger struct {
	recs []ledger.Record // recs[i] is seq i+1
	pub  ed25519.PublicKey
}

func (m *memLedger) Scan(from uint64, fn func(uint64, ledger.Record) error) error {
	for i := from; i >= 1 && i <= uint64(len(m.recs)); i++ {
		if err := fn(i, m.recs[i-1]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memLedger) Head() (uint64, [32]byte) {
	return uint64(len(m.recs)), m.recs[len(m.recs)-1].Hash()
}

func (m *memLedger) PublicKey() (ed25519.PublicKey, error) { return m.pub, nil }

// BenchmarkBundle writes a bundle of 100,000 events (one in 100 with a 1 KiB evidence photo)
// beside the baseline of the CSV export alone of the same records in the same run (decode each
// record, write its CSV row). Target: ratio (bundle speed / CSV speed) >= 0.5.
func BenchmarkBundle(b *testing.B) {
	const n = 100_000
	_, key, _ := ed25519.GenerateKey(nil)
	m := &memLedger{pub: key.Public().(ed25519.PublicKey)}
	photos := map[string][]byte{}
	var prev [32]byte
	base := time.Date(2026, 11, 27, 8, 0, 0, 0, cst)
	for i := 1; i <= n; i++ {
		e := ledger.Event{Device: "jn-0001-r101", Epoch: 1764201600000, Seq: uint64(i), Kind: ledger.SignIn,
			Time:   ledger.Clock{Wall: base.Add(time.Duration(i) * time.Second), Mono: int64(i) * 1e9, Boot: "0c8f3a8e-5d7c-4c55-9c1e-8a8f2b0f6d11", Synced: true},
			Source: "door-finger", Method: "fingerprint", Trainee: fmt.Sprintf("T%04d", i%200), IDMasked: "370102********1234",
			Session: "S-2026-11-27-am", Voucher: "SD2026-000123", Institution: "0001", Score: 182, Detail: "page 17",
			Flags: []ledger.Flag{ledger.FlagLate}}
		e.ID = ledger.NewID(e.Time.Wall)
		if i%100 == 0 {
			jpg := bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xd8}, 350)
			sum := sha256.Sum256(jpg)
			name := hex.EncodeToString(sum[:])
			photos[name] = jpg
			e.Evidence = []ledger.Photo{{SHA256: name, Kind: "crop", Size: int64(len(jpg))}}
		}
		r, err := ledger.Seal(&e, prev, key)
		if err != nil {
			b.Fatal(err)
		}
		prev = r.Hash()
		m.recs = append(m.recs, r)
	}
	names := map[string]string{}
	for i := 0; i < 200; i++ {
		names[fmt.Sprintf("T%04d", i)] = "学员"
	}
	opt := export.Options{Zone: cst, Names: names}
	open := func(name string) (io.ReadCloser, error) {
		if p, ok := photos[name]; ok {
			return io.NopCloser(bytes.NewReader(p)), nil
		}
		return nil, fs.ErrNotExist
	}

	// The baseline runs interleaved with the bundle, one each per iteration, so that a change of
	// load on a shared machine weighs on both alike.
	csvOnce := func() {
		ew, err := export.NewEventWriter(io.Discard, opt)
		if err != nil {
			b.Fatal(err)
		}
		err = m.Scan(1, func(_ uint64, r ledger.Record) error {
			e, err := r.Event()
			if err != nil {
				return err
			}
			return ew.Write(&e)
		})
		if err := errors.Join(err, ew.Flush()); err != nil {
			b.Fatal(err)
		}
	}
	var size countWriter
	var csvDur time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		start := time.Now()
		csvOnce()
		csvDur += time.Since(start)
		b.StartTimer()
		size = 0
		man, err := export.Write(&size, m, export.BundleOptions{Options: opt, Key: key, Evidence: open})
		if err != nil || man.Events != n {
			b.Fatalf("bundle: %d events, %v", man.Events, err)
		}
	}
	b.StopTimer()
	rate := float64(n*b.N) / b.Elapsed().Seconds()
	csvRate := float64(n*b.N) / csvDur.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(csvRate, "csv-events/s")
	b.ReportMetric(rate/csvRate, "ratio")
	b.ReportMetric(float64(size)/n, "bundle-bytes/event")
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
