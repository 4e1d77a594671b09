package uplink_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
)

// The benchmarks of the sync path (make bench):
//
//	go test -run '^$' -bench . -benchtime 1x ./sync/uplink              # drain of 100,000 events
//	go test -run '^$' -bench AckLatency -benchtime 300x ./sync/uplink   # latency at 10 events/s
//
// BenchmarkDrain runs the agent in a child process (so that its RSS is its own) draining a
// 100,000-event backlog through mosquitto to an ingester in the benchmark process and back as
// acks, and in the same run a bare paho client publishing 200-byte QoS 1 messages pipelined to
// the same broker. It reports events/s, the wall time of the drain, the ratio to the bare
// client's messages/s (no subscriber: the broker only PUBACKs), and the agent's peak RSS, its
// anonymous part (the rest is the store's file mapped by bbolt) and its Go heap. For tuning,
// KAOQIN_BENCH_WINDOW and KAOQIN_BENCH_BATCH override the agent's Window and BatchSize, and
// KAOQIN_AGENT_CPUPROFILE=file profiles the agent process.

const drainEvents = 100_000

// backlog is a ledger of drainEvents sign-ins (plus the epoch alarm), built once per process on a
// tmpfs when there is one (building it on a real disk costs an fsync per event) and copied for
// each run.
var backlog struct {
	once sync.Once
	dir  string
	err  error
}

