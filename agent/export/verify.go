package export

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Key is the device public key the verifier trusts (from the central system). Nil means the
	// bundle's own device.pub, which proves only that the bundle is consistent with itself: the
	// Result says so and gives the key's fingerprint to compare.
	Key ed25519.PublicKey
	// CheckReceipt, if set, checks the central system's signature on the receipt.
	CheckReceipt func(Receipt) error
	// Progress, if set, is called as the bundle is checked.
	Progress func(Progress)
}

// Code is the kind of a bundle problem.
type Code string

// Problem codes (label.Problem gives their Chinese and English names).
const (
	FileAdded       Code = "file_added"       // a file not in the manifest
	FileRemoved     Code = "file_removed"     // a file of the manifest is not in the zip
	FileEdited      Code = "file_edited"      // a file's content differs from the manifest's hash
	ManifestEdited  Code = "manifest_edited"  // the manifest does not verify or contradicts the records
	KeyUntrusted    Code = "key_untrusted"    // the bundle's device key is not the trusted one
	RecordEdited    Code = "record_edited"    // a signed event record was altered
	LinkBroken      Code = "link_broken"      // a hash link is broken: a record removed or inserted
	HeadMismatch    Code = "head_mismatch"    // the segment does not end at the head the manifest names
	EventsEdited    Code = "events_edited"    // events.csv or events.jsonl differs from the records
	EvidenceEdited  Code = "evidence_edited"  // a photo's content does not match the hash its event names
	EvidenceRemoved Code = "evidence_removed" // a photo an event references is gone
	ReceiptMismatch Code = "receipt_mismatch" // the record at the receipt's seq is not the one acknowledged
	EventsRemoved   Code = "events_removed"   // the bundle ends before an acknowledged seq
	ReceiptInvalid  Code = "receipt_invalid"  // the receipt's central signature does not verify
)

// Codes lists every problem code.
func Codes() []Code {
	return []Code{FileAdded, FileRemoved, FileEdited, ManifestEdited, KeyUntrusted, RecordEdited, LinkBroken, HeadMismatch,
		EventsEdited, EvidenceEdited, EvidenceRemoved, ReceiptMismatch, EventsRemoved, ReceiptInvalid}
}

// Problem is one thing wrong with a bundle: what kind of change, the file, the seq when an event
// is concerned, and what changed.
type Problem struct {
	Code Code
	File string
	Seq  uint64
	What string
}

func (p Problem) String() string {
	if p.Seq > 0 {
		return fmt.Sprintf("%s: seq %d: %s", p.File, p.Seq, p.What)
	}
	return p.File + ": " + p.What
}

// Error is a bundle that does not verify; it lists every problem found.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "export: bundle does not verify (%d problems)", len(e.Problems))
	for i, p := range e.Problems {
		if i == 20 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Result is what a verified bundle says.
type Result struct {
	Manifest Manifest
	// KeyFingerprint is the hex SHA-256 of the device public key's DER; KeyTrusted is set when it
	// is the key VerifyOptions gave.
	KeyFingerprint string
	KeyTrusted     bool
	Records        int // records of the chain segment checked, each signature included
	Events         int
	Evidence       int
	// Receipt is the central receipt carried, if any; ReceiptChecked is set when its seq lies in
	// the segment and the record there has the acknowledged hash.
	Receipt        *Receipt
	ReceiptChecked bool
	// Notes say what the check could not establish, in Chinese and English.
	Notes    []label.Label
	Problems []Problem
}

// VerifyFile verifies the bundle at path.
func VerifyFile(path string, opt VerifyOptions) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return Verify(f, st.Size(), opt)
}

