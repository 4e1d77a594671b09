package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synctest"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// The agent child: the test binary run again with childEnv set to a JSON childConfig. It opens
// the store, runs the uplink and appends a sign-in every few milliseconds until it is killed.
const childEnv = "KAOQIN_E2E_AGENT"

type childConfig struct {
	StorePath  string
	KeyFile    string
	Device     string
	Broker     string
	CentralPub string
	Interval   time.Duration
}

func TestMain(m *testing.M) {
	if c := os.Getenv(childEnv); c != "" {
		os.Exit(runChild(c))
	}
	os.Exit(m.Run())
}

func runChild(js string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := ledger.LoadPrivateKey(c.KeyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	st, err := store.Open(store.Config{Path: c.StorePath, Device: c.Device, Key: key}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	u, err := uplink.New(synctest.UplinkConfig(c.Device, c.Broker, c.CentralPub), st, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	go func() {
		for i := 0; ; i++ {
			if _, err := st.Append(synctest.SignIn(i)); err != nil {
				fmt.Fprintln(os.Stderr, "child: append:", err)
				os.Exit(3)
			}
			time.Sleep(c.Interval)
		}
	}()
	if err := u.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// seed returns KAOQIN_SEED or a fresh seed, and logs it (shown when the test fails).
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("KAOQIN_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("KAOQIN_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with KAOQIN_SEED=%d)", s, s)
	return s
}

// The agent process is killed with SIGKILL at random moments, 100 times, while sign-ins keep
// coming: at start, mid-append, mid-publish, mid-ack. Then one more run drains the backlog and
// the checker compares the ledger with the ingester's store.
func TestAgentKilledRepeatedly(t *testing.T) {
	const cycles = 100
	rng := rand.New(rand.NewPCG(seed(t), 1))
	env := synctest.NewEnv(t)
	b := synctest.Broker(t, brokertest.Options{Persistence: true})
	const device = "jn-0001-r101"
	key := env.DeviceKey(device)
	env.OpenStore(device, key).Close() // the epoch is fixed before the first kill
	in, _ := env.StartIngester(env.IngestConfig("central", b.URL()))

	cfg, err := json.Marshal(childConfig{StorePath: env.StorePath(device), KeyFile: key, Device: device,
		Broker: b.URL(), CentralPub: env.CentralPub, Interval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var killedAfter time.Duration
	for i := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Half the kills come early (opening the store, connecting), half after the uplink ran a while.
		d := time.Duration(rng.Int64N(int64(80 * time.Millisecond)))
		if rng.IntN(2) == 0 {
			d = 80*time.Millisecond + time.Duration(rng.Int64N(int64(400*time.Millisecond)))
		}
		time.Sleep(d)
		killedAfter += d
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: the agent exited on its own (%v) before the kill:\n%s", i, err, out.String())
		}
	}
	st := env.OpenStore(device, key)
	defer st.Close()
	head, _ := st.Head()
	acked, _ := st.Acked()
	t.Logf("%d kills over %v of agent time: %d events recorded, %d acknowledged before the last run", cycles, killedAfter, head, acked)
	if acked == 0 {
		t.Errorf("acked 0 of %d after the kills: want some acknowledged, or the test proves nothing", head)
	}
	env.StartUplink(st, env.UplinkConfig(device, b.URL()))
	synctest.WaitDrained(t, st, 60*time.Second)
	if err := synctest.Check(st, in.Scan); err != nil {
		t.Fatal(err)
	}
}
