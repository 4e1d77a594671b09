package export_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenEvents covers every column: names, masked IDs, labels, flags, a formula-like note, a
// digit code with a leading zero, evidence, an unsynchronised clock.
func goldenEvents() []ledger.Event {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, time.UTC) }
	return []ledger.Event{
		{Seq: 1, ID: "0193a1b2-0000-7000-8000-000000000001", Device: "jn-0001-r101", Epoch: 1764201600000, Kind: ledger.Alarm,
			Reason: ledger.AlarmNewEpoch, Note: "new store", Time: ledger.Clock{Wall: at(0, 5), Synced: true}},
		{Seq: 2, ID: "0193a1b2-0000-7000-8000-000000000002", Device: "jn-0001-r101", Epoch: 1764201600000, Kind: ledger.SignIn,
			Trainee: "T001", IDMasked: "370102********0011", Session: "S-am", Institution: "0001", Voucher: "SD2026-000123",
			Source: "door", Method: "fingerprint", Score: 182, Flags: []ledger.Flag{ledger.FlagLate, ledger.FlagLowMargin},
			Evidence: []ledger.Photo{{SHA256: "9f2c3b1a00000000000000000000000000000000000000000000000000000000", Kind: "crop"}},
			Time:     ledger.Clock{Wall: at(0, 45), Synced: true}},
		{Seq: 3, ID: "0193a1b2-0000-7000-8000-000000000003", Device: "jn-0001-r101", Epoch: 1764201600000, Kind: ledger.Refusal,
			Reason: ledger.ReasonNoSession, Source: "door", Method: "card", Trainee: "T002", IDMasked: "370102********0021",
			Note: "next sign-in opens 2026-11-27T13:30:00+08:00", Time: ledger.Clock{Wall: at(1, 0), Synced: false}},
		{Seq: 4, ID: "0193a1b2-0000-7000-8000-000000000004", Device: "jn-0001-r101", Epoch: 1764201600000, Kind: ledger.SignIn,
			Trainee: "T003", Session: "S-am", Method: "manual", Operator: "王老师", Note: "=1+1 手指太干",
			Flags: []ledger.Flag{ledger.FlagManualOverride}, Time: ledger.Clock{Wall: at(1, 10), Synced: true}},
	}
}

func TestEventsCSVGolden(t *testing.T) {
	names := map[string]string{"T001": "张三", "T002": "李四", "T003": "王五"}
	zone := time.FixedZone("Asia/Shanghai", 8*3600)
	for _, lang := range []label.Lang{label.ZH, label.EN} {
		var b bytes.Buffer
		ew, err := export.NewEventWriter(&b, export.Options{Lang: lang, Zone: zone, Names: names})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range goldenEvents() {
			if err := ew.Write(&e); err != nil {
				t.Fatal(err)
			}
		}
		if err := ew.Flush(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "events-"+string(lang)+".golden.csv")
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update once to write it)", err)
		}
		// The CSV of a bundle is rebuilt by Verify on another machine, perhaps by another
		// version: a change here breaks the verification of every bundle already made, and must
		// come with a new bundle format.
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s: the events CSV changed:\n got %q\nwant %q", lang, b.String(), want)
		}
	}
}
