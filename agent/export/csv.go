// Package export writes what leaves the box for people and other systems: events as CSV that
// opens correctly in Excel and WPS on a Chinese Windows (UTF-8 with a byte-order mark, Chinese
// headers with the codes beside them, the trainee's name from the roster, ID numbers masked,
// times in the configured zone), events as JSON lines, the sign-in sheet (签到表) and the
// class-hour report as CSV, and the verifiable bundle.
//
// The bundle (Write) is one zip an inspector takes away: the events as CSV and as JSON lines, the
// evidence JPEGs they reference, the chain segment (the raw signed records from the first event
// exported to the ledger's head, so the segment links to the head hash), the latest central
// receipt, the device public key, the trainees' names, the words the CSV was written with, and a
// manifest with the SHA-256 of every file, signed with the device key. Verify checks it offline on another machine and names every
// change: a file added, removed or edited, an event record altered, a chain link broken, the head
// hash not matching, an evidence JPEG edited, a CSV cell changed.
//
// Chinese is the default language; English by Options.Lang. Lines end in CRLF (RFC 4180). Cells
// that a spreadsheet would run as a formula (starting with = + - @) are written with a leading
// apostrophe, and codes of digits it would turn into numbers (institution 0001) with a trailing
// tab, which keeps them text in Excel and WPS.
package export

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// BOM is the UTF-8 byte-order mark that makes Excel and WPS read a CSV file as UTF-8.
const BOM = "\ufeff"

// TimeLayout is how times are written in CSV: a form every spreadsheet reads as a date and time,
// in the configured zone (named in the header).
const TimeLayout = "2006-01-02 15:04:05"

// Options say how CSV is written.
type Options struct {
	Lang label.Lang     // "" means Chinese
	Zone *time.Location // nil means time.Local
	// Names maps trainee IDs to names (Names(roster) builds it); a trainee not in it has an
	// empty name.
	Names map[string]string
}

func (o Options) withDefaults() Options {
	if o.Lang == "" {
		o.Lang = label.ZH
	}
	if o.Zone == nil {
		o.Zone = time.Local
	}
	return o
}

// Names maps the roster's trainee IDs to their names.
func Names(r *roster.Roster) map[string]string {
	m := map[string]string{}
	if r != nil {
		for _, t := range r.Trainees {
			m[t.ID] = t.Name
		}
	}
	return m
}

// column is a CSV column: its code and its Chinese and English headers.
type column struct{ code, zh, en string }

func header(cols []column, lang label.Lang) []string {
	h := make([]string, len(cols))
	for i, c := range cols {
		if lang == label.EN {
			h[i] = c.en
		} else {
			h[i] = c.zh + " " + c.code
		}
	}
	return h
}

var eventColumns = []column{
	{"seq", "序号", "seq"},
	{"time", "时间", "time"},
	{"clock_synced", "时钟已同步", "clock synced"},
	{"kind", "类型代码", "kind"},
	{"kind_label", "类型", "kind (label)"},
	{"trainee", "学员编号", "trainee"},
	{"name", "姓名", "name"},
	{"id_masked", "身份证号（脱敏）", "ID number (masked)"},
	{"session", "课次", "session"},
	{"institution", "机构代码", "institution"},
	{"voucher", "培训券", "voucher"},
	{"source", "设备", "source"},
	{"method", "方式代码", "method"},
	{"method_label", "方式", "method (label)"},
	{"score", "比对分数", "score"},
	{"reason", "原因代码", "reason"},
	{"reason_label", "原因", "reason (label)"},
	{"flags", "疑点代码", "flags"},
	{"flags_label", "疑点", "flags (label)"},
	{"operator", "操作员", "operator"},
	{"note", "备注", "note"},
	{"evidence", "证据照片 SHA-256", "evidence SHA-256"},
	{"id", "事件编号", "event id"},
	{"device", "设备编号", "device"},
	{"epoch", "账本纪元", "epoch"},
}

