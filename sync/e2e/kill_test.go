package e2e

import (
	"bytes"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
)

func TestMain(m *testing.M) { synckit.ChildMain(m, nil) }

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
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{Persistence: true})
	const device = "jn-0001-r101"
	key := env.DeviceKey(device)
	env.OpenStore(device, key).Close() // the epoch is fixed before the first kill
	in, _ := env.StartIngester(env.IngestConfig("central", b.URL()))

	cfg := synckit.ChildConfig{StorePath: env.StorePath(device), KeyFile: key, Device: device,
		Broker: b.URL(), CentralPub: env.CentralPub, Interval: 2 * time.Millisecond}
	var killedAfter time.Duration
	for i := range cycles {
		out := &bytes.Buffer{}
		cmd := synckit.StartChild(t, cfg, out)
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
	synckit.WaitDrained(t, st, 60*time.Second)
	if err := synckit.Check(st, in.Scan); err != nil {
		t.Fatal(err)
	}
}