// Verify checks a bundle offline: the manifest's signature, every file against the manifest, no
// file added or removed, the chain segment (every record's signature and every hash link) up to
// the head hash, events.jsonl and events.csv against the records, every evidence JPEG against its
// name, and the receipt against the record it acknowledges. A bundle with any problem returns the
// Result and an *Error listing them all; an unreadable one returns an error alone.
func Verify(r io.ReaderAt, size int64, opt VerifyOptions) (*Result, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("export: not a bundle: %w", err)
	}
	v := &verifier{opt: opt, res: &Result{}, files: map[string]*zip.File{}}
	for _, f := range zr.File {
		if v.files[f.Name] != nil {
			v.bad(FileAdded, f.Name, 0, "file appears twice in the zip")
		}
		v.files[f.Name] = f
	}
	v.run()
	if len(v.res.Problems) > 0 {
		return v.res, &Error{Problems: v.res.Problems}
	}
	return v.res, nil
}

type verifier struct {
	opt   VerifyOptions
	res   *Result
	files map[string]*zip.File
	pub   ed25519.PublicKey
	m     Manifest

	records map[uint64]ledger.Record
}

func (v *verifier) bad(code Code, file string, seq uint64, format string, a ...any) {
	v.res.Problems = append(v.res.Problems, Problem{Code: code, File: file, Seq: seq, What: fmt.Sprintf(format, a...)})
}

func (v *verifier) note(code, zh, en string, a ...any) {
	v.res.Notes = append(v.res.Notes, label.Label{Code: code, ZH: fmt.Sprintf(zh, a...), EN: fmt.Sprintf(en, a...)})
}

func (v *verifier) progress(stage string, done, total int64) {
	if v.opt.Progress != nil {
		v.opt.Progress(Progress{Stage: stage, Done: done, Total: total})
	}
}

// read returns a file's content, or nil and a problem when it is missing or unreadable.
func (v *verifier) read(name string) []byte {
	f := v.files[name]
	if f == nil {
		v.bad(FileRemoved, name, 0, "file removed")
		return nil
	}
	rc, err := f.Open()
	if err != nil {
		v.bad(FileEdited, name, 0, "unreadable: %v", err)
		return nil
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		v.bad(FileEdited, name, 0, "unreadable: %v", err)
		return nil
	}
	return b
}

func (v *verifier) run() {
	mb := v.read(FileManifest)
	if mb == nil {
		return
	}
	if err := json.Unmarshal(mb, &v.m); err != nil {
		v.bad(ManifestEdited, FileManifest, 0, "edited: not a manifest: %v", err)
		return
	}
	v.res.Manifest = v.m
	if v.m.Format != Format {
		v.bad(ManifestEdited, FileManifest, 0, "format %q, want %q", v.m.Format, Format)
	}

	// The key, and the manifest's signature.
	if pb := v.read(FilePublicKey); pb != nil {
		pub, err := parsePEMKey(pb)
		if err != nil {
			v.bad(FileEdited, FilePublicKey, 0, "edited: %v", err)
		} else {
			v.pub = pub
		}
	}
	if v.opt.Key != nil {
		if v.pub != nil && !v.pub.Equal(v.opt.Key) {
			v.bad(KeyUntrusted, FilePublicKey, 0, "not the device key you trust: the bundle was signed by another key")
		}
		v.pub = v.opt.Key
		v.res.KeyTrusted = true
	} else {
		v.note("key_from_bundle", "未提供可信公钥：已用包内 device.pub 核验；请将其指纹与中心系统的设备公钥核对", "no trusted key given: checked with the bundle's own device.pub; compare its fingerprint with the central system's")
	}
	if v.pub == nil {
		return
	}
	der := pubDER(v.pub)
	fp := sha256.Sum256(der)
	v.res.KeyFingerprint = hex.EncodeToString(fp[:])
	if sig := v.read(FileSignature); sig != nil && !ed25519.Verify(v.pub, mb, sig) {
		v.bad(ManifestEdited, FileManifest, 0, "edited: its signature does not verify with the device key")
	}

	// Files against the manifest.
	listed := map[string]bool{FileManifest: true, FileSignature: true}
	for _, f := range v.m.Files {
		listed[f.Name] = true
		v.checkFile(f)
	}
	for name := range v.files {
		if !listed[name] {
			v.bad(FileAdded, name, 0, "file added (not in the manifest)")
		}
	}

	v.checkChain()
	if v.records == nil {
		return
	}
	evs, bodies := v.selection()
	v.res.Events = len(evs)
	if len(evs) != v.m.Events {
		v.bad(ManifestEdited, FileManifest, 0, "says %d events, the records select %d", v.m.Events, len(evs))
	}
	v.checkJSONL(evs, bodies)
	v.checkCSV(evs)
	v.checkEvidence(evs)
	v.checkReceipt()
}

