package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// BenchmarkTerminalBacklog: a ZKTeco terminal back after a week offline uploads a 10,000-line
// ATTLOG backlog to the daemon (real agent, real ledger, real PUSH server over loopback); the
// figure is readings durably recorded per second, until the terminal gets "OK: 10000". The
// baseline, in the same run, is the ledger's batched append rate: the same number of records
// of the same size written 100 to a bbolt transaction. (The agent appends one event a
// transaction, one fsync each: the target, 0.8x of the batched rate, needs group commit.)
func BenchmarkTerminalBacklog(b *testing.B) {
	const lines = 10000
	dir := b.TempDir()
	central := centralKey(b, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`device = "bench-r101"
institution = "0001"
state_dir = "state"
socket = "kaoqin.sock"

[[source]]
name = "room-zk"
kind = "zkpush"
listen = %q
serial = "ZKBENCH"
alnum_pins = true
state_dir = "zk"
ack_timeout = "5m"

[uplink]
central_key = "central.pub"
`, addr)
	d := startDaemon(b, dir, cfg, clock.Running("bench-boot", true))
	client := d.client
	r := demo.Roster(time.Now(), 40, 1)
	if _, err := client.ImportDataset(context.Background(), ops.ImportRequest{Bundle: signedRoster(b, central, "bench-r101", r)}); err != nil {
		b.Fatal(err)
	}
	url := "http://" + addr + "/iclock/cdata?SN=ZKBENCH&table=ATTLOG&Stamp=1"
	hc := &http.Client{Timeout: 10 * time.Minute}
	// The terminal's first call registers it.
	if !testkit.WaitFor(b, func() bool {
		resp, err := hc.Get("http://" + addr + "/iclock/cdata?SN=ZKBENCH&options=all&language=83&pushver=2.4.1")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}, 10*time.Second) {
		b.Fatal("the PUSH server does not answer")
	}

	// The baseline: 10,000 records of a sign-in's size, 100 to a transaction, in a bbolt file.
	rec := bytes.Repeat([]byte("x"), 560)
	bare, err := bolt.Open(filepath.Join(dir, "bare.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	t0 := time.Now()
	for i := 0; i < lines; i += 100 {
		err := bare.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("events"))
			if err != nil {
				return err
			}
			for j := i; j < i+100; j++ {
				if err := bk.Put([]byte(fmt.Sprintf("%016d", j)), rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	batched := lines / time.Since(t0).Seconds()

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var spent time.Duration
	n := 0
	for b.Loop() {
		var body strings.Builder
		for i := range lines {
			p := emu.Punch{PIN: demo.TraineeID(1 + i%39), At: base.Add(time.Duration(n*lines+i) * time.Millisecond), Verify: 15}
			body.WriteString(p.Line())
			body.WriteByte('\n')
		}
		n++
		t0 := time.Now()
		resp, err := hc.Post(url, "text/plain", strings.NewReader(body.String()))
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		resp.Body.Close()
		spent += time.Since(t0)
		if resp.StatusCode != 200 || out.String() != fmt.Sprintf("OK: %d", lines) {
			b.Fatalf("got %d %q, want OK: %d", resp.StatusCode, out.String(), lines)
		}
	}
	rate := float64(n*lines) / spent.Seconds()
	b.ReportMetric(rate, "recorded/s")
	b.ReportMetric(batched, "batched-appends/s")
	b.ReportMetric(rate/batched, "x-of-batched")
}
