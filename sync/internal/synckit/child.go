package synckit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// The child agent of the kill tests and the drain benchmark: the test binary run again with
// childEnv set, as a separate process a test can SIGKILL at any moment. One harness for every
// package: its TestMain calls ChildMain, its tests StartChild.
const childEnv = "KAOQIN_SYNC_CHILD"

// ChildConfig is what a child agent runs: its store and key, its device, the broker and the
// central key.
type ChildConfig struct {
	StorePath, KeyFile, Device, Broker, CentralPub string
	// Interval, if set, appends a sign-in at this interval while the uplink runs (a classroom
	// that keeps signing in).
	Interval time.Duration
	// Hook names a hook the test package installed with ChildMain (say, a kill before a swap).
	Hook string
	// Bench runs with the production ack timeouts (window and batch from KAOQIN_BENCH_WINDOW and
	// KAOQIN_BENCH_BATCH), stops as soon as its backlog is acknowledged, and prints a ChildReport
	// on stdout.
	Bench bool
}

// ChildReport is what a bench child reports: when its backlog was drained and its memory.
type ChildReport struct {
	Drained      time.Time // when the cursor reached the head
	HeapInuseMax uint64    // the highest HeapInuse, sampled every 10ms
	PeakRSS      uint64    // VmHWM: includes the pages of the store's file mapped by bbolt
	AnonMax      uint64    // the highest RssAnon sampled: the agent's own memory
	TotalAlloc   uint64
	NumGC        uint32
}

// ChildMain is a test package's TestMain: in a child started by StartChild it runs the agent
// (hooks by name: what the package's tests may ask a child to install before it runs) and exits;
// otherwise it runs the tests.
func ChildMain(m *testing.M, hooks map[string]func()) {
	if js := os.Getenv(childEnv); js != "" {
		os.Exit(runChild(js, hooks))
	}
	os.Exit(m.Run())
}

// StartChild starts a child agent; its output goes to out (os.Stderr when nil). The caller
// waits for it (or kills it).
func StartChild(t testing.TB, c ChildConfig, out io.Writer) *exec.Cmd {
	t.Helper()
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	if out == nil {
		out = os.Stderr
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func runChild(js string, hooks map[string]func()) int {
	fail := func(code int, err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return code
	}
	var c ChildConfig
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		return fail(2, err)
	}
	key, err := ledger.LoadPrivateKey(c.KeyFile)
	if err != nil {
		return fail(2, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(store.Config{Path: c.StorePath, Device: c.Device, Key: key, Institution: Institution}, log)
	if err != nil {
		return fail(2, err)
	}
	if c.Hook != "" {
		h, ok := hooks[c.Hook]
		if !ok {
			return fail(2, fmt.Errorf("no hook %q", c.Hook))
		}
		h()
	}
	cfg := UplinkConfig(c.Device, c.Broker, c.CentralPub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.Interval > 0 {
		go func() {
			for i := 0; ; i++ {
				if _, err := st.Append(SignIn(i)); err != nil {
					fmt.Fprintln(os.Stderr, "child: append:", err)
					os.Exit(3)
				}
				time.Sleep(c.Interval)
			}
		}()
	}
	var rep ChildReport
	sampled := make(chan struct{})
	if c.Bench {
		if path := os.Getenv("KAOQIN_AGENT_CPUPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
		}
		cfg.AckTimeout, cfg.MaxAckTimeout = 0, 0
		if v, err := strconv.Atoi(os.Getenv("KAOQIN_BENCH_WINDOW")); err == nil {
			cfg.Window = v
		}
		if v, err := strconv.Atoi(os.Getenv("KAOQIN_BENCH_BATCH")); err == nil {
			cfg.BatchSize = v
		}
		go func() {
			defer close(sampled)
			var ms runtime.MemStats
			for i := 0; ; i++ {
				if i%10 == 0 {
					runtime.ReadMemStats(&ms)
					rep.HeapInuseMax = max(rep.HeapInuseMax, ms.HeapInuse)
					rep.AnonMax = max(rep.AnonMax, ProcStatus(os.Getpid(), "RssAnon:"))
				}
				head, _ := st.Head()
				if acked, _ := st.Acked(); acked == head {
					rep.Drained = time.Now()
					cancel()
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	u, err := uplink.New(cfg, st, log)
	if err != nil {
		return fail(2, err)
	}
	if err := u.Run(ctx); err != nil {
		return fail(1, err)
	}
	if c.Bench {
		<-sampled
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rep.TotalAlloc, rep.NumGC, rep.PeakRSS = ms.TotalAlloc, ms.NumGC, ProcStatus(os.Getpid(), "VmHWM:")
		json.NewEncoder(os.Stdout).Encode(rep)
	}
	return 0
}

// ProcStatus reads a field of /proc/PID/status in bytes (the kernel writes kB), 0 if absent.
func ProcStatus(pid int, field string) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}
