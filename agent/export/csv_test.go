package export_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
)

func sheetFixture() (report.Sheet, []report.Hours) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, cst) }
	r := &roster.Roster{Version: 1,
		Programmes: []roster.Programme{{ID: "P-elec", Institution: "0001", Occupation: "电工", Category: "A", Hours: 16}},
		Sessions:   []roster.Session{{ID: "S-am", Programme: "P-elec", Class: "C1", Start: at(8, 30), End: at(11, 30)}},
		Trainees: []roster.Trainee{
			{ID: "T1", Name: "张三", IDNumber: roster.WithCheckChar("37010219900101001"), Enrolments: []roster.Enrolment{{Class: "C1"}}},
			{ID: "T2", Name: "=李四", IDNumber: roster.WithCheckChar("37010219900101002"), Enrolments: []roster.Enrolment{{Class: "C1"}}},
		}}
	evs := []ledger.Event{
		{Seq: 1, Kind: ledger.SignIn, Trainee: "T1", Session: "S-am", Method: "fingerprint", Time: ledger.Clock{Wall: at(8, 50), Synced: true}, Flags: []ledger.Flag{ledger.FlagLate}},
		{Seq: 2, Kind: ledger.SignOut, Trainee: "T1", Session: "S-am", Method: "manual", Time: ledger.Clock{Wall: at(11, 35), Synced: true}, Flags: []ledger.Flag{ledger.FlagManualOverride}},
	}
	opt := report.Options{Zone: cst, Now: at(13, 0)}
	sh, _ := report.SheetOf(evs, r, "S-am", opt)
	return sh, report.ClassHours(evs, r, opt)
}

func readRows(t *testing.T, b []byte) [][]string {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(export.BOM)) {
		t.Fatalf("no byte-order mark: %q", b[:min(10, len(b))])
	}
	r := csv.NewReader(bytes.NewReader(b[len(export.BOM):]))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestSheetCSV(t *testing.T) {
	sh, _ := sheetFixture()
	var b bytes.Buffer
	if err := export.Sheet(&b, sh, export.Options{Zone: cst}); err != nil {
		t.Fatal(err)
	}
	rows := readRows(t, b.Bytes())
	if rows[0][0] != "签到表 sign-in sheet" {
		t.Errorf("title: got %q", rows[0][0])
	}
	var table [][]string
	for i, r := range rows {
		if r[0] == "序号 no" {
			table = rows[i+1:]
		}
	}
	if len(table) != 2 {
		t.Fatalf("got %d trainee rows, want 2 (the absent one included):\n%s", len(table), b.String())
	}
	want1 := []string{"1", "T1", "张三", roster.MaskID(roster.WithCheckChar("37010219900101001")), "出勤", "2026-11-27 08:50:00", "指纹",
		"2026-11-27 11:35:00", "人工补签", "3", "160", "迟到、人工补签", "是", "0"}
	if strings.Join(table[0], "|") != strings.Join(want1, "|") {
		t.Errorf("T1:\n got %q\nwant %q", table[0], want1)
	}
	if table[1][2] != "'=李四" || table[1][4] != "缺勤" || table[1][5] != "" {
		t.Errorf("T2: got %q, want the name guarded, 缺勤, no sign-in", table[1])
	}
	if strings.Contains(b.String(), "19900101") {
		t.Error("a full ID number in the sheet")
	}

	b.Reset()
	if err := export.Sheet(&b, sh, export.Options{Zone: cst, Lang: label.EN}); err != nil {
		t.Fatal(err)
	}
	if rows := readRows(t, b.Bytes()); rows[0][0] != "sign-in sheet" || !strings.Contains(b.String(), "absent") {
		t.Errorf("English sheet:\n%s", b.String())
	}
}

func TestHoursCSV(t *testing.T) {
	_, hs := sheetFixture()
	var b bytes.Buffer
	if err := export.Hours(&b, hs, export.Options{}); err != nil {
		t.Fatal(err)
	}
	rows := readRows(t, b.Bytes())
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want header + 2", len(rows))
	}
	got := strings.Join(rows[1][3:], "|")
	if want := "P-elec|电工|16|4|3|3|18.8%|1|1|||人工补签"; got != want {
		t.Errorf("T1 hours: got %s, want %s", got, want)
	}
	if got := strings.Join(rows[2][5:13], "|"); got != "16|4|0|0|0.0%|1|0|S-am" {
		t.Errorf("T2 hours: got %s", got)
	}
}

func TestJSONWriterDropsTemplates(t *testing.T) {
	var b bytes.Buffer
	jw := export.NewJSONWriter(&b)
	if err := jw.Write(&ledger.Event{Seq: 1, Kind: ledger.Enrollment, Trainee: "T1", Data: []byte("template"), Note: "<b>"}); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); strings.Contains(s, `"data"`) || !strings.Contains(s, "<b>") || !strings.HasSuffix(s, "\n") {
		t.Errorf("got %s, want one line without data", s)
	}
}
