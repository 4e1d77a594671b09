package export_test

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
)

var cst = time.FixedZone("Asia/Shanghai", 8*3600)

// The store is what a bundle is written from.
var _ export.Ledger = (*store.Store)(nil)

func tinyJPEG(t testing.TB, shade uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 16, 16))
	for i := range img.Pix {
		img.Pix[i] = shade + uint8(i)
	}
	img.Set(0, 0, color.Gray{Y: shade})
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type fixture struct {
	s     *store.Store
	key   ed25519.PrivateKey
	names map[string]string
	dir   string
}

// newLedger builds a real ledger in a temporary directory: the epoch alarm, sign-ins with
// evidence, a refusal, a duplicate, a manual override with a note a spreadsheet would run as a
// formula, and sign-outs.
func newLedger(t testing.TB) fixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := store.Open(store.Config{Path: filepath.Join(dir, "kaoqin.db"), EvidenceDir: filepath.Join(dir, "evidence"),
		Device: "jn-0001-r101", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := fixture{s: s, key: key, dir: dir, names: map[string]string{"T1": "张三", "T2": "李四", "T3": "王五"}}
	base := time.Date(2026, 11, 27, 8, 20, 0, 0, cst)
	add := func(e ledger.Event) {
		t.Helper()
		if _, err := s.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	clk := func(min int) ledger.Clock {
		return ledger.Clock{Wall: base.Add(time.Duration(min) * time.Minute), Synced: true}
	}
	for i, tr := range []string{"T1", "T2", "T3"} {
		ref, err := s.PutEvidence(drivers.Crop, tinyJPEG(t, uint8(40*i)))
		if err != nil {
			t.Fatal(err)
		}
		add(ledger.Event{Kind: ledger.SignIn, Trainee: tr, IDMasked: "370102********123" + fmt.Sprint(i), Session: "S-am", Source: "door",
			Institution: "0001", Method: "face", Score: 0.71, Time: clk(i), Evidence: []ledger.Photo{{SHA256: ref.SHA256, Kind: string(ref.Kind), Size: ref.Size}}})
	}
	add(ledger.Event{Kind: ledger.Refusal, Reason: ledger.ReasonUnknownTrainee, Source: "door", Method: "fingerprint", Note: `subject "99" is not in roster version 3`, Time: clk(4)})
	add(ledger.Event{Kind: ledger.Duplicate, Trainee: "T1", Session: "S-am", Source: "door", Method: "face", Time: clk(5)})
	add(ledger.Event{Kind: ledger.SignIn, Trainee: "T4", Session: "S-am", Method: "manual", Operator: "王老师", Note: "=HYPERLINK(\"http://x\")",
		Flags: []ledger.Flag{ledger.FlagManualOverride, ledger.FlagLate}, Time: ledger.Clock{Wall: base.Add(30 * time.Minute)}})
	for i, tr := range []string{"T1", "T2", "T3"} {
		add(ledger.Event{Kind: ledger.SignOut, Trainee: tr, Session: "S-am", Source: "door", Method: "face", Time: clk(200 + i)})
	}
	return f
}

func (f fixture) opener(name string) (io.ReadCloser, error) { return os.Open(f.s.EvidencePath(name)) }

func (f fixture) bundle(t testing.TB, opt export.BundleOptions) string {
	t.Helper()
	opt.Key, opt.Evidence = f.key, f.opener
	opt.Zone, opt.Names = cst, f.names
	path := filepath.Join(t.TempDir(), "bundle.zip")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.Write(out, f.s, opt); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f fixture) pub() ed25519.PublicKey { return f.key.Public().(ed25519.PublicKey) }

func readZip(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := readZipT(path)
	if out == nil {
		t.Fatalf("%s: not a readable zip", path)
	}
	return out
}

// readZipT reads every file of a zip, or returns nil.
func readZipT(path string) map[string][]byte {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil
		}
		out[f.Name] = b
	}
	return out
}