// EventWriter writes events as CSV.
type EventWriter struct {
	cw  *csv.Writer
	opt Options
	row []string
	w   *Words
}

// Words are the words of an events CSV in one language: its header and the labels of the codes
// it shows. A bundle carries the words its CSV was written with (words.json), so that Verify
// rebuilds the CSV with them, and a bundle made by this version verifies under a later one whose
// labels read differently.
type Words struct {
	Lang    label.Lang        `json:"lang"`
	Header  []string          `json:"header"`
	Yes     string            `json:"yes"`
	No      string            `json:"no"`
	Kinds   map[string]string `json:"kinds"`
	Reasons map[string]string `json:"reasons"`
	Flags   map[string]string `json:"flags"`
	Methods map[string]string `json:"methods"`

	fixed bool // the words came from a bundle: a code without a word is shown as the code
}

func newWords(opt Options) *Words {
	h := header(eventColumns, opt.Lang)
	h[1] += " (" + zoneName(opt.Zone) + ")"
	return &Words{Lang: opt.Lang, Header: h, Yes: yesNo(true, opt.Lang), No: yesNo(false, opt.Lang),
		Kinds: map[string]string{}, Reasons: map[string]string{}, Flags: map[string]string{}, Methods: map[string]string{}}
}

// word looks a code up, recording the label it gives unless the words are fixed.
func (w *Words) word(m map[string]string, code string, l func(string) label.Label) string {
	if v, ok := m[code]; ok {
		return v
	}
	if w.fixed {
		return code
	}
	v := l(code).In(w.Lang)
	m[code] = v
	return v
}

func kindLabel(c string) label.Label   { return label.Kind(ledger.Kind(c)) }
func reasonLabel(c string) label.Label { return label.Reason(ledger.Reason(c)) }
func flagLabel(c string) label.Label   { return label.Flag(ledger.Flag(c)) }

// NewEventWriter writes the byte-order mark and the header row, and returns a writer for the
// rows.
func NewEventWriter(w io.Writer, opt Options) (*EventWriter, error) {
	opt = opt.withDefaults()
	return newEventWriter(w, opt, newWords(opt))
}

func newEventWriter(w io.Writer, opt Options, words *Words) (*EventWriter, error) {
	if _, err := io.WriteString(w, BOM); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	ew := &EventWriter{cw: newCSV(w), opt: opt, row: make([]string, len(eventColumns)), w: words}
	if err := ew.cw.Write(words.Header); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return ew, nil
}

// Words are the words the writer has used so far.
func (ew *EventWriter) Words() *Words { return ew.w }

// zoneName is a zone as a header names it: "Asia/Shanghai".
func zoneName(z *time.Location) string { return z.String() }

