package agent_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/testkit"
)

// daemon is an agent run in the test process from a config file of the test's, the way the
// in-process tests of the seams, the spot checks, the inspector and the backlog benchmark start
// it: a device key in dir/state/keys, the clock given, the socket answering.
type daemon struct {
	a       *agent.Agent
	client  *api.Client
	cfg     *agent.Config
	cfgPath string
	logs    *testkit.LogBuffer
	// Stop stops the daemon and waits for Run (once; the test's cleanup calls it too).
	Stop func()
}

// startDaemon writes cfgTOML to dir/agent.toml (a device key is made in dir/state/keys if there
// is none), runs the agent with clk, and waits until its socket answers. It logs at debug level,
// a benchmark's daemon at info (the level of a box).
func startDaemon(t testing.TB, dir, cfgTOML string, clk clock.Source) *daemon {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "state", "keys")); err != nil {
		if _, _, err := ledger.GenerateKeyFiles(filepath.Join(dir, "state", "keys"), "device"); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{cfgPath: filepath.Join(dir, "agent.toml"), logs: &testkit.LogBuffer{}}
	if err := os.WriteFile(d.cfgPath, []byte(cfgTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if d.cfg, err = agent.LoadConfig(d.cfgPath); err != nil {
		t.Fatal(err)
	}
	level := slog.LevelDebug // a test's failure shows the daemon's every step
	if _, bench := t.(*testing.B); bench {
		level = slog.LevelInfo // a benchmark measures the daemon as it runs on a box
	}
	if d.a, err = agent.New(d.cfg, slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: level}))); err != nil {
		t.Fatal(err)
	}
	agent.SetClock(d.a, clk) // the test machine's kernel may never say synchronised
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.a.Run(ctx) }()
	var once sync.Once
	d.Stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if t.Failed() {
				t.Logf("daemon log:\n%s", d.logs)
			}
		})
	}
	t.Cleanup(d.Stop)
	if !testkit.WaitFor(t, func() bool { d.client, err = api.Dial(d.cfg.Socket); return err == nil }, 10*time.Second) {
		t.Fatalf("daemon socket: %v", err)
	}
	return d
}
