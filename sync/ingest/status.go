package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// DeviceStatus is what the ingester knows of one device.
type DeviceStatus struct {
	Device      string `json:"device"`
	Institution string `json:"institution"`
	// Online, Backlog, HeadSeq and DatasetVersions are as the device last reported in its state.
	Online          bool              `json:"online"`
	Backlog         uint64            `json:"backlog"`
	HeadSeq         uint64            `json:"head_seq"`
	OldestUnacked   float64           `json:"oldest_unacked_age,omitempty"` // seconds
	DatasetVersions map[string]uint64 `json:"dataset_versions,omitempty"`
	// Epoch is the device's latest epoch seen in its events; AckedThrough is the end of the
	// verified, stored, contiguous chain of that epoch (what the ingester acks).
	Epoch        uint64                  `json:"epoch"`
	AckedThrough uint64                  `json:"acked_through"`
	Epochs       map[uint64]uint64       `json:"epochs,omitempty"` // every epoch's acked_through
	Gap          bool                    `json:"gap"`              // batches beyond acked_through arrived and wait for the missing ones
	LastSeen     time.Time               `json:"last_seen"`
	Applied      map[string]wire.Applied `json:"applied,omitempty"` // the last applied/refused report per dataset
	LastError    string                  `json:"last_error,omitempty"`
	State        *wire.State             `json:"state,omitempty"`
	// Witnessed is the highest head the device ever signed in its state (epoch, seq and hex
	// hash): a later chain shorter than it, or different at its seq, raises a head alarm.
	WitnessedEpoch uint64 `json:"witnessed_epoch,omitempty"`
	WitnessedSeq   uint64 `json:"witnessed_seq,omitempty"`
	WitnessedHash  string `json:"witnessed_hash,omitempty"`
}

func statusOf(name string, rec *deviceRecord, chains map[uint64]chainEnd, gap bool) DeviceStatus {
	s := DeviceStatus{Device: name, Institution: rec.Institution, Epoch: rec.Epoch, LastSeen: rec.LastSeen,
		Applied: rec.Applied, LastError: rec.LastError, State: rec.State, Gap: gap, Epochs: map[uint64]uint64{}}
	for ep, end := range chains {
		s.Epochs[ep] = end.Seq
	}
	s.AckedThrough = chains[rec.Epoch].Seq
	if w := rec.Witnessed; w != nil {
		s.WitnessedEpoch, s.WitnessedSeq, s.WitnessedHash = w.Epoch, w.Seq, w.Hash
	}
	if st := rec.State; st != nil {
		s.Online, s.Backlog, s.HeadSeq, s.OldestUnacked, s.DatasetVersions = st.Online, st.Backlog, st.HeadSeq, st.OldestUnackedAge, st.DatasetVersions
	}
	return s
}

// publishStatus makes a snapshot of the devices for Status (the worker calls it).
func (in *Ingester) publishStatus() {
	in.statusAt = time.Now()
	out := make([]DeviceStatus, 0, len(in.devices))
	for name, d := range in.devices {
		rec := d.rec
		chains := make(map[uint64]chainEnd, len(d.chains))
		for k, v := range d.chains {
			chains[k] = v
		}
		out = append(out, statusOf(name, &rec, chains, !d.gapSince.IsZero()))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	in.statusMu.Lock()
	in.status = out
	in.statusMu.Unlock()
}

// Status returns the running ingester's view of every device, sorted by name.
func (in *Ingester) Status() []DeviceStatus {
	in.statusMu.Lock()
	defer in.statusMu.Unlock()
	return append([]DeviceStatus(nil), in.status...)
}

// Scan calls fn for every stored record in (device, epoch, seq) order, while the ingester runs.
// The record is valid only during the call.
func (in *Ingester) Scan(fn func(device string, epoch, seq uint64, rec ledger.Record) error) error {
	return in.st.scan(context.Background(), fn)
}

// serveStatus serves GET /status and POST /reload on the unix socket.
func (in *Ingester) serveStatus() (*http.Server, error) {
	if c, err := net.DialTimeout("unix", in.cfg.Socket, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("ingest: %s answers: another ingester is running", in.cfg.Socket)
	}
	os.Remove(in.cfg.Socket) // stale, from an ingester that was killed
	l, err := net.Listen("unix", in.cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("ingest: status socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(in.Status())
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case in.reload <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return srv, nil
}

func socketClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}
}

// notifyReload asks a running ingester to read its datasets and keys again; it reports whether one
// answered.
func notifyReload(ctx context.Context, socket string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://ingest/reload", nil)
	if err != nil {
		return false
	}
	resp, err := socketClient(socket).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}

// Status returns every device's status: from the running ingester over its socket, or, when none
// answers, from the store (a bbolt file opened read-only, or the PostgreSQL database) (then Online, Backlog and the rest are as last
// recorded, and Gap is unknown: false).
func Status(ctx context.Context, cfg Config) ([]DeviceStatus, error) {
	cfg = cfg.withDefaults()
	if cfg.Socket != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://ingest/status", nil)
		if err != nil {
			return nil, err
		}
		if resp, err := socketClient(cfg.Socket).Do(req); err == nil {
			defer resp.Body.Close()
			var out []DeviceStatus
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("ingest: status: %s", resp.Status)
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return nil, fmt.Errorf("ingest: status: %w", err)
			}
			return out, nil
		}
	}
	if cfg.DB == "" {
		return nil, errors.New("ingest: status: no socket answered and no db configured")
	}
	if !isPostgres(cfg.DB) {
		if _, err := os.Stat(cfg.DB); err != nil {
			return nil, fmt.Errorf("ingest: status: %w", err)
		}
	}
	st, err := openStore(ctx, cfg.DB, true)
	if err != nil {
		return nil, err
	}
	defer st.close()
	devs, err := st.devices(ctx)
	if err != nil {
		return nil, err
	}
	var out []DeviceStatus
	for name, d := range devs {
		out = append(out, statusOf(name, &d.rec, d.chains, false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}