// Write writes one event.
func (ew *EventWriter) Write(e *ledger.Event) error {
	w := ew.w
	r := ew.row
	r[0] = strconv.FormatUint(e.Seq, 10)
	r[1] = e.Time.Wall.In(ew.opt.Zone).Format(TimeLayout)
	r[2] = w.No
	if e.Time.Synced {
		r[2] = w.Yes
	}
	r[3] = cell(string(e.Kind))
	r[4] = cell(w.word(w.Kinds, string(e.Kind), kindLabel))
	r[5] = cell(e.Trainee)
	r[6] = cell(ew.opt.Names[e.Trainee])
	r[7] = cell(e.IDMasked)
	r[8] = cell(e.Session)
	r[9] = cell(e.Institution)
	r[10] = cell(e.Voucher)
	r[11] = cell(e.Source)
	r[12] = cell(e.Method)
	r[13] = ""
	if e.Method != "" {
		r[13] = cell(w.word(w.Methods, e.Method, label.Method))
	}
	r[14] = ""
	if e.Score != 0 {
		r[14] = cell(strconv.FormatFloat(e.Score, 'g', -1, 64))
	}
	r[15] = cell(string(e.Reason))
	r[16] = ""
	if e.Reason != "" {
		r[16] = cell(w.word(w.Reasons, string(e.Reason), reasonLabel))
	}
	r[17] = cell(joinFlags(e.Flags))
	sep := "、"
	if w.Lang == label.EN {
		sep = ", "
	}
	var fl strings.Builder
	for i, f := range e.Flags {
		if i > 0 {
			fl.WriteString(sep)
		}
		fl.WriteString(w.word(w.Flags, string(f), flagLabel))
	}
	r[18] = cell(fl.String())
	r[19] = cell(e.Operator)
	r[20] = cell(e.Note)
	r[21] = evidenceNames(e.Evidence)
	r[22] = cell(e.ID)
	r[23] = cell(e.Device)
	r[24] = cell(strconv.FormatUint(e.Epoch, 10))
	if err := ew.cw.Write(r); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// Flush writes what is buffered and reports any write error.
func (ew *EventWriter) Flush() error {
	ew.cw.Flush()
	if err := ew.cw.Error(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func yesNo(b bool, lang label.Lang) string {
	switch {
	case lang == label.EN && b:
		return "yes"
	case lang == label.EN:
		return "no"
	case b:
		return "是"
	}
	return "否"
}

// cell makes a value safe for a spreadsheet: a value it would run as a formula (starting with
// = + - @, a tab or a carriage return) gets a leading apostrophe, and a code made of digits that a
// spreadsheet would turn into a number (losing the leading zeros of institution code 0001, or
// showing a 13-digit epoch as 1.76E+12) gets a trailing tab, which Excel and WPS keep as text.
func cell(s string) string {
	if s == "" {
		return s
	}
	if strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	if (s[0] == '0' && len(s) > 1 || len(s) > 11) && allDigits(s) {
		return s + "\t"
	}
	return s
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// newCSV is a CSV writer with the CRLF line ends of RFC 4180, which every spreadsheet expects.
func newCSV(w io.Writer) *csv.Writer {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	return cw
}

func joinFlags(fs []ledger.Flag) string {
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(f))
	}
	return b.String()
}

func flagLabels(fs []ledger.Flag, lang label.Lang) string {
	sep := "、"
	if lang == label.EN {
		sep = ", "
	}
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(label.Flag(f).In(lang))
	}
	return b.String()
}

func evidenceNames(ps []ledger.Photo) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(cell(p.SHA256))
	}
	return b.String()
}

// JSONWriter writes events as JSON lines, one event a line, without enrolled templates (Data).
type JSONWriter struct{ enc *json.Encoder }

// NewJSONWriter returns a JSON lines writer on w.
func NewJSONWriter(w io.Writer) *JSONWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSONWriter{enc: enc}
}

