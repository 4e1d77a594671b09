package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
	lineemu "github.com/kaoqin/kaoqin/drivers/lineterm/emu"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	zfmemu "github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

// The end-to-end tests run the real Agent (config file, store, decision loop, sources, local API)
// against an emulated fingerprint module and an emulated QR voucher scanner on pseudo-terminals,
// and look at the result through the API client, as the CLI does, and through the ledger file.

// Source names of the test station: a fingerprint reader and a QR voucher scanner at one
// registration desk.
const (
	finger = "door-finger"
	qr     = "desk-qr"
)

// configTOML is the test daemon's config. Paths are relative to the file, in t.TempDir().
const configTOML = `device = "test-r101"
institution = "0001"
state_dir = "state"
socket = "kaoqin.sock"
log_level = "debug"

[checkin]
suppress = "2m"
voucher_window = %q

[checkin.min_score]
fingerprint = 50

[[source]]
name = "door-finger"
kind = "zfm"
path = "zfm0"
poll_interval = "50ms"
station = "registration"

[[source]]
name = "desk-qr"
kind = "lineterm"
path = "qr0"
baud = 9600
method = "voucher"
framing = "crlf"
pattern = '^(?P<id>SD2026-[A-Z0-9]+)$'
station = "registration"

[uplink]
enabled = false
central_key = "central.pub"
%s`

// options vary the test daemon and its devices.
type options struct {
	voucherWindow string         // [checkin] voucher_window; default "1m"
	extra         string         // more TOML at the end of the file (a [store] table)
	roster        *roster.Roster // imported through the API once the daemon runs; nil for none
	module        zfmemu.Config  // the emulated module (OnPacket is the harness's)
}

// harness is a running daemon with its devices.
type harness struct {
	t       *testing.T
	dir     string
	central ed25519.PrivateKey // the central system's key: it signs the rosters imported
	cfg     *agent.Config
	module  *zfmemu.Emulator
	qr      *lineemu.Emulator
	client  *api.Client
	logs    *testkit.LogBuffer

	cancel  context.CancelFunc
	done    chan error // Run's result
	stopped bool
	runErr  error

	commands  atomic.Uint64 // GenImg commands the module received
	noFinger  atomic.Uint64 // GenImg answered "no finger": the reader saw the sensor empty
	lastInstr atomic.Uint32
}

// start writes the config, starts the emulators and the daemon, waits until both sources are open
// and imports o.roster, waiting until the module's library holds its templates.
func start(t *testing.T, o options) *harness {
	t.Helper()
	if o.voucherWindow == "" {
		o.voucherWindow = "1m"
	}
	h := &harness{t: t, dir: t.TempDir(), logs: &testkit.LogBuffer{}, done: make(chan error, 1)}
	if _, _, err := ledger.GenerateKeyFiles(filepath.Join(h.dir, "state", "keys"), "device"); err != nil {
		t.Fatal(err)
	}
	h.central = centralKey(t, h.dir)
	mc := o.module
	mc.OnPacket = h.onPacket
	h.module = zfmemu.New(mc)
	if err := h.module.Start(filepath.Join(h.dir, "zfm0")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.module.Close() })
	var err error
	if h.qr, err = lineemu.Start(filepath.Join(h.dir, "qr0")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.qr.Close() })

	path := filepath.Join(h.dir, "agent.toml")
	if err := os.WriteFile(path, fmt.Appendf(nil, configTOML, o.voucherWindow, o.extra), 0o644); err != nil {
		t.Fatal(err)
	}
	if h.cfg, err = agent.LoadConfig(path); err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := agent.New(h.cfg, log)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	agent.SetClock(a, clock.Running("harness-boot", true)) // the test machine's kernel may not say synchronised
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		if !h.stopped {
			if err := h.stop(); err != nil {
				t.Errorf("Run: got %v, want nil after cancel", err)
			}
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", h.logs.String())
		}
	})

	if !testkit.WaitFor(t, func() bool {
		select {
		case err := <-h.done:
			h.stopped, h.runErr = true, err
			t.Fatalf("Run returned %v before it served its socket", err)
		default:
		}
		h.client, err = api.Dial(h.cfg.Socket)
		return err == nil
	}, 10*time.Second) {
		t.Fatalf("socket %s: got %v, want the daemon answering", h.cfg.Socket, err)
	}
	if !testkit.WaitFor(t, func() bool {
		s := h.status()
		return s.Sources[finger].State == drivers.StateOK && s.Sources[qr].State == drivers.StateOK
	}, 10*time.Second) {
		t.Fatalf("sources: got %+v, want %s and %s ok", h.status().Sources, finger, qr)
	}
	if o.roster != nil {
		h.importRoster(o.roster)
	}
	return h
}

