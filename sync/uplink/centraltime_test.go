package uplink_test

import (
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Each ack that moves the cursor for a batch published once hands the agent the central system's
// clock: the central committed the batch between its publish and the ack's arrival, so its signed
// time lies between the two (the ingester runs on this machine's clock). Events a previous run
// published are not timed: their acks may answer a publish this process did not see.
func TestAcksGiveTheCentralsClock(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	synckit.Append(t, st, 5) // from before this run: sent, as far as this process knows, by another
	env.StartIngester(env.IngestConfig("central", b.URL()))
	var (
		mu    sync.Mutex
		times []uplink.CentralTime
	)
	cfg := env.UplinkConfig(device, b.URL())
	cfg.Downlink = uplink.DownlinkFunc(func(d uplink.Delivery) {
		if d.Time != nil {
			mu.Lock()
			times = append(times, *d.Time)
			mu.Unlock()
		}
	})
	env.StartUplink(st, cfg)
	synckit.WaitDrained(t, st, 20*time.Second)
	mu.Lock()
	if len(times) != 0 {
		t.Errorf("the central's clock from acks of events appended before the run: got %d, want none", len(times))
	}
	mu.Unlock()

	synckit.Append(t, st, 20)
	synckit.WaitDrained(t, st, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(times) == 0 {
		t.Fatal("the central's clock: none handed over for 20 events sent and acknowledged in this run")
	}
	central, err := ledger.LoadPublicKey(env.CentralPub)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range times {
		if ct.Time.Before(ct.Sent.Round(0)) || ct.Time.After(ct.Received.Round(0)) {
			t.Errorf("central time %v for seq %d: want it between the publish (%v) and the ack (%v)", ct.Time, ct.Seq, ct.Sent, ct.Received)
		}
		a, err := wire.DecodeAck(ct.Receipt, central)
		if err != nil || !a.Time.Equal(ct.Time) || a.AckedThrough != ct.Seq || ct.Seq <= 6 {
			t.Errorf("receipt of seq %d: got %v (err %v), want the central's signed ack of that seq and time, after the events of before the run (seq 6)", ct.Seq, a, err)
		}
	}
}
