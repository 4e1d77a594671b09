package zkpush_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/zkpush"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// memEvidence is an in-test evidence store: photos by their SHA-256.
type memEvidence struct {
	mu     sync.Mutex
	photos map[string][]byte
}

func (m *memEvidence) PutEvidence(kind drivers.EvidenceKind, jpeg []byte) (drivers.EvidenceRef, error) {
	sum := sha256.Sum256(jpeg)
	ref := drivers.EvidenceRef{SHA256: hex.EncodeToString(sum[:]), Kind: kind, Size: int64(len(jpeg))}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.photos == nil {
		m.photos = map[string][]byte{}
	}
	m.photos[ref.SHA256] = append([]byte(nil), jpeg...)
	return ref, nil
}

func (m *memEvidence) count() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.photos) }

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *logBuf) count(s string) int          { return strings.Count(l.String(), s) }

// ledger stands in for the agent: it reads Next, "records" each reading into a set keyed by Key
// (a key already held is recorded once, as the agent does) and then calls Done.
type ledger struct {
	mu        sync.Mutex
	byKey     map[string]drivers.Reading
	delivered int                         // readings handed over by the driver, duplicates included
	verdict   func(n int) drivers.Verdict // the verdict for the n-th reading delivered (1-based)
	hold      chan struct{}               // when set, Done waits for it to close
}

func (l *ledger) run(ctx context.Context, src drivers.Source) {
	for {
		rd, err := src.Next(ctx)
		if err != nil {
			return
		}
		l.mu.Lock()
		l.delivered++
		n := l.delivered
		v := drivers.Recorded
		if l.verdict != nil {
			v = l.verdict(n)
		}
		if v != drivers.NotRecorded {
			if was, dup := l.byKey[rd.Key]; !dup {
				l.byKey[rd.Key] = rd
			} else if len(rd.Evidence) > 0 { // as the agent does: late photos attached to the event
				was.Evidence = append(was.Evidence, rd.Evidence...)
				l.byKey[rd.Key] = was
			}
		}
		hold := l.hold
		l.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if rd.Done != nil {
			rd.Done(v)
		}
	}
}

func (l *ledger) recorded() map[string]drivers.Reading {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]drivers.Reading, len(l.byKey))
	for k, v := range l.byKey {
		out[k] = v
	}
	return out
}

func (l *ledger) deliveredN() int { l.mu.Lock(); defer l.mu.Unlock(); return l.delivered }

// rig is one terminal opened on a loopback server with its ledger running.
type rig struct {
	t        testing.TB
	term     *zkpush.Terminal
	led      *ledger
	ev       *memEvidence
	logs     *logBuf
	trusted  bool
	trustMu  sync.Mutex
	url      string
	serial   string
	stateDir string
}

// config returns a terminal's config on a loopback port shared by the rigs of one test that
// pass the same listen.
func config(t testing.TB, serial, listen string) *zkpush.Config {
	c := zkpush.NewConfig()
	c.Listen = listen
	c.Serial = serial
	c.StateDir = drivers.Path(t.TempDir())
	c.AckTimeout = drivers.Duration(3 * time.Second)
	return c
}

func open(t *testing.T, c *zkpush.Config) *rig { return openF(t, c) }

func openF(t testing.TB, c *zkpush.Config) *rig {
	t.Helper()
	r := &rig{t: t, led: &ledger{byKey: map[string]drivers.Reading{}}, ev: &memEvidence{}, logs: &logBuf{},
		serial: c.Serial, stateDir: string(c.StateDir)}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: got %v, want nil", err)
	}
	env := drivers.Env{
		Name:     "zk-" + c.Serial,
		Log:      slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Evidence: r.ev,
		ClockTrusted: func() bool {
			r.trustMu.Lock()
			defer r.trustMu.Unlock()
			return r.trusted
		},
	}
	src, err := c.Open(context.Background(), env)
	if err != nil {
		t.Fatalf("Open: got %v, want nil", err)
	}
	r.term = src.(*zkpush.Terminal)
	r.url = "http://" + r.term.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.led.run(ctx, r.term) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.term.Close()
	})
	return r
}

func (r *rig) setTrusted(v bool) { r.trustMu.Lock(); r.trusted = v; r.trustMu.Unlock() }

// emu makes an emulated terminal of the rig's serial.
func (r *rig) emu(mod func(*emu.Config)) *emu.Terminal {
	c := emu.Config{Server: r.url, Serial: r.serial}
	if mod != nil {
		mod(&c)
	}
	return emu.New(c)
}

// syncName boots an emulated terminal (its config changed by mod), syncs one trainee to it
// through the driver and returns the name the terminal shows for that PIN after its next poll.
func (r *rig) syncName(mod func(*emu.Config), pin, name string) string {
	r.t.Helper()
	term := r.emu(mod)
	ctx := context.Background()
	if err := term.Boot(ctx); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.term.SyncPersons(ctx, []drivers.Person{{Trainee: pin, Name: name}}); err != nil {
		r.t.Fatal(err)
	}
	if err := term.Poll(ctx); err != nil {
		r.t.Fatal(err)
	}
	return term.Users()[pin]
}

// post sends a raw request and returns the status and body.
func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// eventually polls cond (a test of behaviour, not of timing: the deadline is generous).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

var httpClient = &http.Client{Timeout: time.Minute}
