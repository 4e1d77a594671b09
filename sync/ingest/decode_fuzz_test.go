package ingest

import (
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// decode reads the columns of any record body without panicking; a body that is not an event
// keeps empty columns and a kind that says so.
func FuzzDecodeColumns(f *testing.F) {
	d := newFakeDevice(f, "jn-0001-r101")
	d.sealOne(nil, 1, ledger.SignIn, "T1", "S1", time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), ledger.Flag("late"))
	f.Add([]byte(d.recs[1][0]))
	f.Add(make([]byte, 64))
	f.Add(append(make([]byte, 64), `{"kind":"sign_in","flags":null,"time":{"wall":"x"}}`...))
	f.Fuzz(func(t *testing.T, rec []byte) {
		if len(rec) < ledger.SigSize {
			return
		}
		c := decode(ledger.Record(rec))
		if c.flags == nil {
			t.Fatalf("flags: got nil, want an empty list (the column is NOT NULL)")
		}
	})
}
