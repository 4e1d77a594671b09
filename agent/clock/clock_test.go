package clock_test

import (
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

func TestFakeMovesAndJumps(t *testing.T) {
	start := time.Date(1970, 1, 1, 0, 0, 30, 0, time.UTC)
	f := clock.NewFake("b1", start, false)
	r := f.Read()
	if !r.Wall.Equal(start) || r.Mono != int64(time.Second) || r.Boot != "b1" || r.Synced || r.Jumped {
		t.Fatalf("first read: got %+v, want 1970 at mono 1s, boot b1, not synced", r)
	}
	f.Advance(time.Hour)
	ntp := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f.Set(ntp, true)
	if r = f.Read(); !r.Wall.Equal(ntp) || r.Mono != int64(time.Hour+time.Second) || !r.Synced || r.JumpNow != 0 {
		t.Fatalf("after NTP: got %+v, want %v at mono 1h1s, synced, no jump (forward steps are normal)", r, ntp)
	}
	f.Set(ntp.Add(-2*time.Hour), true)
	if r = f.Read(); r.JumpNow != 2*time.Hour || !r.Jumped {
		t.Fatalf("set back: got jump %v jumped %v, want 2h, true", r.JumpNow, r.Jumped)
	}
	if r = f.Read(); r.JumpNow != 0 || !r.Jumped {
		t.Fatalf("next read: got jump %v jumped %v, want 0 (reported once), still jumped", r.JumpNow, r.Jumped)
	}
	f.Advance(11 * time.Minute)
	if r = f.Read(); r.Jumped {
		t.Errorf("11 minutes later: got jumped, want the 10-minute hold over")
	}
	f.Reboot("b2", start)
	if r = f.Read(); r.Boot != "b2" || r.Mono != int64(time.Second) || r.Synced || r.JumpNow != 0 || !r.Wall.Equal(start) {
		t.Errorf("after reboot: got %+v, want boot b2 at mono 1s in 1970, not synced, no jump", r)
	}
}

func TestRunningFollowsRealTime(t *testing.T) {
	f := clock.Running("b1", true)
	a := f.Read()
	time.Sleep(10 * time.Millisecond)
	b := f.Read()
	if d, m := b.Wall.Sub(a.Wall), time.Duration(b.Mono-a.Mono); d < 10*time.Millisecond || m != d || !b.Synced {
		t.Errorf("got wall +%v mono +%v synced %v, want both at least 10ms, equal, synced", d, m, b.Synced)
	}
}

func TestAnchored(t *testing.T) {
	anchor := ledger.Clock{Wall: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC), Mono: int64(90 * time.Minute), Boot: "b1", Synced: true}
	got, ok := clock.Anchored(anchor, ledger.Clock{Wall: time.Unix(3000, 0), Mono: int64(50 * time.Minute), Boot: "b1"})
	want := ledger.Clock{Wall: time.Date(2026, 3, 2, 8, 50, 0, 0, time.UTC), Mono: int64(50 * time.Minute), Boot: "b1", Synced: true}
	if !ok || got != want {
		t.Errorf("got %+v %v, want %+v", got, ok, want)
	}
	if _, ok := clock.Anchored(anchor, ledger.Clock{Mono: 1, Boot: "b2"}); ok {
		t.Errorf("another boot: got ok, want false")
	}
	if _, ok := clock.Anchored(ledger.Clock{}, ledger.Clock{Mono: 1}); ok {
		t.Errorf("no boot: got ok, want false")
	}
}

// The system clock reads the kernel: a boot ID and a monotonic clock that moves.
func TestSystem(t *testing.T) {
	c := clock.New(time.Minute)
	a, b := c.Read(), c.Read()
	if a.Boot == "" || a.Boot != b.Boot || b.Mono < a.Mono || a.Mono <= 0 {
		t.Errorf("got %+v then %+v, want one boot and a monotonic clock moving forward", a.Clock, b.Clock)
	}
}