// rewrite copies the bundle at path with edit applied to its files (in the original order; a nil
// content drops the file; extra files are appended).
func rewrite(t *testing.T, path string, edit func(files map[string][]byte)) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := readZip(t, path)
	var order []string
	for _, f := range zr.File {
		order = append(order, f.Name)
	}
	edit(files)
	for name := range files {
		found := false
		for _, o := range order {
			found = found || o == name
		}
		if !found {
			order = append(order, name)
		}
	}
	dst := filepath.Join(t.TempDir(), "edited.zip")
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, name := range order {
		c, ok := files[name]
		if !ok || c == nil {
			continue
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(c)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestBundleVerifies(t *testing.T) {
	f := newLedger(t)
	var stages []string
	path := f.bundle(t, export.BundleOptions{Progress: func(p export.Progress) {
		if len(stages) == 0 || stages[len(stages)-1] != p.Stage {
			stages = append(stages, p.Stage)
		}
	}})
	if want := []string{"events.csv", "events.jsonl", "chain.bin", "evidence/"}; strings.Join(stages, " ") != strings.Join(want, " ") {
		t.Errorf("progress stages: got %v, want %v", stages, want)
	}
	res, err := export.VerifyFile(path, export.VerifyOptions{Key: f.pub()})
	if err != nil {
		t.Fatalf("an untouched bundle: got %v, want it to verify", err)
	}
	if res.Events != 10 || res.Records != 10 || res.Evidence != 3 || !res.KeyTrusted {
		t.Errorf("got %d events, %d records, %d evidence, trusted %v; want 10, 10, 3, true", res.Events, res.Records, res.Evidence, res.KeyTrusted)
	}

	files := readZip(t, path)
	c := files["events.csv"]
	if !bytes.HasPrefix(c, []byte(export.BOM)) {
		t.Fatalf("events.csv does not start with the UTF-8 BOM: % x", c[:3])
	}
	rows, err := csv.NewReader(bytes.NewReader(c[len(export.BOM):])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.Fields(h)[1]] = i
	}
	if rows[0][col["name"]] != "姓名 name" || rows[0][col["kind"]] != "类型代码 kind" {
		t.Errorf("header: got %q", rows[0])
	}
	if got := rows[2][col["name"]]; got != "张三" {
		t.Errorf("row of T1: got name %q, want 张三", got)
	}
	if got := rows[2][col["time"]]; got != "2026-11-27 08:20:00" {
		t.Errorf("time: got %q, want 2026-11-27 08:20:00 in the configured zone", got)
	}
	if got := rows[2][col["institution"]]; got != "0001\t" {
		t.Errorf("institution: got %q, want 0001 with a tab that keeps it text in a spreadsheet", got)
	}
	if !bytes.HasSuffix(c, []byte("\r\n")) || bytes.Count(c, []byte("\r\n")) != 11 {
		t.Errorf("events.csv: want 11 lines each ending in CRLF")
	}
	if got := rows[2][col["kind_label"]]; got != "签到" {
		t.Errorf("kind label: got %q, want 签到", got)
	}
	if got := rows[7][col["note"]]; !strings.HasPrefix(got, "'=") {
		t.Errorf("a note starting with = : got %q, want it guarded with an apostrophe", got)
	}
	if got := rows[7][col["flags_label"]]; got != "人工补签、迟到" {
		t.Errorf("flags label: got %q", got)
	}
	if n := bytes.Count(files["events.jsonl"], []byte("\n")); n != 10 {
		t.Errorf("events.jsonl: %d lines, want 10", n)
	}
}

func TestBundleFilterAndReceipt(t *testing.T) {
	f := newLedger(t)
	seq, _ := f.s.Head()
	var acked [32]byte
	f.s.Scan(3, func(s uint64, r ledger.Record) error {
		if s == 3 {
			acked = r.Hash()
		}
		return nil
	})
	rc := &export.Receipt{Device: "jn-0001-r101", Epoch: f.s.Epoch(), AckedSeq: 3, Hash: hex.EncodeToString(acked[:]), At: time.Now(), Signature: []byte("central")}
	path := f.bundle(t, export.BundleOptions{Filter: ledger.Filter{Kind: ledger.SignOut}, Receipt: rc})
	checked := false
	res, err := export.VerifyFile(path, export.VerifyOptions{Key: f.pub(), CheckReceipt: func(r export.Receipt) error {
		checked = true
		if string(r.Signature) != "central" {
			return errors.New("bad")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 3 || res.Manifest.First != 3 || res.Manifest.Last != seq || !res.ReceiptChecked || !checked {
		t.Errorf("got %d events, segment %d-%d, receipt checked %v/%v; want 3 sign-outs, segment 3-%d, receipt checked",
			res.Events, res.Manifest.First, res.Manifest.Last, res.ReceiptChecked, checked, seq)
	}

	// A receipt for a seq the bundle's ledger no longer has: events removed after it.
	rc2 := *rc
	rc2.AckedSeq = seq + 5
	path = f.bundle(t, export.BundleOptions{Receipt: &rc2})
	_, err = export.VerifyFile(path, export.VerifyOptions{Key: f.pub()})
	wantProblem(t, err, export.EventsRemoved, "chain.bin", fmt.Sprintf("events removed after seq %d was acknowledged", seq+5))

	// A receipt whose hash is not the record's.
	rc3 := *rc
	rc3.Hash = strings.Repeat("ab", 32)
	path = f.bundle(t, export.BundleOptions{Receipt: &rc3})
	_, err = export.VerifyFile(path, export.VerifyOptions{Key: f.pub()})
	wantProblem(t, err, export.ReceiptMismatch, "chain.bin", "differs from the one the central system acknowledged")
}

func wantProblem(t *testing.T, err error, code export.Code, file, what string) {
	t.Helper()
	var e *export.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a bundle problem %s in %s: %q", err, code, file, what)
	}
	for _, p := range e.Problems {
		if p.Code == code && p.File == file && strings.Contains(p.What, what) {
			return
		}
	}
	t.Errorf("got %v\nwant a problem %s in %s: %q", err, code, file, what)
}

// frames splits chain.bin into records.
func frames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func unframe(recs [][]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

func TestBundleEditsAreNamed(t *testing.T) {
	f := newLedger(t)
	path := f.bundle(t, export.BundleOptions{})
	files := readZip(t, path)
	var photo string
	for name := range files {
		if strings.HasPrefix(name, "evidence/") {
			photo = name
		}
	}
	cases := []struct {
		name       string
		edit       func(m map[string][]byte)
		key        ed25519.PublicKey
		code       export.Code
		file, what string
	}{
		{"a name edited in the CSV", func(m map[string][]byte) {
			m["events.csv"] = bytes.Replace(m["events.csv"], []byte("张三"), []byte("张四"), 1)
		}, nil, export.EventsEdited, "events.csv", "row 3 edited: 姓名 name"},
		{"a CSV row removed", func(m map[string][]byte) {
			lines := bytes.SplitAfter(m["events.csv"], []byte("\n"))
			m["events.csv"] = bytes.Join(append(lines[:4:4], lines[5:]...), nil)
		}, nil, export.EventsEdited, "events.csv", "edited"},
		{"the CSV's byte-order mark removed", func(m map[string][]byte) {
			m["events.csv"] = bytes.TrimPrefix(m["events.csv"], []byte(export.BOM))
		}, nil, export.EventsEdited, "events.csv", "byte-order mark is gone"},
		{"a JSON line edited", func(m map[string][]byte) {
			m["events.jsonl"] = bytes.Replace(m["events.jsonl"], []byte(`"T2"`), []byte(`"T9"`), 1)
		}, nil, export.EventsEdited, "events.jsonl", "line 3 edited"},
		{"an evidence JPEG edited", func(m map[string][]byte) {
			c := bytes.Clone(m[photo])
			c[len(c)/2] ^= 0x01
			m[photo] = c
		}, nil, export.EvidenceEdited, photo, "evidence JPEG edited"},
		{"an evidence JPEG removed", func(m map[string][]byte) { delete(m, photo) }, nil, export.EvidenceRemoved, photo, "evidence removed"},
		{"a file added", func(m map[string][]byte) { m["evidence/extra.jpg"] = tinyJPEG(t, 9) }, nil, export.FileAdded, "evidence/extra.jpg", "file added"},
		{"the names file removed", func(m map[string][]byte) { delete(m, "names.json") }, nil, export.FileRemoved, "names.json", "file removed"},
		{"a label edited in the words", func(m map[string][]byte) {
			m["words.json"] = bytes.Replace(m["words.json"], []byte("签到"), []byte("签退"), 1)
		}, nil, export.FileEdited, "words.json", "edited"},
		{"an event record edited in the chain", func(m map[string][]byte) {
			recs := frames(m["chain.bin"])
			recs[4] = bytes.Replace(recs[4], []byte(`"unknown_trainee"`), []byte(`"unidentified"   `), 1)
			m["chain.bin"] = unframe(recs)
		}, nil, export.RecordEdited, "chain.bin", "event record edited"},
		{"a record removed from the chain", func(m map[string][]byte) {
			recs := frames(m["chain.bin"])
			m["chain.bin"] = unframe(append(recs[:5:5], recs[6:]...))
		}, nil, export.LinkBroken, "chain.bin", "chain link broken"},
		{"the last record removed", func(m map[string][]byte) {
			recs := frames(m["chain.bin"])
			m["chain.bin"] = unframe(recs[:len(recs)-1])
		}, nil, export.HeadMismatch, "chain.bin", "head hash does not match"},
		{"the manifest edited", func(m map[string][]byte) {
			m["manifest.json"] = bytes.Replace(m["manifest.json"], []byte(`"events": 10`), []byte(`"events": 9`), 1)
		}, nil, export.ManifestEdited, "manifest.json", "signature does not verify"},
		{"the manifest's signature removed", func(m map[string][]byte) { delete(m, "manifest.sig") }, nil, export.FileRemoved, "manifest.sig", "file removed"},
		{"another device's key", func(m map[string][]byte) {}, otherKey(t), export.KeyUntrusted, "device.pub", "not the device key you trust"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			edited := rewrite(t, path, c.edit)
			_, err := export.VerifyFile(edited, export.VerifyOptions{Key: f.pub()})
			if c.key != nil {
				_, err = export.VerifyFile(edited, export.VerifyOptions{Key: c.key})
			}
			wantProblem(t, err, c.code, c.file, c.what)
		})
	}

	// The rewritten but unedited bundle still verifies (the test's zip copy is faithful).
	if _, err := export.VerifyFile(rewrite(t, path, func(map[string][]byte) {}), export.VerifyOptions{Key: f.pub()}); err != nil {
		t.Errorf("a faithful copy: got %v", err)
	}
	// Garbage is an error, never a panic.
	if _, err := export.Verify(bytes.NewReader([]byte("PK\x03\x04 not a zip")), 17, export.VerifyOptions{}); err == nil {
		t.Error("garbage: got no error")
	}
}

func otherKey(t *testing.T) ed25519.PublicKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestBundleNeedsTheKey(t *testing.T) {
	f := newLedger(t)
	if _, err := export.Write(io.Discard, f.s, export.BundleOptions{}); !errors.Is(err, export.ErrNoKey) {
		t.Errorf("without a key: got %v, want ErrNoKey", err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if _, err := export.Write(io.Discard, f.s, export.BundleOptions{Key: other}); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Errorf("with another key: got %v", err)
	}
}

func TestEnglishBundle(t *testing.T) {
	f := newLedger(t)
	path := f.bundle(t, export.BundleOptions{Options: export.Options{Lang: label.EN}})
	if _, err := export.VerifyFile(path, export.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	c := readZip(t, path)["events.csv"]
	if !bytes.Contains(c, []byte("sign-in")) || bytes.Contains(c, []byte("签到")) {
		t.Errorf("English CSV: got\n%s", c)
	}
}

// A photo damaged on the box's disk is left out and named, and the rest of the bundle verifies;
// a photo deleted after its acknowledgement is listed as missing.
func TestBundleDamagedAndMissingEvidence(t *testing.T) {
	f := newLedger(t)
	var names []string
	f.s.Scan(1, func(_ uint64, r ledger.Record) error {
		e, _ := r.Event()
		for _, p := range e.Evidence {
			names = append(names, p.SHA256)
		}
		return nil
	})
	if len(names) != 3 {
		t.Fatalf("fixture: %d photos, want 3", len(names))
	}
	if err := os.WriteFile(f.s.EvidencePath(names[0]), []byte("not the photo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.s.EvidencePath(names[1])); err != nil {
		t.Fatal(err)
	}
	// An event naming evidence by something that is not a SHA-256 (never opened).
	if _, err := f.s.Append(ledger.Event{Kind: ledger.Alarm, Note: "odd", Time: ledger.Clock{Wall: time.Now()},
		Evidence: []ledger.Photo{{SHA256: "../../etc/passwd", Kind: "frame"}}}); err != nil {
		t.Fatal(err)
	}
	path := f.bundle(t, export.BundleOptions{})
	res, err := export.VerifyFile(path, export.VerifyOptions{Key: f.pub()})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if res.Evidence != 1 || len(m.DamagedEvidence) != 2 || m.DamagedEvidence[0] != names[0] || m.DamagedEvidence[1] != "../../etc/passwd" ||
		len(m.MissingEvidence) != 1 || m.MissingEvidence[0] != names[1] {
		t.Errorf("got %d photos, damaged %v, missing %v; want 1, [%s ../../etc/passwd], [%s]", res.Evidence, m.DamagedEvidence, m.MissingEvidence, names[0], names[1])
	}
	var en []string
	for _, n := range res.Notes {
		en = append(en, n.EN)
	}
	if notes := strings.Join(en, "\n"); !strings.Contains(notes, "damaged on the box") || !strings.Contains(notes, "no longer on the box") {
		t.Errorf("notes: got %s", notes)
	}
}

func TestDescribe(t *testing.T) {
	f := newLedger(t)
	path := f.bundle(t, export.BundleOptions{})
	res, err := export.VerifyFile(path, export.VerifyOptions{Key: f.pub()})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.Describe(&b, label.ZH)
	if s := b.String(); !strings.HasPrefix(s, "完好：设备 jn-0001-r101") || !strings.Contains(s, "可信公钥") || !strings.Contains(s, "说明：无中心回执") {
		t.Errorf("intact, Chinese: got\n%s", s)
	}
	edited := rewrite(t, path, func(m map[string][]byte) {
		m["events.csv"] = bytes.Replace(m["events.csv"], []byte("张三"), []byte("张四"), 1)
	})
	res, err = export.VerifyFile(edited, export.VerifyOptions{Key: f.pub()})
	if err == nil {
		t.Fatal("edited: verified")
	}
	b.Reset()
	res.Describe(&b, label.ZH)
	if s := b.String(); !strings.HasPrefix(s, "未通过：发现 2 处问题") || !strings.Contains(s, "- 导出的事件与签名记录不符 (events_edited): events.csv: seq 2: row 3 edited: 姓名 name") {
		t.Errorf("edited, Chinese: got\n%s", s)
	}
	b.Reset()
	res.Describe(&b, label.EN)
	if s := b.String(); !strings.HasPrefix(s, "NOT INTACT: 2 problems") || !strings.Contains(s, "file edited (file_edited)") {
		t.Errorf("edited, English: got\n%s", s)
	}
}

// A filter that selects nothing still makes a bundle that verifies: the head record alone.
func TestBundleOfNothing(t *testing.T) {
	f := newLedger(t)
	path := f.bundle(t, export.BundleOptions{Filter: ledger.Filter{Since: time.Date(2030, 1, 1, 0, 0, 0, 0, cst)}})
	res, err := export.VerifyFile(path, export.VerifyOptions{Key: f.pub()})
	if err != nil {
		t.Fatal(err)
	}
	head, _ := f.s.Head()
	if res.Events != 0 || res.Records != 1 || res.Manifest.First != head {
		t.Errorf("got %d events, %d records from seq %d; want 0, the head record %d alone", res.Events, res.Records, res.Manifest.First, head)
	}
}
