// Package synckit builds the pieces of sync tests and benchmarks: keys, agent stores with their
// uplinks, ingesters, and the checker that compares what an agent recorded with what the ingester
// stored. The broker is sync/internal/brokertest's; the logger and WaitFor are agent/testkit's.
package synckit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// Institution is the institution code of test devices.
const Institution = "0001"

// Env is a directory with a central key, a registry of device keys and a logger.
type Env struct {
	T             testing.TB
	Dir           string
	CentralKey    string // private, for the ingester
	CentralPub    string // public, for agents
	DeviceKeysDir string
	Log           *slog.Logger
}

// NewEnv makes the keys in a temporary directory. The log goes to the test's output at the level
// in KAOQIN_TEST_LOG (debug, info, warn, error; default warn).
func NewEnv(t testing.TB) *Env {
	t.Helper()
	e := &Env{T: t, Dir: t.TempDir(), Log: testkit.Logger(t)}
	var err error
	if e.CentralKey, e.CentralPub, err = ledger.GenerateKeyFiles(filepath.Join(e.Dir, "central"), "central"); err != nil {
		t.Fatal(err)
	}
	e.DeviceKeysDir = filepath.Join(e.Dir, "devices")
	if err := os.MkdirAll(e.DeviceKeysDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

// DeviceKey makes a device key pair, registers the public key with the ingester's registry, and
// returns the private key file.
func (e *Env) DeviceKey(device string) string {
	e.T.Helper()
	priv, pub, err := ledger.GenerateKeyFiles(filepath.Join(e.Dir, "keys-"+device), "device")
	if err != nil {
		e.T.Fatal(err)
	}
	b, err := os.ReadFile(pub)
	if err != nil {
		e.T.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.DeviceKeysDir, device+".pub"), b, 0o644); err != nil {
		e.T.Fatal(err)
	}
	return priv
}

// StorePath is where a device's store lives.
func (e *Env) StorePath(device string) string { return filepath.Join(e.Dir, device+".db") }

// OpenStore opens (creating) a device's store with its key file.
func (e *Env) OpenStore(device, keyFile string) *store.Store {
	e.T.Helper()
	k, err := ledger.LoadPrivateKey(keyFile)
	if err != nil {
		e.T.Fatal(err)
	}
	st, err := store.Open(store.Config{Path: e.StorePath(device), Device: device, Key: k, Institution: Institution}, e.Log)
	if err != nil {
		e.T.Fatal(err)
	}
	return st
}

// UplinkConfig is an uplink configuration with short timeouts for tests.
func (e *Env) UplinkConfig(device, broker string) uplink.Config {
	c := UplinkConfig(device, broker, e.CentralPub)
	c.DiskPath = e.Dir
	return c
}

// UplinkConfig is an uplink configuration with short timeouts for tests.
func UplinkConfig(device, broker, centralPub string) uplink.Config {
	return uplink.Config{
		Broker: broker, Institution: Institution, Device: device, CentralKeyFile: centralPub,
		AckTimeout: time.Second, MaxAckTimeout: 4 * time.Second,
		ConnectTimeout: 2 * time.Second, KeepAlive: time.Second, PingTimeout: time.Second, WriteTimeout: 2 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		StateInterval: time.Second, FlushTimeout: 2 * time.Second, DatasetTimeout: 2 * time.Second,
	}
}

// IngestConfig is an ingester configuration with short timeouts for tests.
func (e *Env) IngestConfig(name, broker string) ingest.Config {
	return ingest.Config{
		Broker: broker, ClientID: "kaoqin-ingest-" + name, DB: filepath.Join(e.Dir, name+".db"),
		DeviceKeysDir: e.DeviceKeysDir, CentralKeyFile: e.CentralKey, DatasetDir: filepath.Join(e.Dir, "datasets"),
		GapTimeout: 500 * time.Millisecond, ResendInterval: 2 * time.Second, ChunkSize: 512,
		ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second, PingTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	}
}

// Running is a goroutine started by Start: Stop cancels it and returns what it returned.
type Running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start runs fn(ctx) on a goroutine until Stop (or the end of the test).
func Start(t testing.TB, fn func(ctx context.Context) error) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- fn(ctx) }()
	t.Cleanup(func() { r.Stop() })
	return r
}

// Stop cancels the goroutine and waits for it.
func (r *Running) Stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

