package hikisapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/hikisapi"
	"github.com/kaoqin/kaoqin/drivers/hikisapi/emu"
)

// evidence is an in-test evidence store: photos by their SHA-256.
type evidence struct {
	mu     sync.Mutex
	photos map[string][]byte
}

func (e *evidence) PutEvidence(kind drivers.EvidenceKind, jpeg []byte) (drivers.EvidenceRef, error) {
	sum := sha256.Sum256(jpeg)
	h := hex.EncodeToString(sum[:])
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.photos == nil {
		e.photos = map[string][]byte{}
	}
	e.photos[h] = append([]byte(nil), jpeg...)
	return drivers.EvidenceRef{SHA256: h, Kind: kind, Size: int64(len(jpeg))}, nil
}

func (e *evidence) get(h string) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.photos[h]
}

// harness stands in for the agent: one goroutine reads Next, records each reading by its Key
// (a key already held is recorded once, as the ledger does) and calls Done.
type harness struct {
	mu      sync.Mutex
	byKey   map[string]drivers.Reading
	handed  int // readings Next returned, duplicates included
	changed chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

func startHarness(t testing.TB, src drivers.Source) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{byKey: map[string]drivers.Reading{}, changed: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			r, err := src.Next(ctx)
			if err != nil {
				return
			}
			h.mu.Lock()
			h.handed++
			if _, dup := h.byKey[r.Key]; !dup || r.Key == "" {
				h.byKey[r.Key] = r
			}
			h.mu.Unlock()
			select {
			case h.changed <- struct{}{}:
			default:
			}
			v := drivers.Recorded
			if r.Subject == "" {
				v = drivers.Refused
			}
			if r.Done != nil {
				r.Done(v)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

func (h *harness) count() (recorded, handed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byKey), h.handed
}

func (h *harness) get(key string) (drivers.Reading, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.byKey[key]
	return r, ok
}

// waitFor polls cond until it holds; the deadline only stops a test that would hang.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testWriter keeps log lines for assertions.
type testWriter struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.lines = append(w.lines, string(p))
	w.mu.Unlock()
	return len(p), nil
}

type logCapture struct {
	w   *testWriter
	log *slog.Logger
}

func newLogCapture(t testing.TB) *logCapture {
	w := &testWriter{t: t}
	return &logCapture{w: w, log: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func (l *logCapture) dump(t *testing.T) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	for _, s := range l.w.lines {
		t.Log(strings.TrimSpace(s))
	}
}

func (l *logCapture) count(sub string) int {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	n := 0
	for _, s := range l.w.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func (l *logCapture) has(sub string) bool {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	for _, s := range l.w.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

var rigs atomic.Int64

const testSerial = "DS-K1T341AM20231120V030700ENE00000001"

type rig struct {
	term *emu.Terminal
	src  *hikisapi.Terminal
	cfg  *hikisapi.Config
	h    *harness
	ev   *evidence
	logs *logCapture
	srv  *httptest.Server
}

// newRig starts an emulated terminal on loopback and opens the driver against it, with the
// harness reading it. mod adjusts the driver's config before Open.
func newRig(t testing.TB, ecfg emu.Config, mod func(*hikisapi.Config)) *rig {
	t.Helper()
	ecfg.Serial = testSerial
	// The driver keeps a terminal's state (credentials' standing, recorded serials) per address
	// and user for the life of the process; a loopback port can come back in a later test, so
	// each rig has a user of its own.
	ecfg.User = fmt.Sprintf("admin%d", rigs.Add(1))
	term := emu.New(ecfg)
	srv := httptest.NewServer(term)
	t.Cleanup(srv.Close)
	cfg := hikisapi.NewConfig()
	cfg.Address = srv.URL
	cfg.Serial = testSerial
	cfg.Username = ecfg.User
	cfg.Password = "12345abc"
	cfg.Listen = "127.0.0.1:0"
	cfg.RequestTimeout = drivers.Duration(2 * time.Second)
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	r := &rig{term: term, cfg: cfg, ev: &evidence{}, logs: newLogCapture(t), srv: srv}
	src, err := hikisapi.Open(context.Background(), *cfg, drivers.Env{Name: "hik-1", Log: r.logs.log, Evidence: r.ev})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	r.src = src
	r.h = startHarness(t, src)
	return r
}

func (r *rig) key(serial uint64) string { return testSerial + ":" + strconv.FormatUint(serial, 10) }
