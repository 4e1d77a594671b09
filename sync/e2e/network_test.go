package e2e

import (
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/faultnet"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// rig is one agent and one ingester on a real broker, the agent behind a fault proxy.
type rig struct {
	env    *synckit.Env
	broker *brokertest.Broker
	proxy  *faultnet.Proxy
	st     *store.Store
	in     *ingest.Ingester
	up     *uplink.Uplink
	upRun  *synckit.Running
}

func newRig(t *testing.T, opt brokertest.Options, mangle func(string, wire.Ack) []wire.Ack) *rig {
	t.Helper()
	r := &rig{env: synckit.NewEnv(t)}
	r.broker = brokertest.Start(t, opt)
	var err error
	if r.proxy, err = faultnet.Listen(r.broker.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.proxy.Close() })
	key := r.env.DeviceKey("jn-0001-r101")
	r.st = r.env.OpenStore("jn-0001-r101", key)
	t.Cleanup(func() { r.st.Close() })
	icfg := r.env.IngestConfig("central", r.broker.URL())
	icfg.MangleAck = mangle
	r.in, _ = r.env.StartIngester(icfg)
	r.up, r.upRun = r.env.StartUplink(r.st, r.env.UplinkConfig("jn-0001-r101", r.proxy.URL()))
	return r
}

// finish stops producing, heals the network, waits for the backlog to drain and checks.
func (r *rig) finish(t *testing.T, prod *synckit.Running) {
	t.Helper()
	if err := prod.Stop(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	r.proxy.Heal()
	synckit.WaitDrained(t, r.st, 60*time.Second)
	if err := synckit.Check(r.st, r.in.Scan); err != nil {
		t.Fatal(err)
	}
	head, _ := r.st.Head()
	t.Logf("%d events, uplink %+v", head, r.up.Stats())
}

func TestNetworkFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(p *faultnet.Proxy)
	}{
		{"cut", func(p *faultnet.Proxy) {
			p.Cut()
			time.Sleep(1500 * time.Millisecond)
			p.Heal()
		}},
		{"blackhole agent to broker", func(p *faultnet.Proxy) {
			p.Blackhole(faultnet.Up, true)
			time.Sleep(4 * time.Second) // beyond keepalive: the agent reconnects into the blackhole
			p.Heal()
		}},
		{"blackhole broker to agent", func(p *faultnet.Proxy) {
			p.Blackhole(faultnet.Down, true)
			time.Sleep(4 * time.Second)
			p.Heal()
		}},
		{"delay", func(p *faultnet.Proxy) {
			p.Delay(40 * time.Millisecond)
			time.Sleep(3 * time.Second)
			p.Heal()
		}},
		{"reset", func(p *faultnet.Proxy) {
			for range 5 {
				time.Sleep(300 * time.Millisecond)
				p.Reset()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, brokertest.Options{}, nil)
			prod := synckit.Produce(t, r.st, 3*time.Millisecond)
			time.Sleep(300 * time.Millisecond) // flowing before the fault
			tc.fault(r.proxy)
			time.Sleep(300 * time.Millisecond) // and after it
			r.finish(t, prod)
		})
	}
}

// The broker is killed (SIGKILL) and restarted on the same port mid-stream, three times; with
// persistence on it comes back with what it saved in the last second, with it off with nothing.
func TestBrokerKilledMidStream(t *testing.T) {
	for _, persist := range []bool{true, false} {
		name := "persistence off"
		if persist {
			name = "persistence on"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, brokertest.Options{Persistence: persist}, nil)
			prod := synckit.Produce(t, r.st, 3*time.Millisecond)
			for range 3 {
				time.Sleep(400 * time.Millisecond)
				r.broker.Kill()
				time.Sleep(300 * time.Millisecond)
				r.broker.Restart()
			}
			time.Sleep(300 * time.Millisecond)
			r.finish(t, prod)
		})
	}
}
