package zkpush_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// emu.Run, as `kaoqin emulate zkpush` runs it: a script with every fault, then the terminal's
// own loop; every punch is recorded once, with its photo.
func TestEmulatorScript(t *testing.T) {
	r := open(t, config(t, "ZK030", "127.0.0.1:0"))
	script := `
# a morning at the terminal
boot
punch 1452 status=0 verify=15 photo at=20260302080128
punch 1453 status=0 verify=1 at=20260302080201
powercut 20          # the power fails mid-upload
upload
upload               # sent again after the restart
network down
punch 1454 verify=4 at=20260302080300
upload               # fails: no network
network up
upload
replay               # the same batch again
clock +2h
punch 1455 at=20260302100000
upload
poll
wait 10ms
`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &logBuf{}
	done := make(chan error, 1)
	go func() {
		done <- emu.Run(ctx, r.url, "ZK030", strings.NewReader(script), slog.New(slog.NewTextHandler(logs, nil)))
	}()
	eventually(t, "the script's punches and photo recorded", func() bool { return len(r.led.recorded()) >= 4 && r.ev.count() >= 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: got %v, want nil once its context is done", err)
	}
	got := r.led.recorded()
	for _, k := range []string{
		"ZK030|1452|2026-03-02 08:01:28|0|15", "ZK030|1453|2026-03-02 08:02:01|0|1",
		"ZK030|1454|2026-03-02 08:03:00|0|4", "ZK030|1455|2026-03-02 10:00:00|0|15",
	} {
		if _, ok := got[k]; !ok {
			t.Errorf("no reading %s; got %v", k, keys(got))
		}
	}
	if len(got) != 4 {
		t.Errorf("recorded %d, want 4", len(got))
	}
	if r.ev.count() != 1 {
		t.Errorf("evidence: %d photos, want 1", r.ev.count())
	}
	if !strings.Contains(logs.String(), "network cut") || !strings.Contains(logs.String(), "power cut") {
		t.Errorf("the emulator's log does not show its faults:\n%s", logs)
	}
	if err := emu.New(emu.Config{Serial: "x"}).Play(ctx, strings.NewReader("dance\n")); err == nil {
		t.Error("an unknown step: got nil error")
	}
}