// onPacket watches the module's traffic: GenImg commands, and GenImg answered "no finger".
func (h *harness) onPacket(fromHost bool, p zfm.Packet) {
	switch {
	case fromHost && p.PID == zfm.PIDCommand && len(p.Payload) > 0:
		h.lastInstr.Store(uint32(p.Payload[0]))
		if zfm.Instr(p.Payload[0]) == zfm.InstrGenImg {
			h.commands.Add(1)
		}
	case !fromHost && p.PID == zfm.PIDAck && len(p.Payload) > 0:
		if zfm.Instr(h.lastInstr.Load()) == zfm.InstrGenImg && zfm.Code(p.Payload[0]) == zfm.CodeNoFinger {
			h.noFinger.Add(1)
		}
	}
}

// stop cancels the daemon and returns Run's result.
func (h *harness) stop() error {
	h.t.Helper()
	if h.stopped {
		return h.runErr
	}
	h.cancel()
	select {
	case h.runErr = <-h.done:
		h.stopped = true
		return h.runErr
	case <-time.After(20 * time.Second):
		h.t.Fatalf("Run: still running 20s after cancel, want it returned")
		return nil
	}
}

// importRoster imports r through the API and waits until the module holds exactly its templates.
func (h *harness) importRoster(r *roster.Roster) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := h.client.ImportDataset(ctx, ops.ImportRequest{Credentials: admin, Bundle: signedRoster(h.t, h.central, h.cfg.Device, r)})
	if err != nil || res.Version != r.Version {
		h.t.Fatalf("import roster %d: got version %d, %v; want it active", r.Version, res.Version, err)
	}
	want := templatesOf(r)
	if !testkit.WaitFor(h.t, func() bool { return slices.Equal(h.library(), want) }, 10*time.Second) {
		h.t.Fatalf("module library after importing roster %d: got %v, want %v", r.Version, h.library(), want)
	}
}

