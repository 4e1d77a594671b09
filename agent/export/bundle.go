package export

import (
	"archive/zip"
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// Names of the files in a bundle.
const (
	FileManifest  = "manifest.json"
	FileSignature = "manifest.sig" // ed25519 signature of manifest.json by the device key, raw 64 bytes
	FileEventsCSV = "events.csv"
	FileEventsJSL = "events.jsonl" // one line per exported event: its signed body, byte for byte
	FileChain     = "chain.bin"    // the chain segment: each record as a 4-byte big-endian length and its bytes
	FileNames     = "names.json"   // trainee ID -> name, for the trainees in events.csv
	FileWords     = "words.json"   // the header and labels events.csv was written with (Words)
	FilePublicKey = "device.pub"   // the device public key, PEM
	FileReceipt   = "receipt.json" // the latest central receipt, if one was given
	DirEvidence   = "evidence/"    // evidence/<sha256>.jpg
)

// Format names the bundle layout in its manifest.
const Format = "kaoqin-bundle/1"

// Ledger is what Write reads; *store.Store satisfies it.
type Ledger interface {
	// Scan calls fn for every record from seq from on, in order; the record is valid only during
	// the call. An error from fn ends the scan and is returned.
	Scan(from uint64, fn func(seq uint64, r ledger.Record) error) error
	// Head is the seq and hash of the last record.
	Head() (seq uint64, hash [32]byte)
	// PublicKey is the device key the ledger is signed with.
	PublicKey() (ed25519.PublicKey, error)
}

// Receipt is the central system's acknowledgement of the ledger up to a seq: the hash of the
// record it holds at that seq, signed with the central key. The box keeps the latest one it
// received; the bundle carries it so a verifier can check that nothing acknowledged was removed
// or changed. Raw is the signed down/ack as received (Signature stays empty: the signature is in
// Raw); CheckReceipt makes the VerifyOptions.CheckReceipt that verifies it with the central key.
type Receipt struct {
	Device    string    `json:"device"`
	Epoch     uint64    `json:"epoch"`
	AckedSeq  uint64    `json:"acked_seq"`
	Hash      string    `json:"hash"` // lower-case hex SHA-256 of the record at AckedSeq
	At        time.Time `json:"at"`   // when the central system sent it
	Signature []byte    `json:"signature,omitempty"`
	Raw       []byte    `json:"raw,omitempty"` // the receipt as received, if it came in another encoding
}

// Progress is reported while a bundle is written or verified.
type Progress struct {
	Stage string // the file being written or checked
	Done  int64  // records (or files, for evidence) done in this stage
	Total int64
}

// BundleOptions say what goes into a bundle.
type BundleOptions struct {
	Options
	// Filter selects the events of events.csv and events.jsonl (zero: all). The chain segment
	// always runs from the first selected event (or the receipt's seq, if earlier) to the head.
	Filter ledger.Filter
	// Evidence opens the evidence JPEG with a hex SHA-256 name; nil leaves evidence out. An
	// fs.ErrNotExist error (evidence deleted after it was acknowledged) is listed in the manifest
	// as missing; any other error fails the bundle.
	Evidence func(sha256 string) (io.ReadCloser, error)
	// Receipt is the latest central receipt; nil if none.
	Receipt *Receipt
	// Key is the device's private key: it signs the manifest, which covers the names and the
	// evidence list that the records alone do not. Required.
	Key ed25519.PrivateKey
	// Progress, if set, is called as the bundle is written.
	Progress func(Progress)
	// Created is the time written in the manifest; zero means now.
	Created time.Time
}

// Manifest describes a bundle. It is written last and signed.
type Manifest struct {
	Format  string    `json:"format"`
	Device  string    `json:"device"`
	Epoch   uint64    `json:"epoch"`
	Created time.Time `json:"created"`
	Lang    string    `json:"lang"`
	Zone    string    `json:"zone"`
	// ZoneOffset is the zone's offset from UTC in seconds when the bundle was made, used when
	// the verifying machine does not know the zone by name.
	ZoneOffset int           `json:"zone_offset"`
	Filter     ledger.Filter `json:"filter"`
	// First and Last are the seqs of the chain segment; Anchor is the prev hash of its first
	// record. Head is the ledger's head when the bundle was made (Last is its seq).
	First    uint64 `json:"first_seq"`
	Last     uint64 `json:"last_seq"`
	Anchor   string `json:"anchor"`
	HeadHash string `json:"head_hash"`
	// Events is the number of events in events.csv and events.jsonl.
	Events          int      `json:"events"`
	MissingEvidence []string `json:"missing_evidence,omitempty"`
	// DamagedEvidence lists photos left out because their content on the box no longer matched
	// their name.
	DamagedEvidence []string `json:"damaged_evidence,omitempty"`
	Files           []File   `json:"files"`
}

// File is one file of a bundle with its size and hex SHA-256.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ErrNoKey is returned by Write without a device key.
var ErrNoKey = errors.New("export: a bundle needs the device key to sign its manifest")

// errStop ends a scan early.
var errStop = errors.New("export: stop")

// bundleWriter writes zip entries and hashes them.
type bundleWriter struct {
	zw      *zip.Writer
	files   []File
	created time.Time
	buf     *bufio.Writer
	h       hash.Hash
	n       int64
	name    string
}

func (b *bundleWriter) Write(p []byte) (int, error) {
	n, err := b.buf.Write(p)
	b.n += int64(n)
	b.h.Write(p[:n])
	return n, err
}

func (b *bundleWriter) begin(name string) error {
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: b.created})
	if err != nil {
		return fmt.Errorf("export: %s: %w", name, err)
	}
	if b.buf == nil {
		b.buf = bufio.NewWriterSize(w, 256<<10)
	} else {
		b.buf.Reset(w)
	}
	b.h.Reset()
	b.n, b.name = 0, name
	return nil
}

