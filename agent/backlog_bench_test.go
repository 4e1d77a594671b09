package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// BenchmarkTerminalBacklog: a ZKTeco terminal back after a week offline uploads a 10,000-line
// ATTLOG backlog to the daemon (real agent, real ledger, real PUSH server over loopback); the
// figure is readings durably recorded per second, until the terminal gets "OK: 10000". The
// baseline, in the same run, is the ledger's own batched append rate: as many sign-in events,
// sealed and appended 100 to a transaction (store.AppendBatch) to a ledger of their own. The
// target is 0.8x: deciding the readings, the PUSH server and the hand-offs cost at most a fifth.
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

	baseline := openBaseline(b, filepath.Join(dir, "baseline"))
	defer baseline.Close()

	// A week's punches, one a second apart: ATTLOG times are to the second, and the driver
	// records a (PIN, time, status, verify) once.
	base := time.Now().Add(-7 * 24 * time.Hour).Truncate(time.Second)
	var spent, bare time.Duration
	n := 0
	for b.Loop() {
		// The baseline and the daemon take turns, so that both see the machine's load alike.
		bare += appendBatched(b, baseline, n*lines, lines)

		var body strings.Builder
		for i := range lines {
			p := emu.Punch{PIN: demo.TraineeID(1 + i%39), At: base.Add(time.Duration(n*lines+i) * time.Second), Verify: 15}
			body.WriteString(p.Line())
			body.WriteByte('\n')
		}
		n++
		before := head(b, client)
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
		if got := head(b, client) - before; got < lines {
			b.Fatalf("the ledger grew by %d events for a backlog of %d punches, want one event each", got, lines)
		}
	}
	rate := float64(n*lines) / spent.Seconds()
	batched := float64(n*lines) / bare.Seconds()
	b.ReportMetric(rate, "recorded/s")
	b.ReportMetric(batched, "batched-appends/s")
	b.ReportMetric(rate/batched, "x-of-batched")
}

func head(b *testing.B, c *api.Client) uint64 {
	st, err := c.Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return st.Head
}

// openBaseline opens a new ledger in dir for the baseline.
func openBaseline(b *testing.B, dir string) *store.Store {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(store.Config{Path: filepath.Join(dir, "kaoqin.db"), Device: "bench-baseline", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// appendBatched appends n sign-in events of a terminal reading's shape to st, 100 to a
// store.AppendBatch, and returns the time it took.
func appendBatched(b *testing.B, st *store.Store, from, n int) time.Duration {
	events := make([]ledger.Event, 100)
	t0 := time.Now()
	for i := from; i < from+n; i += len(events) {
		for j := range events {
			events[j] = ledger.Event{Kind: ledger.SignIn, Source: "room-zk", Method: "face", Trainee: demo.TraineeID(1 + (i+j)%39),
				IDMasked: "370102********1234", Session: "S-2026-11-27-am", Institution: "0001", Intent: "in",
				Key: fmt.Sprintf("zk:ZKBENCH:%d", i+j), Detail: "verify 15",
				Time: ledger.Clock{Wall: time.Now(), Mono: int64(i + j), Boot: "bench-boot", Synced: true}}
		}
		if _, err := st.AppendBatch(events); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t0)
}
