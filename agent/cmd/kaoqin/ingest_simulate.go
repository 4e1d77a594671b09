package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/ingest/fleet"
)

// cmdIngestSimulate is `kaoqin ingest simulate`: a fleet of simulated devices against a broker
// and running ingesters (sync/ingest/fleet, docs/central.md).
func cmdIngestSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ingest simulate", "ingest simulate --devices N --device-keys DIR [flags]", stderr)
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker")
	devices := fs.Int("devices", 100, "simulated devices, each with its own key, chain and connection")
	keys := fs.String("device-keys", "", "directory where each device's <device>.pub is written: the ingesters' --device-keys (required)")
	central := fs.String("central-pub", "", "central public key: with it the devices obey resync commands and apply datasets")
	scenario := fs.String("scenario", "wave", "wave: every classroom signs in within --spread; morning: every device reconnects with --backlog events")
	perClass := fs.Int("trainees", 30, "wave: sign-ins per classroom")
	spread := fs.Duration("spread", 10*time.Minute, "wave: the time over which the classrooms sign in (compress it for a bench: 20s)")
	backlog := fs.Int("backlog", 2000, "morning: events each device recorded while offline")
	prefix := fs.String("prefix", "sim", "device name prefix")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keys == "" {
		return usagef("ingest simulate: --device-keys is required")
	}
	if *devices <= 0 || *scenario != "wave" && *scenario != "morning" {
		return usagef("ingest simulate: want --devices > 0 and --scenario wave or morning")
	}
	cfg := fleet.Config{Broker: *broker, Devices: *devices, KeysDir: *keys, Prefix: *prefix}
	if *central != "" {
		pub, err := ledger.LoadPublicKey(*central)
		if err != nil {
			return usagef("ingest simulate: --central-pub: %v", err)
		}
		cfg.CentralPub = pub
	}
	f, err := fleet.New(cfg, newLogger(stderr, slog.LevelWarn))
	if err != nil {
		return err
	}
	if *scenario == "morning" {
		fmt.Fprintf(stdout, "sealing %d events on each of %d devices...\n", *backlog, *devices)
		f.Record(*backlog, ledger.SignIn)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.Run(runCtx)
	}()
	defer func() { stop(); wg.Wait() }()
	start := time.Now()
	if *scenario == "wave" {
		fmt.Fprintf(stdout, "%d classrooms sign in %d trainees each within %v\n", *devices, *perClass, *spread)
		var rec sync.WaitGroup
		for _, d := range f.Devs {
			offs := make([]time.Duration, *perClass)
			for i := range offs {
				offs[i] = time.Duration(rand.Int64N(int64(*spread)))
			}
			slices.Sort(offs)
			rec.Add(1)
			go func() {
				defer rec.Done()
				for _, o := range offs {
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Until(start.Add(o))):
					}
					d.Record(1, ledger.SignIn, time.Now())
				}
			}()
		}
		rec.Wait()
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	done := make(chan error, 1)
	go func() { done <- f.WaitAcked(ctx) }()
	for {
		select {
		case err := <-done:
			t := f.Totals()
			lat := f.Latencies()
			fmt.Fprintf(stdout, "%d events acknowledged in %v (%.0f events/s); %d resends, %d resyncs, %d datasets applied\n",
				t.Acked, time.Since(start).Round(time.Millisecond), float64(t.Acked)/time.Since(start).Seconds(), t.Resends, t.Resyncs, t.Applied)
			fmt.Fprintf(stdout, "publish to ack: p50 %v, p99 %v, max %v over %d batches\n",
				fleet.Quantile(lat, 0.5), fleet.Quantile(lat, 0.99), fleet.Quantile(lat, 1), len(lat))
			return err
		case <-tick.C:
			t := f.Totals()
			fmt.Fprintf(stdout, "%v: %d connected, %d of %d events acknowledged\n", time.Since(start).Round(time.Second), t.Connected, t.Acked, t.Head)
		}
	}
}