// StartIngester creates and runs an ingester; it is stopped and closed at the end of the test.
func (e *Env) StartIngester(cfg ingest.Config) (*ingest.Ingester, *Running) {
	e.T.Helper()
	in, err := ingest.New(cfg, e.Log.With("component", "ingest", "client_id", cfg.ClientID))
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { in.Close() })
	return in, Start(e.T, in.Run)
}

// StartUplink creates and runs an uplink for st.
func (e *Env) StartUplink(st *store.Store, cfg uplink.Config) (*uplink.Uplink, *Running) {
	e.T.Helper()
	u, err := uplink.New(cfg, st, e.Log.With("component", "uplink", "device", cfg.Device))
	if err != nil {
		e.T.Fatal(err)
	}
	return u, Start(e.T, u.Run)
}

// SignIn is a typical accepted sign-in event (about 480 bytes sealed).
func SignIn(i int) ledger.Event {
	return ledger.Event{Kind: ledger.SignIn, Source: "fp1", Method: "fingerprint", Trainee: fmt.Sprintf("T%05d", i),
		IDMasked: "370102********1234", Session: "S-2026-11-27-AM", Institution: Institution, Score: 87, Margin: 12,
		Detail: fmt.Sprintf("page %d", i%300), Time: clock.Now()}
}

// Append appends n sign-ins.
func Append(t testing.TB, st *store.Store, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := st.Append(SignIn(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// WaitDrained waits until the store's cursor reaches its head, at most timeout.
func WaitDrained(t testing.TB, st *store.Store, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		head, _ := st.Head()
		acked, err := st.Acked()
		if err != nil {
			t.Fatal(err)
		}
		if acked == head {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog not drained after %v: acked %d, want head %d", timeout, acked, head)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Scanner is ingest.ScanFile or (*ingest.Ingester).Scan bound to its database.
type Scanner func(fn func(device string, epoch, seq uint64, rec ledger.Record) error) error

// Check compares what the agent recorded (st) with what the ingester stored (scan): every event
// of the agent's epoch stored exactly once and byte for byte, none invented (no other epoch of
// the device, no seq beyond the agent's head), seqs contiguous from 1, and the agent's backlog
// drained to zero. It returns every problem found, or nil.
func Check(st *store.Store, scan Scanner) error {
	device, epoch := st.Device(), st.Epoch()
	head, _ := st.Head()
	acked, err := st.Acked()
	if err != nil {
		return err
	}
	agent := make([]ledger.Record, 0, head)
	if err := st.Scan(1, func(seq uint64, r ledger.Record) error {
		if seq != uint64(len(agent))+1 {
			return fmt.Errorf("agent ledger: seq %d after %d", seq, len(agent))
		}
		agent = append(agent, bytes.Clone(r))
		return nil
	}); err != nil {
		return err
	}
	var problems []string
	bad := func(format string, a ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	if uint64(len(agent)) != head {
		bad("agent ledger holds %d events, its head is %d", len(agent), head)
	}
	next := uint64(1)
	err = scan(func(d string, e, seq uint64, rec ledger.Record) error {
		switch {
		case d != device:
			return nil
		case e != epoch:
			bad("ingester holds epoch %d seq %d: invented (the agent's epoch is %d)", e, seq, epoch)
			return nil
		case seq > head:
			bad("ingester holds seq %d beyond the agent's head %d: invented", seq, head)
			return nil
		case seq != next:
			bad("ingester seqs not contiguous: got seq %d, want %d", seq, next)
		}
		next = seq + 1
		if !bytes.Equal(rec, agent[seq-1]) {
			bad("ingester seq %d differs from the agent's record", seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if next-1 != head {
		bad("ingester holds seqs 1..%d, the agent recorded 1..%d: %d missing", next-1, head, head-(next-1))
	}
	if acked != head {
		bad("agent backlog not drained: acked %d, head %d", acked, head)
	}
	if problems != nil {
		return fmt.Errorf("synckit: check %s epoch %d:\n  %s", device, epoch, strings.Join(problems, "\n  "))
	}
	return nil
}

// Ed25519 reads a private key file (for tests that seal by hand).
func Ed25519(t testing.TB, path string) ed25519.PrivateKey {
	t.Helper()
	k, err := ledger.LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Produce appends a sign-in every interval until stopped, like a classroom that keeps signing in
// during a fault. It fails the test if an append fails.
func Produce(t testing.TB, st *store.Store, interval time.Duration) *Running {
	return Start(t, func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			if _, err := st.Append(SignIn(i)); err != nil {
				return err
			}
		}
	})
}