// Write writes one event.
func (jw *JSONWriter) Write(e *ledger.Event) error {
	c := e.WithoutTemplate()
	if err := jw.enc.Encode(&c); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

var sheetColumns = []column{
	{"no", "序号", "no."},
	{"trainee", "学员编号", "trainee"},
	{"name", "姓名", "name"},
	{"id_masked", "身份证号（脱敏）", "ID number (masked)"},
	{"status", "状态", "status"},
	{"in", "签到时间", "signed in"},
	{"in_method", "签到方式", "sign-in method"},
	{"out", "签退时间", "signed out"},
	{"out_method", "签退方式", "sign-out method"},
	{"class_hours", "学时", "class hours"},
	{"credited_minutes", "计入分钟", "minutes credited"},
	{"flags", "疑点", "flags"},
	{"doubt", "学时存疑", "hours in doubt"},
	{"duplicates", "重复打卡", "duplicates"},
}

// Sheet writes a session's sign-in sheet (签到表) as CSV: a few lines naming the session, then
// one row per trainee, the absent ones included.
func Sheet(w io.Writer, sh report.Sheet, opt Options) error {
	opt = opt.withDefaults()
	lang := opt.Lang
	if _, err := io.WriteString(w, BOM); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	cw := newCSV(w)
	t := func(zh, en string) string {
		if lang == label.EN {
			return en
		}
		return zh + " " + en
	}
	when := sh.Start.In(opt.Zone).Format("2006-01-02 15:04") + " – " + sh.End.In(opt.Zone).Format("2006-01-02 15:04")
	head := [][]string{
		{t("签到表", "sign-in sheet")},
		{t("课次", "session"), cell(sh.Session)},
		{t("培训项目", "programme"), cell(sh.Programme), cell(sh.Occupation)},
		{t("班级", "class"), cell(sh.Class)},
		{t("机构代码", "institution"), cell(sh.Institution)},
		{t("时间", "time") + " (" + zoneName(opt.Zone) + ")", when},
		{t("学时", "class hours"), strconv.Itoa(sh.ClassHours)},
		{t("应到", "expected"), strconv.Itoa(sh.Expected), t("已签到", "signed in"), strconv.Itoa(sh.SignedIn),
			t("已签退", "signed out"), strconv.Itoa(sh.SignedOut), t("未到", "missing"), strconv.Itoa(sh.Missing),
			t("有疑点", "flagged"), strconv.Itoa(sh.Flagged)},
		{},
		header(sheetColumns, lang),
	}
	for _, r := range head {
		if err := cw.Write(r); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	for i, r := range sh.Rows {
		var in, inM, out, outM string
		if r.In != nil {
			in, inM = r.In.At.In(opt.Zone).Format(TimeLayout), label.Method(r.In.Method).In(lang)
		}
		if r.Out != nil {
			out, outM = r.Out.At.In(opt.Zone).Format(TimeLayout), label.Method(r.Out.Method).In(lang)
		}
		doubt := ""
		if r.Doubt {
			doubt = yesNo(true, lang)
		}
		row := []string{strconv.Itoa(i + 1), cell(r.Trainee), cell(r.Name), cell(r.IDMasked),
			label.Status(string(r.Status)).In(lang), in, cell(inM), out, cell(outM),
			strconv.Itoa(r.ClassHours), strconv.Itoa(int(r.Credited / time.Minute)), cell(flagLabels(r.Flags, lang)), doubt,
			strconv.Itoa(r.Duplicates)}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

var hoursColumns = []column{
	{"trainee", "学员编号", "trainee"},
	{"name", "姓名", "name"},
	{"id_masked", "身份证号（脱敏）", "ID number (masked)"},
	{"programme", "培训项目", "programme"},
	{"occupation", "职业（工种）", "occupation"},
	{"required", "规定学时", "required hours"},
	{"scheduled", "已排学时", "scheduled hours"},
	{"attended", "出勤学时", "attended hours"},
	{"doubtful", "存疑学时", "hours in doubt"},
	{"ratio", "完成率", "completion"},
	{"held", "已上课次", "sessions held"},
	{"present", "出勤课次", "sessions attended"},
	{"missed", "缺勤课次", "sessions missed"},
	{"no_sign_out", "未签退课次", "sessions without sign-out"},
	{"flags", "疑点", "flags"},
}

// Hours writes the class-hour report as CSV, one row per trainee and programme.
func Hours(w io.Writer, hs []report.Hours, opt Options) error {
	opt = opt.withDefaults()
	if _, err := io.WriteString(w, BOM); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	cw := newCSV(w)
	if err := cw.Write(header(hoursColumns, opt.Lang)); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, h := range hs {
		row := []string{cell(h.Trainee), cell(h.Name), cell(h.IDMasked), cell(h.Programme), cell(h.Occupation),
			strconv.Itoa(h.Required), strconv.Itoa(h.Scheduled), strconv.Itoa(h.Attended), strconv.Itoa(h.Doubtful),
			strconv.FormatFloat(h.Ratio*100, 'f', 1, 64) + "%", strconv.Itoa(h.Held), strconv.Itoa(h.Present),
			cell(strings.Join(h.Missed, " ")), cell(strings.Join(h.NoSignOut, " ")), cell(flagLabels(h.Flags, opt.Lang))}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}