func (b *bundleWriter) end() error {
	if err := b.buf.Flush(); err != nil {
		return fmt.Errorf("export: %s: %w", b.name, err)
	}
	b.files = append(b.files, File{Name: b.name, Size: b.n, SHA256: hex.EncodeToString(b.h.Sum(nil))})
	return nil
}

func (b *bundleWriter) file(name string, content []byte) error {
	if err := b.begin(name); err != nil {
		return err
	}
	if _, err := b.Write(content); err != nil {
		return fmt.Errorf("export: %s: %w", name, err)
	}
	return b.end()
}

// Write writes a bundle of the ledger to w as a zip and returns its manifest. See the package
// documentation for its contents. The ledger may grow while Write runs: the bundle ends at the
// head read when it starts.
func Write(w io.Writer, src Ledger, opt BundleOptions) (Manifest, error) {
	if len(opt.Key) != ed25519.PrivateKeySize {
		return Manifest{}, ErrNoKey
	}
	opt.Options = opt.Options.withDefaults()
	if opt.Created.IsZero() {
		opt.Created = time.Now()
	}
	pub, err := src.PublicKey()
	if err != nil {
		return Manifest{}, fmt.Errorf("export: public key: %w", err)
	}
	if !pub.Equal(opt.Key.Public()) {
		return Manifest{}, errors.New("export: the key given is not the key the ledger is signed with")
	}
	headSeq, headHash := src.Head()
	if headSeq == 0 {
		return Manifest{}, errors.New("export: the ledger is empty")
	}
	progress := func(stage string, done, total int64) {
		if opt.Progress != nil {
			opt.Progress(Progress{Stage: stage, Done: done, Total: total})
		}
	}
	_, off := opt.Created.In(opt.Zone).Zone()
	m := Manifest{Format: Format, Created: opt.Created.UTC(), Lang: string(opt.Lang), Zone: opt.Zone.String(), ZoneOffset: off,
		Filter: opt.Filter, Last: headSeq, HeadHash: hex.EncodeToString(headHash[:])}
	b := &bundleWriter{zw: zip.NewWriter(w), created: opt.Created, h: sha256.New()}

	// events.csv: every record decoded once; the selection remembered for the other passes.
	if err := b.begin(FileEventsCSV); err != nil {
		return m, err
	}
	ew, err := NewEventWriter(b, opt.Options)
	if err != nil {
		return m, err
	}
	var selected []uint64
	var photos []ledger.Photo
	seen := map[string]bool{}
	names := map[string]string{}
	err = src.Scan(1, func(seq uint64, r ledger.Record) error {
		if seq > headSeq {
			return errStop
		}
		e, err := r.Event()
		if err != nil {
			return fmt.Errorf("export: seq %d: %w", seq, err)
		}
		if m.Device == "" {
			m.Device, m.Epoch = e.Device, e.Epoch
		}
		if seq%4096 == 0 {
			progress(FileEventsCSV, int64(seq), int64(headSeq))
		}
		if !opt.Filter.Match(&e) {
			return nil
		}
		e.Data = nil
		selected = append(selected, seq)
		if e.Trainee != "" {
			if n, ok := opt.Names[e.Trainee]; ok {
				names[e.Trainee] = n
			}
		}
		for _, p := range e.Evidence {
			if !seen[p.SHA256] {
				seen[p.SHA256] = true
				photos = append(photos, p)
			}
		}
		return ew.Write(&e)
	})
	if err != nil && !errors.Is(err, errStop) {
		return m, err
	}
	if err := ew.Flush(); err != nil {
		return m, err
	}
	if err := b.end(); err != nil {
		return m, err
	}
	progress(FileEventsCSV, int64(headSeq), int64(headSeq))
	m.Events = len(selected)

	// The segment starts at the first exported event, or earlier at the receipt's seq so that a
	// verifier can check the receipt against it.
	m.First = headSeq
	if len(selected) > 0 {
		m.First = selected[0]
	}
	if rc := opt.Receipt; rc != nil && rc.Epoch == m.Epoch && rc.AckedSeq >= 1 && rc.AckedSeq < m.First {
		m.First = rc.AckedSeq
	}

	// events.jsonl: the signed bodies of the selected records.
	if err := b.begin(FileEventsJSL); err != nil {
		return m, err
	}
	if len(selected) > 0 {
		i := 0
		err = src.Scan(selected[0], func(seq uint64, r ledger.Record) error {
			if i == len(selected) {
				return errStop
			}
			if seq != selected[i] {
				return nil
			}
			i++
			if _, err := b.Write(r.Body()); err != nil {
				return err
			}
			if _, err := b.Write([]byte{'\n'}); err != nil {
				return err
			}
			if i%4096 == 0 {
				progress(FileEventsJSL, int64(i), int64(len(selected)))
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return m, fmt.Errorf("export: %s: %w", FileEventsJSL, err)
		}
	}
	if err := b.end(); err != nil {
		return m, err
	}
	progress(FileEventsJSL, int64(len(selected)), int64(len(selected)))

	// chain.bin: every record of the segment, raw.
	if err := b.begin(FileChain); err != nil {
		return m, err
	}
	total := int64(headSeq - m.First + 1)
	var lenBuf [4]byte
	next := m.First
	err = src.Scan(m.First, func(seq uint64, r ledger.Record) error {
		if seq > headSeq {
			return errStop
		}
		if seq != next {
			return fmt.Errorf("seq %d missing from the ledger (next stored is %d)", next, seq)
		}
		if seq == m.First {
			prev, err := r.Prev()
			if err != nil {
				return fmt.Errorf("seq %d: %w", seq, err)
			}
			m.Anchor = hex.EncodeToString(prev[:])
		}
		next++
		binary.BigEndian.PutUint32(lenBuf[:], uint32(len(r)))
		if _, err := b.Write(lenBuf[:]); err != nil {
			return err
		}
		if _, err := b.Write(r); err != nil {
			return err
		}
		if done := int64(seq - m.First + 1); done%4096 == 0 {
			progress(FileChain, done, total)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return m, fmt.Errorf("export: %s: %w", FileChain, err)
	}
	if next != headSeq+1 {
		return m, fmt.Errorf("export: %s: the ledger ends at seq %d, its head is %d", FileChain, next-1, headSeq)
	}
	if err := b.end(); err != nil {
		return m, err
	}
	progress(FileChain, total, total)

	// Evidence, in the order first referenced.
	if opt.Evidence != nil {
		for i, p := range photos {
			if err := b.evidence(p.SHA256, opt.Evidence, &m); err != nil {
				return m, err
			}
			progress(DirEvidence, int64(i+1), int64(len(photos)))
		}
	} else {
		for _, p := range photos {
			m.MissingEvidence = append(m.MissingEvidence, p.SHA256)
		}
	}

	wb, err := json.MarshalIndent(ew.Words(), "", "  ")
	if err != nil {
		return m, fmt.Errorf("export: words: %w", err)
	}
	if err := b.file(FileWords, wb); err != nil {
		return m, err
	}
	nb, err := json.MarshalIndent(names, "", "  ")
	if err != nil {
		return m, fmt.Errorf("export: names: %w", err)
	}
	if err := b.file(FileNames, nb); err != nil {
		return m, err
	}
	if err := b.file(FilePublicKey, ledger.EncodePublicKey(pub)); err != nil {
		return m, err
	}
	if opt.Receipt != nil {
		rb, err := json.MarshalIndent(opt.Receipt, "", "  ")
		if err != nil {
			return m, fmt.Errorf("export: receipt: %w", err)
		}
		if err := b.file(FileReceipt, rb); err != nil {
			return m, err
		}
	}
	m.Files = b.files
	mb, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return m, fmt.Errorf("export: manifest: %w", err)
	}
	if err := b.file(FileManifest, mb); err != nil {
		return m, err
	}
	if err := b.file(FileSignature, ed25519.Sign(opt.Key, mb)); err != nil {
		return m, err
	}
	if err := b.zw.Close(); err != nil {
		return m, fmt.Errorf("export: %w", err)
	}
	return m, nil
}

// evidence copies one JPEG into the bundle. A file whose content no longer matches its name
// (damaged on the box's disk) is left out and listed in the manifest, so that one bad photo never
// stops an inspector taking the rest.
func (b *bundleWriter) evidence(name string, open func(string) (io.ReadCloser, error), m *Manifest) error {
	if !validSHA(name) { // not a name the store gives: never opened, listed as damaged
		m.DamagedEvidence = append(m.DamagedEvidence, name)
		return nil
	}
	f, err := open(name)
	if errors.Is(err, fs.ErrNotExist) {
		m.MissingEvidence = append(m.MissingEvidence, name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: evidence %s: %w", name, err)
	}
	jpg, err := io.ReadAll(io.LimitReader(f, maxEvidence+1))
	f.Close()
	if err != nil {
		return fmt.Errorf("export: evidence %s: %w", name, err)
	}
	if sum := sha256.Sum256(jpg); hex.EncodeToString(sum[:]) != name || len(jpg) > maxEvidence {
		m.DamagedEvidence = append(m.DamagedEvidence, name)
		return nil
	}
	return b.file(DirEvidence+name+".jpg", jpg)
}

// maxEvidence bounds one evidence photo read into memory.
const maxEvidence = 32 << 20

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

func parsePEMKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key")
	}
	return ledger.ParsePublicKey(blk.Bytes)
}

func pubDER(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return pub
	}
	return der
}
