package ingest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// state publishes a retained state on the device's own topic (whatever device the state names).
func (d *fakeDevice) state(s *wire.State) {
	d.t.Helper()
	p, err := s.Encode()
	if err != nil {
		d.t.Fatal(err)
	}
	if tok := d.c.Publish(wire.StateTopic(synckit.Institution, d.name), 1, true, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish state: %v", tok.Error())
	}
}

// manifests collects the dataset manifests sent to the device (their version), from now on.
func (d *fakeDevice) manifests(dataset string) chan uint64 {
	d.t.Helper()
	got := make(chan uint64, 100)
	tok := d.c.Subscribe(wire.DataTopic(synckit.Institution, d.name, dataset), 1, func(_ mqtt.Client, m mqtt.Message) {
		if data, err := wire.DecodeData(m.Payload()); err == nil && data.Manifest != nil {
			var v struct{ Version uint64 }
			if err := json.Unmarshal(data.Manifest.Body, &v); err == nil {
				got <- v.Version
			}
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("subscribe: %v", tok.Error())
	}
	return got
}

// none checks that nothing arrives on c while the ingester's timer ticks at least a dozen times
// (every 50 ms with GapTimeout 200 ms): a dataset sent on every tick would be seen at once.
func none(t *testing.T, c chan uint64, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("%s: got a manifest of version %d, want none", what, v)
	case <-time.After(700 * time.Millisecond):
	}
}

func one(t *testing.T, c chan uint64, what string, want uint64) {
	t.Helper()
	select {
	case v := <-c:
		if v != want {
			t.Fatalf("%s: got a manifest of version %d, want %d", what, v, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no manifest in 10s, want version %d", what, want)
	}
}

// A state whose payload names another device than its topic is refused: nothing of it is kept,
// and the status says why.
func TestIngesterRefusesAStateNamingAnotherDevice(t *testing.T) {
	t.Parallel()
	_, d, in := deviceAndIngester(t, nil)
	d.online(in)
	d.state(&wire.State{Device: "jn-0001-r102", Online: false, Epoch: 8, HeadSeq: 99, Backlog: 99})
	waitStatus(t, in, "a refusal of the state naming jn-0001-r102", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && strings.Contains(s[0].LastError, `state of device "jn-0001-r102"`)
	})
	if s := in.Status()[0]; !s.Online || s.Backlog != 0 || s.HeadSeq != 0 {
		t.Fatalf("status after the refused state: online %v, backlog %d, head %d; want the earlier state (online, 0, 0)", s.Online, s.Backlog, s.HeadSeq)
	}
}

// A published dataset goes to an online device whose state reports an older version, once per
// ResendInterval while it still reports the older one; never to a device at that version.
func TestIngesterSendsADatasetOncePerResendInterval(t *testing.T) {
	t.Parallel()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	icfg := env.IngestConfig("central", b.URL())
	icfg.GapTimeout = 200 * time.Millisecond // the timer ticks every 50 ms
	icfg.ResendInterval = 3 * time.Second
	if err := ingest.Publish(context.Background(), icfg, "roster", 0, writeRoster(t, env.Dir, 3)); err != nil {
		t.Fatal(err)
	}
	const dev = "jn-0001-r101"
	d := newFakeDevice(t, env, b, dev)
	got := d.manifests("roster")
	in, _ := env.StartIngester(icfg)

	d.state(&wire.State{Device: dev, Online: true, Epoch: 8, DatasetVersions: map[string]uint64{"roster": 3}})
	waitStatus(t, in, "the device at roster 3", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && s[0].Online && s[0].DatasetVersions["roster"] == 3
	})
	none(t, got, "a device at the published version")

	d.state(&wire.State{Device: dev, Online: true, Epoch: 8, DatasetVersions: map[string]uint64{"roster": 2}})
	one(t, got, "a device at roster 2", 3)
	none(t, got, "within ResendInterval of the first send")
	one(t, got, "the device still at roster 2 after ResendInterval", 3)
}

// A device whose key is added to the registry while the ingester runs is accepted: the ingester
// reads the registry again (at most once a second) when an unknown device sends.
func TestIngesterReadsTheKeyOfANewDevice(t *testing.T) {
	t.Parallel()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	in, _ := env.StartIngester(env.IngestConfig("central", b.URL()))
	time.Sleep(1100 * time.Millisecond) // past the second after New read the registry
	const dev = "jn-0001-r101"
	d := newFakeDevice(t, env, b, dev) // registers its key now
	recs := d.run(8, 1, 2, ledger.ZeroHash)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.send(synckit.Institution, 8, 1, recs)
		select {
		case a := <-d.acks:
			if a.Epoch != 8 || a.AckedThrough != 2 {
				t.Fatalf("got an ack of epoch %d through %d, want epoch 8 through 2", a.Epoch, a.AckedThrough)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("a device registered while the ingester runs: no ack in 10s (status %+v)", in.Status())
		}
	}
}

// A device that only sends batches (no state) is still seen: its last contact is recorded.
func TestIngesterRecordsTheLastContactOfBatches(t *testing.T) {
	t.Parallel()
	_, d, in := deviceAndIngester(t, nil)
	start := time.Now()
	for { // the ingester's subscription may not be there yet: send until acknowledged
		d.send(synckit.Institution, 8, 1, d.run(8, 1, 2, ledger.ZeroHash))
		select {
		case a := <-d.acks:
			if a.AckedThrough != 2 {
				t.Fatalf("ack through %d, want 2", a.AckedThrough)
			}
		case <-time.After(200 * time.Millisecond):
			if time.Since(start) > 10*time.Second {
				t.Fatal("no ack in 10s")
			}
			continue
		}
		break
	}
	waitStatus(t, in, "the last contact of a device that sent a batch", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && !s[0].LastSeen.Before(start.Add(-time.Second)) && s[0].AckedThrough == 2
	})
}