// library is the module's library as the fingers its templates encode, sorted.
func (h *harness) library() []string {
	var out []string
	for page, data := range h.module.Library() {
		f, ok := zfmemu.FingerOf(data)
		if !ok {
			f = fmt.Sprintf("page %d: %x...", page, data[:8])
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// pageOf returns the library page holding a finger's template, or -1.
func (h *harness) pageOf(fingerID string) int {
	want := zfmemu.Template(fingerID)
	for page, data := range h.module.Library() {
		if bytes.Equal(data, want) {
			return page
		}
	}
	return -1
}

func templatesOf(r *roster.Roster) []string {
	var out []string
	for _, t := range r.Trainees {
		for _, f := range t.Fingerprints {
			id, ok := zfmemu.FingerOf(f.Template)
			if !ok {
				id = hex.EncodeToString(f.Template[:8])
			}
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func rosterJSON(t testing.TB, r *roster.Roster) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) status() ops.Status {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.client.Status(ctx)
	if err != nil {
		h.t.Fatalf("status: %v", err)
	}
	return s
}

// events returns every event of the ledger, through the API.
func (h *harness) events() []ledger.Event {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []ledger.Event
	err := h.client.Events(ctx, ledger.Filter{}, 0, func(e *ledger.Event) error {
		out = append(out, *e)
		return nil
	})
	if err != nil {
		h.t.Fatalf("events: %v", err)
	}
	return out
}

// head is the seq of the last event.
func (h *harness) head() uint64 { return h.status().Head }

// after waits for the first event after seq and returns the events after seq.
func (h *harness) after(seq uint64, what string) []ledger.Event {
	h.t.Helper()
	var evs []ledger.Event
	if !testkit.WaitFor(h.t, func() bool {
		evs = eventsAfter(h.events(), seq)
		return len(evs) > 0
	}, 10*time.Second) {
		h.t.Fatalf("%s: got no event after seq %d, want one", what, seq)
	}
	return evs
}

func eventsAfter(evs []ledger.Event, seq uint64) []ledger.Event {
	var out []ledger.Event
	for _, e := range evs {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// touch puts a finger on the sensor until the daemon records an event for it, lifts it and waits
// until the reader has seen the sensor empty (so that the next touch is a new one). It returns
// the event.
func (h *harness) touch(fingerID string) ledger.Event {
	h.t.Helper()
	seq := h.head()
	h.module.Place(fingerID)
	evs := h.after(seq, "touch of "+fingerID)
	h.lift()
	if len(evs) != 1 {
		h.t.Fatalf("touch of %s: got %d events %s, want one", fingerID, len(evs), kinds(evs))
	}
	return evs[0]
}

// lift takes the finger off and waits until the reader has seen the sensor empty.
func (h *harness) lift() {
	h.t.Helper()
	seen := h.noFinger.Load()
	h.module.Lift()
	if !testkit.WaitFor(h.t, func() bool { return h.noFinger.Load() > seen }, 10*time.Second) {
		h.t.Fatalf("after the lift: got no GenImg answered 'no finger', want the reader polling")
	}
}

// scan makes the QR scanner print a line.
func (h *harness) scan(code string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.qr.Write(ctx, []byte(code+"\r\n")); err != nil {
		h.t.Fatalf("scan %s: %v", code, err)
	}
}

// readings is how many readings a source has delivered since it was last opened.
func (h *harness) readings(source string) uint64 { return h.status().Sources[source].Readings }

// ledgerFile opens the stopped daemon's ledger read-only, verifies it with the device public key
// and returns its events and the raw record bodies.
func (h *harness) ledgerFile() ([]ledger.Event, []string) {
	h.t.Helper()
	if !h.stopped {
		h.t.Fatal("ledgerFile: the daemon is running")
	}
	st, err := store.OpenReadOnly(h.cfg.DBPath())
	if err != nil {
		h.t.Fatalf("OpenReadOnly after Run returned: %v", err)
	}
	defer st.Close()
	pub, err := ledger.LoadPublicKey(filepath.Join(h.dir, "state", "keys", "device.pub"))
	if err != nil {
		h.t.Fatal(err)
	}
	sum, err := st.Verify(pub, store.VerifyOptions{AllSignatures: true})
	if err != nil {
		h.t.Fatalf("verify the ledger: got %v, want it intact", err)
	}
	var evs []ledger.Event
	var bodies []string
	err = st.Scan(1, func(seq uint64, r ledger.Record) error {
		e, err := r.Event()
		if err != nil {
			return err
		}
		evs = append(evs, e)
		bodies = append(bodies, string(r.Body()))
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if sum.Events != uint64(len(evs)) {
		h.t.Fatalf("verify: got %d events checked, want %d", sum.Events, len(evs))
	}
	return evs, bodies
}

// noFullIDNumbers checks that no record body holds a trainee's full resident ID number.
func noFullIDNumbers(t *testing.T, bodies []string, r *roster.Roster) {
	t.Helper()
	for _, tr := range r.Trainees {
		for i, b := range bodies {
			if strings.Contains(b, tr.IDNumber) {
				t.Errorf("record %d holds the full ID number of %s: %s", i+1, tr.ID, b)
			}
		}
	}
}

func kinds(evs []ledger.Event) string {
	var s []string
	for _, e := range evs {
		k := string(e.Kind)
		if e.Reason != "" {
			k += "/" + string(e.Reason)
		}
		if e.Trainee != "" {
			k += "/" + e.Trainee
		}
		s = append(s, k)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// count counts the events matching a kind and, if not empty, a reason.
func count(evs []ledger.Event, kind ledger.Kind, reason ledger.Reason) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind && (reason == "" || e.Reason == reason) {
			n++
		}
	}
	return n
}

// demoRoster is the demo roster of n trainees, version 1: a session open now for class C-DEMO,
// T001..T(n-1) enrolled with bound vouchers, Tn holding the registration voucher.
func demoRoster(n int) *roster.Roster { return demo.Roster(time.Now(), n, 1) }
