// Package ops is the one service over a ledger store that every reader and writer outside the
// decision loop goes through: the daemon's unix-socket API, the CLI when the daemon is stopped
// (the same calls on the file), and the inspector's pages. It reads events in pages, each in a
// short read transaction with nothing but copying inside it, so that no network client can hold a
// transaction open while the decision loop needs the file to grow.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
)

// PageSize is how many records one read transaction copies out of the store.
const PageSize = 512

// Service answers from one store. Its methods are safe for concurrent use.
type Service struct {
	st          *store.Store
	institution string
	// Trust is how datasets and operators are checked (see trust.go); set it before use.
	Trust Trust
	// OnRoster, if set, is called with each roster this service makes active (the daemon points
	// it at its rules and its template sync).
	OnRoster func(*roster.Index)
}

// New returns the service over st for a box of institution.
func New(st *store.Store, institution string) *Service {
	return &Service{st: st, institution: institution}
}

// Status is a box's state for `kaoqin status`, the state message and the inspector. The fields
// after Trainees are known only while the daemon runs.
type Status struct {
	Device        string                    `json:"device"`
	Institution   string                    `json:"institution"`
	Epoch         uint64                    `json:"epoch"`
	Head          uint64                    `json:"head"`
	Acked         uint64                    `json:"acked"`
	RosterVersion uint64                    `json:"roster_version"`
	Trainees      int                       `json:"trainees"`
	Running       bool                      `json:"running"`
	Version       string                    `json:"version,omitempty"`
	Sources       map[string]drivers.Health `json:"sources,omitempty"`
	Started       time.Time                 `json:"started,omitzero"`
	// UnsignedDatasets is set while the box accepts unsigned datasets (a development switch) or
	// runs on one: every event carries the unsigned_dataset flag; the inspector shows it in red.
	UnsignedDatasets bool `json:"unsigned_datasets,omitempty"`
	// CertBlocksVersion is the version of the certificate serial blocks in use (0: none).
	CertBlocksVersion uint64 `json:"cert_blocks_version,omitempty"`
}

// Status reports the ledger's side of the box's state.
func (s *Service) Status(ctx context.Context) (Status, error) {
	head, _ := s.st.Head()
	acked, err := s.st.Acked()
	if err != nil {
		return Status{}, err
	}
	st := Status{Device: s.st.Device(), Institution: s.institution, Epoch: s.st.Epoch(), Head: head, Acked: acked}
	r, info, err := s.st.Roster()
	if err != nil {
		return Status{}, err
	}
	if r != nil {
		st.RosterVersion, st.Trainees = info.Version, len(r.Trainees)
	}
	st.UnsignedDatasets = s.st.Unsigned()
	if v, err := s.st.DatasetVersions(); err == nil {
		st.CertBlocksVersion = v[cert.BlocksDataset]
	}
	return st, nil
}

// Events calls fn for each event matching f from seq from on, in order. Records are read PageSize
// at a time, each page in its own short read transaction; fn runs outside any transaction, so it
// may write to a slow network client.
func (s *Service) Events(ctx context.Context, f ledger.Filter, from uint64, fn func(*ledger.Event) error) error {
	from = max(from, 1)
	for {
		page, err := s.st.Range(from, PageSize)
		if err != nil {
			return err
		}
		for _, r := range page {
			e, err := r.Record.Event()
			if err != nil {
				return fmt.Errorf("ops: seq %d: %w (run kaoqin verify)", r.Seq, err)
			}
			if !f.Match(&e) {
				continue
			}
			if err := fn(&e); err != nil {
				return err
			}
		}
		if len(page) < PageSize {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		from = page[len(page)-1].Seq + 1
	}
}

// RosterSummary is the active roster as shown to operators: ID numbers masked.
type RosterSummary struct {
	Version      uint64               `json:"version"`
	SHA256       string               `json:"sha256"`
	Applied      time.Time            `json:"applied"`
	From         string               `json:"from"`
	Institutions []roster.Institution `json:"institutions"`
	Programmes   []roster.Programme   `json:"programmes"`
	Sessions     []roster.Session     `json:"sessions"`
	Trainees     []TraineeSummary     `json:"trainees"`
	Vouchers     int                  `json:"vouchers"`
	Operators    int                  `json:"operators"`
}

// TraineeSummary is a trainee without sensitive data.
type TraineeSummary struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	IDMasked     string   `json:"id_masked"`
	Classes      []string `json:"classes"`
	Fingerprints int      `json:"fingerprints"`
}

// Summarize masks a roster for display.
func Summarize(r *roster.Roster) RosterSummary {
	s := RosterSummary{Version: r.Version, Institutions: r.Institutions, Programmes: r.Programmes, Sessions: r.Sessions, Vouchers: len(r.Vouchers), Operators: len(r.Operators)}
	for _, t := range r.Trainees {
		ts := TraineeSummary{ID: t.ID, Name: t.Name, IDMasked: roster.MaskID(t.IDNumber), Fingerprints: len(t.Fingerprints)}
		for _, e := range t.Enrolments {
			ts.Classes = append(ts.Classes, e.Class)
		}
		s.Trainees = append(s.Trainees, ts)
	}
	return s
}

// ErrNoRoster means no roster has been imported or received yet.
var ErrNoRoster = errors.New("ops: no roster has been imported yet (kaoqin roster import BUNDLE, a signed bundle from kaoqin ingest publish --out)")

// Roster returns the active roster, masked for display.
func (s *Service) Roster(ctx context.Context) (RosterSummary, error) {
	r, info, err := s.st.Roster()
	if err != nil {
		return RosterSummary{}, err
	}
	if r == nil {
		return RosterSummary{}, ErrNoRoster
	}
	sum := Summarize(r)
	sum.SHA256, sum.Applied, sum.From = info.SHA256, info.Applied, info.From
	return sum, nil
}

// Snapshot writes a consistent copy of the ledger file to w. The copy is first made beside the
// ledger (one read transaction, at disk speed), then streamed from there: a slow reader of w never
// holds a transaction open.
func (s *Service) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(s.st.Path()), ".snapshot-*")
	if err != nil {
		return 0, fmt.Errorf("ops: snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := s.st.Snapshot(tmp); err != nil {
		return 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("ops: snapshot: %w", err)
	}
	return io.Copy(w, readerCtx{ctx, tmp})
}

// readerCtx stops a copy when ctx is done.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
