package ops

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
)

// Integrity is the result of verifying the whole ledger, for the inspector's page.
type Integrity struct {
	Intact   bool          `json:"intact"`
	Device   string        `json:"device"`
	Epoch    uint64        `json:"epoch"`
	Events   uint64        `json:"events"`   // records verified
	HeadSeq  uint64        `json:"head_seq"` // the store's head
	HeadHash string        `json:"head_hash"`
	BadSeq   uint64        `json:"bad_seq,omitempty"` // the first bad seq, when not intact
	Problem  string        `json:"problem,omitempty"`
	Took     time.Duration `json:"took"`
	Checked  time.Time     `json:"checked"`
	// ReceiptSeq is the seq of the central system's latest receipt the ledger was checked
	// against (0: none): events after it could have been removed without a trace on the box.
	ReceiptSeq uint64 `json:"receipt_seq,omitempty"`
}

// Verify checks the ledger's hash chain and signatures with the device key pub (see
// store.Verify). A ledger that does not verify is not an error: Integrity says where it breaks.
func (s *Service) Verify(ctx context.Context, pub ed25519.PublicKey) (Integrity, error) {
	start := time.Now()
	seq, head := s.st.Head()
	in := Integrity{Device: s.st.Device(), Epoch: s.st.Epoch(), HeadSeq: seq, HeadHash: fmt.Sprintf("%x", head), Checked: start}
	sum, err := s.st.Verify(pub, store.VerifyOptions{})
	in.Took = time.Since(start)
	in.Events = sum.Events
	if sum.Receipt != nil {
		in.ReceiptSeq = sum.Receipt.Seq
	}
	var p *ledger.Problem
	switch {
	case err == nil:
		in.Intact = true
	case errors.As(err, &p):
		in.BadSeq, in.Problem = p.Seq, p.Err.Error()
		if p.Seq > 0 {
			in.Events = p.Seq - 1 // the records before the first bad one verify
		}
	case errors.Is(err, store.ErrDamaged):
		in.BadSeq, in.Problem = sum.Events+1, err.Error()
	default:
		return in, err
	}
	return in, nil
}

// Receipt is the latest signed receipt of the central system the box keeps (ok false if none).
func (s *Service) Receipt(ctx context.Context) (r store.Receipt, ok bool, err error) {
	return s.st.LatestReceipt()
}

// ActiveRoster is the active roster in full (ID numbers included: for reports, which mask them),
// nil if none has been imported.
func (s *Service) ActiveRoster(ctx context.Context) (*roster.Roster, error) {
	r, _, err := s.st.Roster()
	return r, err
}

// Inspectors returns the inspector accounts (see store.Inspector).
func (s *Service) Inspectors(ctx context.Context) ([]store.Inspector, error) {
	list, _, err := s.st.Inspectors()
	return list, err
}

// Evidence opens the evidence JPEG with the hex SHA-256 name; fs.ErrNotExist if the box no
// longer has it.
func (s *Service) Evidence(name string) (io.ReadCloser, error) {
	if !validSHA(name) {
		return nil, fmt.Errorf("ops: evidence %q: not a SHA-256 name", name)
	}
	p := s.st.EvidencePath(name)
	if p == "" {
		return nil, os.ErrNotExist
	}
	return os.Open(p)
}

// Bundle writes the verifiable bundle (export.Write) of this ledger to w. It is first made in a
// file beside the ledger (the ledger is read at disk speed, transactions stay short of any
// network), then streamed from there, as Snapshot does. opt.Key is the device's private key;
// opt.Evidence defaults to this box's evidence.
func (s *Service) Bundle(ctx context.Context, w io.Writer, opt export.BundleOptions) (export.Manifest, error) {
	tmp, err := os.CreateTemp(filepath.Dir(s.st.Path()), ".bundle-*")
	if err != nil {
		return export.Manifest{}, fmt.Errorf("ops: bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if opt.Evidence == nil {
		opt.Evidence = func(name string) (io.ReadCloser, error) { return s.Evidence(name) }
	}
	m, err := export.Write(tmp, s.st, opt)
	if err != nil {
		return m, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return m, fmt.Errorf("ops: bundle: %w", err)
	}
	_, err = io.Copy(w, readerCtx{ctx, tmp})
	return m, err
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
