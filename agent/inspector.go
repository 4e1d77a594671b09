package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/inspect"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
)

// What the inspector's pages (agent/inspect) need of the running daemon beyond the ledger
// service: the device key's side (integrity, the bundle), the box's health, and the one write,
// the record of a visit.

// InspectorSource is the source name of inspection events.
const InspectorSource = "inspector"

// Integrity verifies the ledger with the device's own public key.
func (b *backend) Integrity(ctx context.Context) (ops.Integrity, error) {
	return b.Service.Verify(ctx, b.a.key.Public().(ed25519.PublicKey))
}

// PublicKey is the device's public key.
func (b *backend) PublicKey() (ed25519.PublicKey, error) {
	return b.a.key.Public().(ed25519.PublicKey), nil
}

// Receipt is the latest central receipt the store keeps (nil if none yet): the signed down/ack
// as received travels in Raw, for export.CheckReceipt.
func (b *backend) Receipt(ctx context.Context) (*export.Receipt, error) {
	r, ok, err := b.Service.Receipt(ctx)
	if err != nil || !ok {
		return nil, err
	}
	return &export.Receipt{Device: r.Device, Epoch: r.Epoch, AckedSeq: r.Seq, Hash: hex.EncodeToString(r.Hash[:]), At: r.Time,
		Raw: r.Signed}, nil
}

// Health is the box's state beyond the ledger.
func (b *backend) Health(ctx context.Context) (inspect.Health, error) {
	a := b.a
	h := inspect.Health{Clock: a.now().Clock, Uplink: a.cfg.Uplink.Enabled, DiskReserve: a.cfg.Store.MinFreeMiB << 20,
		EvidenceBudget: a.cfg.Store.EvidenceBudgetMiB << 20}
	var st syscall.Statfs_t
	if err := syscall.Statfs(a.cfg.StateDir, &st); err == nil {
		h.DiskFree = st.Bavail * uint64(st.Bsize)
	}
	filepath.WalkDir(filepath.Join(a.cfg.StateDir, "evidence"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				h.EvidenceUsed += fi.Size()
			}
		}
		return nil
	})
	return h, nil
}

// visitData is the Data of an inspection event, for the central system.
type visitData struct {
	Headcount int    `json:"headcount"`
	HeadSeq   uint64 `json:"head_seq"`
	HeadHash  string `json:"head_hash,omitempty"` // as the inspector wrote it down
	Matches   bool   `json:"matches"`
	Role      string `json:"role,omitempty"`
}

// RecordInspection appends a signed inspection event for an inspector's visit. Like an
// enrolment it is appended straight to the store (its writes are serialised; the decision loop's
// History does not track inspections), and refused once the loop has stopped; it syncs like any
// other event.
func (b *backend) RecordInspection(ctx context.Context, v inspect.Visit) (ledger.Event, error) {
	select {
	case <-b.a.decided:
		return ledger.Event{}, ErrStopping
	default:
	}
	data, err := json.Marshal(visitData{Headcount: v.Headcount, HeadSeq: v.HeadSeq, HeadHash: v.HeadHash, Matches: v.Matches, Role: v.Role})
	if err != nil {
		return ledger.Event{}, fmt.Errorf("agent: inspection: %w", err)
	}
	e := ledger.Event{Kind: ledger.Inspection, Time: b.a.now().Clock, Source: InspectorSource, Operator: v.Inspector,
		Institution: b.a.cfg.Institution, Note: v.Note, Detail: inspect.VisitDetail(v), Data: data}
	return b.a.st.Append(e)
}

// ExportBundle writes the verifiable bundle of the events f selects, signed with the device key.
func (b *backend) ExportBundle(ctx context.Context, w io.Writer, f ledger.Filter, lang label.Lang) (export.Manifest, error) {
	rs, err := b.Service.ActiveRoster(ctx)
	if err != nil {
		return export.Manifest{}, err
	}
	rc, err := b.Receipt(ctx)
	if err != nil {
		return export.Manifest{}, err
	}
	return b.Service.Bundle(ctx, w, export.BundleOptions{Options: export.Options{Lang: lang, Names: export.Names(rs)},
		Filter: f, Receipt: rc, Key: b.a.key})
}

// InspectorCode makes a one-time login code for the inspector's pages (`kaoqin inspector code`).
func (b *backend) InspectorCode(ctx context.Context) (api.InspectorCode, error) {
	if b.insp == nil {
		return api.InspectorCode{}, fmt.Errorf("agent: the inspector's pages are off: set listen in the config")
	}
	c, err := b.insp.IssueCode(ctx)
	return api.InspectorCode{Code: c.Code, Expires: c.Expires, Listen: b.a.cfg.Listen}, err
}