func buildBacklog() (dir string, err error) {
	backlog.once.Do(func() {
		base := os.TempDir()
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			base = "/dev/shm"
		}
		if backlog.dir, backlog.err = os.MkdirTemp(base, "kaoqin-backlog-"); backlog.err != nil {
			return
		}
		var priv string
		if priv, _, backlog.err = ledger.GenerateKeyFiles(backlog.dir, "device"); backlog.err != nil {
			return
		}
		key, err := ledger.LoadPrivateKey(priv)
		if err != nil {
			backlog.err = err
			return
		}
		st, err := store.Open(store.Config{Path: filepath.Join(backlog.dir, "kaoqin.db"), Device: device, Key: key}, slog.New(slog.DiscardHandler))
		if err != nil {
			backlog.err = err
			return
		}
		defer st.Close()
		for i := range drainEvents {
			if _, err := st.Append(synckit.SignIn(i)); err != nil {
				backlog.err = err
				return
			}
		}
	})
	return backlog.dir, backlog.err
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// barePaho publishes n 200-byte QoS 1 messages pipelined (at most 10,000 unacknowledged) and
// returns messages/s once every PUBACK is in.
func barePaho(b *testing.B, url string, n int) float64 {
	b.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("bare-paho").SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatalf("bare paho: connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	payload := bytes.Repeat([]byte("x"), 200)
	window := make([]mqtt.Token, 0, n)
	start := time.Now()
	for i := range n {
		if len(window) >= 10_000 {
			if !window[0].WaitTimeout(10*time.Second) || window[0].Error() != nil {
				b.Fatalf("bare paho: message %d: %v", i, window[0].Error())
			}
			window = window[1:]
		}
		window = append(window, c.Publish("bench/bare", 1, false, payload))
	}
	for _, tok := range window {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("bare paho: %v", tok.Error())
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func BenchmarkDrain(b *testing.B) {
	dir, err := buildBacklog()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	env := synckit.NewEnv(b)
	br := brokertest.Start(b, brokertest.Options{Persistence: true})
	pub, err := os.ReadFile(filepath.Join(dir, "device.pub"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.DeviceKeysDir, device+".pub"), pub, 0o644); err != nil {
		b.Fatal(err)
	}
	var rates, ratios, walls, rss, anon, heap []float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		bare := barePaho(b, br.URL(), drainEvents)
		run := filepath.Join(env.Dir, fmt.Sprintf("run%d", i))
		os.MkdirAll(run, 0o700)
		storePath := filepath.Join(run, "kaoqin.db")
		if err := copyFile(filepath.Join(dir, "kaoqin.db"), storePath); err != nil {
			b.Fatal(err)
		}
		in, ingRun := env.StartIngester(env.IngestConfig(fmt.Sprintf("central%d", i), br.URL()))
		var out bytes.Buffer
		b.StartTimer()
		start := time.Now()
		cmd := synckit.StartChild(b, synckit.ChildConfig{StorePath: storePath, KeyFile: filepath.Join(dir, "device.key"), Device: device,
			Broker: br.URL(), CentralPub: env.CentralPub, Bench: true}, &out)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("agent: %v", err)
		}
		b.StopTimer()
		var rep synckit.ChildReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			b.Fatalf("agent report %q: %v", out.String(), err)
		}
		wall := rep.Drained.Sub(start)
		ingRun.Stop()
		key := synckit.Ed25519(b, filepath.Join(dir, "device.key"))
		st, err := store.Open(store.Config{Path: storePath, Device: device, Key: key}, env.Log)
		if err != nil {
			b.Fatal(err)
		}
		if err := synckit.Check(st, in.Scan); err != nil {
			b.Fatal(err)
		}
		st.Close()
		in.Close()
		rate := float64(drainEvents) / wall.Seconds()
		rates, walls, ratios = append(rates, rate), append(walls, wall.Seconds()), append(ratios, rate/bare)
		rss, anon, heap = append(rss, float64(rep.PeakRSS)/(1<<20)), append(anon, float64(rep.AnonMax)/(1<<20)), append(heap, float64(rep.HeapInuseMax)/(1<<20))
		b.Logf("run %d: drain %v, %.0f events/s; bare paho %.0f msgs/s; ratio %.2fx; agent peak RSS %.1f MiB (anonymous %.1f MiB, the rest the store's mapped file), Go heap in use max %.1f MiB, %d GCs",
			i, wall.Round(time.Millisecond), rate, bare, rate/bare, float64(rep.PeakRSS)/(1<<20), float64(rep.AnonMax)/(1<<20), float64(rep.HeapInuseMax)/(1<<20), rep.NumGC)
		b.StartTimer()
	}
	b.ReportMetric(median(rates), "events/s")
	b.ReportMetric(median(walls), "s/drain")
	b.ReportMetric(median(ratios), "x_bare_paho")
	b.ReportMetric(median(rss), "MiB_agent_rss")
	b.ReportMetric(median(anon), "MiB_agent_anon")
	b.ReportMetric(median(heap), "MiB_agent_heap")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkAckLatency appends at classroom rates (10 events/s) and measures from Append returning
// to the agent's cursor covering the event (the central's ack arrived and was recorded).
func BenchmarkAckLatency(b *testing.B) {
	env := synckit.NewEnv(b)
	br := brokertest.Start(b, brokertest.Options{Persistence: true})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	env.StartIngester(env.IngestConfig("central", br.URL()))
	cfg := env.UplinkConfig(device, br.URL())
	cfg.AckTimeout, cfg.MaxAckTimeout = 0, 0
	env.StartUplink(st, cfg)
	synckit.Append(b, st, 1)
	// Warm-up: if the first batch beat the ingester's subscription to the broker, it is resent
	// after the default ack timeout (15 s), so wait longer than that.
	synckit.WaitDrained(b, st, 40*time.Second)
	var lat []time.Duration
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	i := 0
	for b.Loop() {
		<-tick.C
		e, err := st.Append(synckit.SignIn(i))
		if err != nil {
			b.Fatal(err)
		}
		i++
		start := time.Now()
		for {
			acked, _ := st.Acked()
			if acked >= e.Seq {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("seq %d not acknowledged after 10s", e.Seq)
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "ms_p50")
	b.ReportMetric(q(0.99), "ms_p99")
	b.ReportMetric(q(1), "ms_max")
	b.ReportMetric(0, "ns/op")
}