// commands collects the signed commands sent to the device from now on.
func (d *fakeDevice) commands(env *synckit.Env) chan *wire.Command {
	d.t.Helper()
	pub := centralPub(d.t, env)
	got := make(chan *wire.Command, 100)
	tok := d.c.Subscribe(wire.CmdTopic(synckit.Institution, d.name), 1, func(_ mqtt.Client, m mqtt.Message) {
		if c, err := wire.DecodeCommand(m.Payload(), pub); err == nil {
			got <- c
		} else {
			d.t.Errorf("malformed command: %v", err)
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("subscribe: %v", tok.Error())
	}
	return got
}

// ackThrough waits for an ack of epoch 8 through seq through, skipping lower ones.
func (d *fakeDevice) ackThrough(what string, through uint64) {
	d.t.Helper()
	for {
		a := d.nextAck(what)
		if a.Epoch == 8 && a.AckedThrough == through {
			return
		}
		if a.Epoch != 8 || a.AckedThrough > through {
			d.t.Fatalf("%s: got an ack of epoch %d through %d, want epoch 8 through %d", what, a.Epoch, a.AckedThrough, through)
		}
	}
}

// Two gaps in one epoch: once the first fills, the ingester still waits for the second and asks
// for a resync from its first missing seq; once the second fills too the status shows no gap.
func TestIngesterAsksForTheSecondGapOfAnEpoch(t *testing.T) {
	t.Parallel()
	env, d, in := deviceAndIngester(t, func(c *ingest.Config) { c.GapTimeout = 300 * time.Millisecond })
	cmds := d.commands(env)
	d.online(in)
	recs := d.run(8, 1, 10, ledger.ZeroHash)
	d.send(synckit.Institution, 8, 1, recs[0:3])
	d.wantAck("seqs 1-3", 8, 3)
	d.send(synckit.Institution, 8, 6, recs[5:7])  // 4-5 missing
	d.send(synckit.Institution, 8, 9, recs[8:10]) // 8 missing
	d.send(synckit.Institution, 8, 4, recs[3:5])
	d.ackThrough("seqs 4-5 and the 6-7 held", 7)
	for deadline := time.After(10 * time.Second); ; {
		select {
		case c := <-cmds:
			if c.Cmd != wire.CmdResync || c.Epoch != 8 {
				t.Fatalf("command %+v, want a resync of epoch 8", c)
			}
			if c.FromSeq == 8 {
				goto filled
			}
			// a resync from 4 asked before 4-5 came is stale but harmless
		case <-deadline:
			t.Fatal("no resync from seq 8 in 10s, want one (the gap at 8 is still open)")
		}
	}
filled:
	d.send(synckit.Institution, 8, 8, recs[7:10]) // the resync: the 9-10 held was dropped after GapTimeout
	d.ackThrough("seqs 8-10", 10)
	waitStatus(t, in, "no gap after both filled", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && !s[0].Gap && s[0].AckedThrough == 10
	})
}

// A batch held beyond a gap is kept for GapTimeout from its arrival, not from its last retry:
// once that has passed it is dropped, and the batch that fills the gap is acknowledged alone
// (the device sends the rest again when the resync asks).
func TestBatchHeldBeyondAGapExpires(t *testing.T) {
	t.Parallel()
	_, d, in := deviceAndIngester(t, func(c *ingest.Config) { c.GapTimeout = 300 * time.Millisecond })
	d.online(in)
	recs := d.run(8, 1, 7, ledger.ZeroHash)
	d.send(synckit.Institution, 8, 1, recs[0:3])
	d.wantAck("seqs 1-3", 8, 3)
	d.send(synckit.Institution, 8, 6, recs[5:7]) // 4-5 missing: 6-7 held
	time.Sleep(time.Second)                      // retried every few ms, held for GapTimeout only
	d.send(synckit.Institution, 8, 4, recs[3:5])
	d.wantAck("seqs 4-5, the 6-7 held beyond the gap dropped after GapTimeout", 8, 5)
	for deadline := time.After(500 * time.Millisecond); ; { // held ones are retried every 25 ms
		select {
		case a := <-d.acks:
			if a.AckedThrough > 5 {
				t.Fatalf("an ack through %d after the gap filled: the 6-7 held beyond it were kept past GapTimeout", a.AckedThrough)
			}
			continue
		case <-deadline:
		}
		break
	}
}