func (v *verifier) checkFile(f File) {
	zf := v.files[f.Name]
	if zf == nil {
		v.bad(FileRemoved, f.Name, 0, "file removed")
		return
	}
	rc, err := zf.Open()
	if err != nil {
		v.bad(FileEdited, f.Name, 0, "unreadable: %v", err)
		return
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		v.bad(FileEdited, f.Name, 0, "unreadable (%v): edited", err)
		return
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 || n != f.Size {
		v.bad(FileEdited, f.Name, 0, "edited: sha256 %s… (%d bytes), the manifest says %s… (%d bytes)", got[:12], n, short(f.SHA256), f.Size)
	}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// checkChain reads chain.bin and checks every record's signature and every link, up to the head.
func (v *verifier) checkChain() {
	b := v.read(FileChain)
	if b == nil {
		return
	}
	var recs []ledger.Record
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			v.bad(FileEdited, FileChain, 0, "edited: %d stray bytes at the end", len(b)-off)
			break
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		off += 4
		if n > len(b)-off {
			v.bad(FileEdited, FileChain, v.m.First+uint64(len(recs)), "edited: a record runs past the end of the file")
			break
		}
		recs = append(recs, ledger.Record(b[off:off+n]))
		off += n
	}
	if len(recs) == 0 {
		v.bad(FileEdited, FileChain, 0, "no records")
		return
	}
	first := v.m.First
	anchor, err := recs[0].Prev()
	if err != nil {
		v.bad(RecordEdited, FileChain, first, "edited: %v", err)
		return
	}
	if first == 1 && anchor != ledger.ZeroHash {
		v.bad(LinkBroken, FileChain, first, "the first record of the epoch names a previous record")
	}
	if hex.EncodeToString(anchor[:]) != v.m.Anchor {
		v.bad(LinkBroken, FileChain, first, "the first record's prev is %s…, the manifest's anchor %s…", hex.EncodeToString(anchor[:6]), short(v.m.Anchor))
	}
	c := ledger.Chain{Pub: v.pub, AllSignatures: true, Device: v.m.Device, Epoch: v.m.Epoch, Seq: first - 1, Head: anchor}
	const batch = 4096
	for i := 0; i < len(recs); i += batch {
		if err := c.Append(recs[i:min(i+batch, len(recs))]); err != nil {
			var p *ledger.Problem
			if errors.As(err, &p) {
				v.bad(chainCode(p.Err), FileChain, p.Seq, "%v", describe(p.Err))
			} else {
				v.bad(RecordEdited, FileChain, 0, "%v", err)
			}
			return
		}
		v.progress(FileChain, int64(c.Seq-first+1), int64(len(recs)))
	}
	v.res.Records = len(recs)
	if c.Seq != v.m.Last {
		v.bad(HeadMismatch, FileChain, c.Seq, "the segment ends at seq %d, the manifest's head is seq %d: records removed or added", c.Seq, v.m.Last)
	}
	if got := hex.EncodeToString(c.Head[:]); got != v.m.HeadHash {
		v.bad(HeadMismatch, FileChain, c.Seq, "the head hash does not match: the records hash to %s…, the manifest says %s…", got[:12], short(v.m.HeadHash))
	}
	v.records = make(map[uint64]ledger.Record, len(recs))
	for i, r := range recs {
		v.records[first+uint64(i)] = r
	}
}

// chainCode is the problem code of a ledger.Chain error.
func chainCode(err error) Code {
	switch {
	case errors.Is(err, ledger.ErrBrokenLink):
		return LinkBroken
	}
	return RecordEdited
}

func describe(err error) string {
	switch {
	case errors.Is(err, ledger.ErrSignature):
		return "event record edited: " + err.Error()
	case errors.Is(err, ledger.ErrBrokenLink):
		return "chain link broken (a record removed or inserted): " + err.Error()
	}
	return err.Error()
}

// selection decodes the segment and applies the manifest's filter: the events that must be in
// events.jsonl and events.csv, with their bodies.
func (v *verifier) selection() ([]ledger.Event, [][]byte) {
	var evs []ledger.Event
	var bodies [][]byte
	for seq := v.m.First; seq <= v.m.Last; seq++ {
		r, ok := v.records[seq]
		if !ok {
			break
		}
		e, err := r.Event()
		if err != nil {
			v.bad(RecordEdited, FileChain, seq, "undecodable: %v", err)
			continue
		}
		if v.m.Filter.Match(&e) {
			e.Data = nil
			evs = append(evs, e)
			bodies = append(bodies, r.Body())
		}
	}
	if v.m.First > 1 {
		v.note("segment", "本包含序号 %d 至 %d 的记录；序号 %d 之前的事件不在包内", "the bundle holds seq %d to %d; events before seq %d are not in it", v.m.First, v.m.Last, v.m.First)
	}
	return evs, bodies
}

func (v *verifier) checkJSONL(evs []ledger.Event, bodies [][]byte) {
	b := v.read(FileEventsJSL)
	if b == nil {
		return
	}
	lines := bytes.Split(b, []byte{'\n'})
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i := 0; i < max(len(lines), len(bodies)); i++ {
		switch {
		case i >= len(lines):
			v.bad(EventsEdited, FileEventsJSL, evs[i].Seq, "line %d removed", i+1)
		case i >= len(bodies):
			v.bad(EventsEdited, FileEventsJSL, 0, "line %d added", i+1)
		case !bytes.Equal(lines[i], bodies[i]):
			v.bad(EventsEdited, FileEventsJSL, evs[i].Seq, "line %d edited: it differs from the signed record", i+1)
		}
	}
}

func (v *verifier) checkCSV(evs []ledger.Event) {
	got := v.read(FileEventsCSV)
	if got == nil {
		return
	}
	var names map[string]string
	if nb := v.read(FileNames); nb != nil {
		if err := json.Unmarshal(nb, &names); err != nil {
			v.bad(FileEdited, FileNames, 0, "edited: %v", err)
		}
	}
	zone, err := time.LoadLocation(v.m.Zone)
	if err != nil {
		zone = time.FixedZone(v.m.Zone, v.m.ZoneOffset)
	}
	opt := Options{Lang: label.Lang(v.m.Lang), Zone: zone, Names: names}.withDefaults()
	words := newWords(opt)
	if wb := v.read(FileWords); wb != nil {
		if err := json.Unmarshal(wb, words); err != nil {
			v.bad(FileEdited, FileWords, 0, "edited: %v", err)
		}
		words.fixed = true
	}
	var want bytes.Buffer
	ew, err := newEventWriter(&want, opt, words)
	if err == nil {
		for i := range evs {
			if err = ew.Write(&evs[i]); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = ew.Flush()
	}
	if err != nil {
		v.bad(EventsEdited, FileEventsCSV, 0, "cannot be rebuilt: %v", err)
		return
	}
	if bytes.Equal(got, want.Bytes()) {
		return
	}
	if !bytes.HasPrefix(got, []byte(BOM)) {
		v.bad(EventsEdited, FileEventsCSV, 0, "edited: the UTF-8 byte-order mark is gone")
		return
	}
	gr, err1 := readCSV(got[len(BOM):])
	wr, err2 := readCSV(want.Bytes()[len(BOM):])
	if err1 != nil || err2 != nil {
		v.bad(EventsEdited, FileEventsCSV, 0, "edited: not CSV any more (%v)", errors.Join(err1, err2))
		return
	}
	hdr := wr[0]
	n := 0
	for i := 0; i < max(len(gr), len(wr)); i++ {
		var seq uint64
		if i > 0 && i-1 < len(evs) {
			seq = evs[i-1].Seq
		}
		switch {
		case i >= len(gr):
			v.bad(EventsEdited, FileEventsCSV, seq, "row %d removed", i+1)
		case i >= len(wr):
			v.bad(EventsEdited, FileEventsCSV, 0, "row %d added", i+1)
		case !slices.Equal(gr[i], wr[i]):
			var cols []string
			for j := 0; j < max(len(gr[i]), len(wr[i])); j++ {
				if j >= len(gr[i]) || j >= len(wr[i]) || gr[i][j] != wr[i][j] {
					name := fmt.Sprintf("column %d", j+1)
					if j < len(hdr) {
						name = hdr[j]
					}
					cols = append(cols, name)
				}
			}
			what := "header"
			if i > 0 {
				what = fmt.Sprintf("row %d", i+1)
			}
			v.bad(EventsEdited, FileEventsCSV, seq, "%s edited: %s", what, strings.Join(cols, ", "))
		default:
			continue
		}
		if n++; n == 20 {
			v.bad(EventsEdited, FileEventsCSV, 0, "more rows differ")
			return
		}
	}
	if n == 0 {
		v.bad(EventsEdited, FileEventsCSV, 0, "edited: the quoting or line endings differ from the records'")
	}
}

func readCSV(b []byte) ([][]string, error) {
	r := csv.NewReader(bufio.NewReader(bytes.NewReader(b)))
	r.FieldsPerRecord = -1
	return r.ReadAll()
}

func (v *verifier) checkEvidence(evs []ledger.Event) {
	missing := map[string]bool{}
	for _, s := range v.m.MissingEvidence {
		missing[s] = true
	}
	for _, s := range v.m.DamagedEvidence {
		missing[s] = true
	}
	referenced := map[string]bool{}
	for i := range evs {
		for _, p := range evs[i].Evidence {
			if referenced[p.SHA256] {
				continue
			}
			referenced[p.SHA256] = true
			name := DirEvidence + p.SHA256 + ".jpg"
			if missing[p.SHA256] {
				if v.files[name] != nil {
					v.bad(ManifestEdited, FileManifest, 0, "lists %s as missing, but the bundle has it", name)
				}
				continue
			}
			f := v.files[name]
			if f == nil {
				v.bad(EvidenceRemoved, name, evs[i].Seq, "evidence removed")
				continue
			}
			rc, err := f.Open()
			if err != nil {
				v.bad(EvidenceEdited, name, evs[i].Seq, "unreadable: %v", err)
				continue
			}
			h := sha256.New()
			_, err = io.Copy(h, rc)
			rc.Close()
			if err != nil || hex.EncodeToString(h.Sum(nil)) != p.SHA256 {
				v.bad(EvidenceEdited, name, evs[i].Seq, "evidence JPEG edited: its content no longer matches the hash the event names")
				continue
			}
			v.res.Evidence++
		}
	}
	for s := range missing {
		if !referenced[s] {
			v.bad(ManifestEdited, FileManifest, 0, "lists missing evidence %s… that no event references", short(s))
		}
	}
	for name := range v.files {
		if s, ok := strings.CutPrefix(name, DirEvidence); ok && !referenced[strings.TrimSuffix(s, ".jpg")] {
			v.bad(FileAdded, name, 0, "evidence that no exported event references")
		}
	}
	if n := len(v.m.MissingEvidence); n > 0 {
		v.note("evidence_missing", "%d 张证据照片已不在设备上（中心确认后按预算删除）", "%d evidence photos were no longer on the box (deleted after the central system acknowledged them)", n)
	}
	if n := len(v.m.DamagedEvidence); n > 0 {
		v.note("evidence_damaged", "%d 张证据照片在设备上已损坏，未放入本包：%s", "%d evidence photos were damaged on the box and left out: %s", n, strings.Join(v.m.DamagedEvidence, " "))
	}
}

func (v *verifier) checkReceipt() {
	if v.files[FileReceipt] == nil {
		v.note("no_receipt", "无中心回执：中心系统尚未收到的事件可能在制作本包之前被删除", "no central receipt: events recorded after the last one the central system holds could have been removed before this bundle was made")
		return
	}
	b := v.read(FileReceipt)
	var rc Receipt
	if err := json.Unmarshal(b, &rc); err != nil {
		v.bad(FileEdited, FileReceipt, 0, "edited: %v", err)
		return
	}
	v.res.Receipt = &rc
	if v.opt.CheckReceipt != nil {
		if err := v.opt.CheckReceipt(rc); err != nil {
			v.bad(ReceiptInvalid, FileReceipt, rc.AckedSeq, "the central signature does not verify: %v", err)
		}
	} else {
		v.note("receipt_unchecked", "未核验中心回执的签名（未提供中心公钥）", "the receipt's central signature was not checked (no central key given)")
	}
	switch {
	case rc.Device != v.m.Device || rc.Epoch != v.m.Epoch:
		v.note("receipt_other", "回执属于设备 %s 纪元 %d，本包属于 %s 纪元 %d", "the receipt is for device %s epoch %d, the bundle for %s epoch %d", rc.Device, rc.Epoch, v.m.Device, v.m.Epoch)
	case rc.AckedSeq > v.m.Last:
		v.bad(EventsRemoved, FileChain, rc.AckedSeq, "events removed after seq %d was acknowledged: the bundle's head is seq %d", rc.AckedSeq, v.m.Last)
	case rc.AckedSeq < v.m.First:
		v.note("receipt_before", "回执序号 %d 早于本包首个序号 %d：未核对", "the receipt's seq %d is before the bundle's first seq %d: not checked", rc.AckedSeq, v.m.First)
	default:
		r := v.records[rc.AckedSeq]
		h := r.Hash()
		if hex.EncodeToString(h[:]) != rc.Hash {
			v.bad(ReceiptMismatch, FileChain, rc.AckedSeq, "the record differs from the one the central system acknowledged")
			return
		}
		v.res.ReceiptChecked = true
		v.note("after_receipt", "序号 %d（%s 确认）之后的事件尚未经中心系统见证", "events after seq %d (acknowledged %s) are not yet witnessed by the central system", rc.AckedSeq, rc.At.Format(time.RFC3339))
	}
}

// Describe writes the result for a person in lang: the verdict, what was checked, every problem
// with its label and detail, and what the check could not establish.
func (r *Result) Describe(w io.Writer, lang label.Lang) error {
	zh := lang != label.EN
	t := func(z, e string) string {
		if zh {
			return z
		}
		return e
	}
	var b strings.Builder
	m := r.Manifest
	if len(r.Problems) == 0 {
		fmt.Fprintf(&b, t("完好：设备 %s 纪元 %d，记录 seq %d–%d（每条签名均已核验），导出事件 %d 条，证据照片 %d 张\n",
			"intact: device %s epoch %d, records seq %d-%d (every signature checked), %d events exported, %d evidence photos\n"),
			m.Device, m.Epoch, m.First, m.Last, r.Events, r.Evidence)
	} else {
		fmt.Fprintf(&b, t("未通过：发现 %d 处问题\n", "NOT INTACT: %d problems\n"), len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s: %s\n", label.Problem(string(p.Code)).Coded(lang), p)
		}
	}
	if m.HeadHash != "" {
		fmt.Fprintf(&b, t("链头哈希 %s（请与中心系统核对）\n", "head hash %s (compare with the central system)\n"), m.HeadHash)
	}
	if r.KeyFingerprint != "" {
		src := t("包内公钥", "the bundle's own key")
		if r.KeyTrusted {
			src = t("可信公钥", "the trusted key")
		}
		fmt.Fprintf(&b, t("设备公钥指纹 %s（%s）\n", "device key fingerprint %s (%s)\n"), r.KeyFingerprint, src)
	}
	if r.ReceiptChecked {
		fmt.Fprintf(&b, t("中心回执：seq %d 与中心确认的记录一致\n", "central receipt: seq %d matches the record the central system acknowledged\n"), r.Receipt.AckedSeq)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, t("说明：%s\n", "note: %s\n"), n.In(lang))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
