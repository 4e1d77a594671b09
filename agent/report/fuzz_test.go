package report_test

import (
	"testing"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/report"
)

// FuzzDecodeSpotCheck: any Data of a spot-check event decodes or leaves the counts zero; the
// check is kept either way, and the sheet built from it never panics.
func FuzzDecodeSpotCheck(f *testing.F) {
	f.Add([]byte(`{"headcount":12,"signed_in":13,"seen":["T1"],"not_seen":["T2"],"unsure":[]}`))
	f.Add([]byte(`{"headcount":-1}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		e := ledger.Event{Seq: 7, Kind: report.KindSpotCheck, Session: "S-am", Data: data, Time: ledger.Clock{Wall: at(9, 0)}}
		sc, ok := report.DecodeSpotCheck(&e)
		if !ok || sc.Seq != 7 || sc.Session != "S-am" {
			t.Fatalf("got %+v, %v; want the check kept", sc, ok)
		}
		sh, err := report.SheetOf([]ledger.Event{e}, fixture(), "S-am", report.Options{Zone: cst, Now: at(10, 0)})
		if err != nil || len(sh.SpotChecks) != 1 {
			t.Fatalf("sheet: %v, %d spot checks, want 1", err, len(sh.SpotChecks))
		}
	})
}
