// Package clock reads the time an event happened as well as a small box can know it: the wall
// clock with its zone, CLOCK_BOOTTIME (monotonic, counts suspend) and the kernel boot ID, whether
// the kernel considers the clock synchronised, and whether the wall clock recently jumped
// backwards. Boxes without a real-time clock boot in 1970 or at the last shutdown time and are set
// forward by NTP later; a forward step is normal, a backward one is flagged, never silently fixed.
//
// The agent reads the time through Source: System is the kernel's clock, Fake a test's, so a test
// can boot a box in 1970 and give it NTP an hour later without root. Anchored maps a reading of an
// untrusted boot to wall time once that boot's time is trusted (a time_anchor event).
package clock

import (
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// JumpTolerance is how far the wall clock may fall behind the monotonic clock between two reads
// before it counts as a backwards jump (NTP slews by milliseconds; a step is seconds or more).
const JumpTolerance = time.Second

// Source is where the agent reads the time. Read is safe for concurrent use.
type Source interface {
	Read() Stamp
}

var (
	_ Source = (*System)(nil)
	_ Source = (*Fake)(nil)
)

// Stamp is one read of the clock: when something happened, as well as the box can say.
type Stamp struct {
	ledger.Clock
	Jumped  bool          // a backwards jump happened within the hold time
	JumpNow time.Duration // set on the read that first saw a jump: how far the wall clock fell back
}

// jumps remembers the last read to see the wall clock fall behind the monotonic clock.
type jumps struct {
	hold time.Duration

	mu       sync.Mutex
	lastWall time.Time
	lastMono int64
	jumpMono int64 // mono of the last backwards jump, 0 if none
}

func (j *jumps) stamp(c ledger.Clock) Stamp {
	r := Stamp{Clock: c}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lastMono != 0 {
		wallDelta := c.Wall.Sub(j.lastWall)
		monoDelta := time.Duration(c.Mono - j.lastMono)
		if back := monoDelta - wallDelta; back > JumpTolerance {
			j.jumpMono = c.Mono
			r.JumpNow = back
		}
	}
	j.lastWall, j.lastMono = c.Wall, c.Mono
	r.Jumped = j.jumpMono != 0 && time.Duration(c.Mono-j.jumpMono) < j.hold
	return r
}

// System is the system clock. The zero value is not usable; call New.
type System struct {
	boot  string
	jumps jumps
}

// New returns the system clock. A backwards jump stays reported (Jumped) for hold afterwards.
func New(hold time.Duration) *System {
	return &System{boot: bootID(), jumps: jumps{hold: hold}}
}

// Read reads the clock.
func (c *System) Read() Stamp {
	return c.jumps.stamp(ledger.Clock{Wall: time.Now(), Mono: boottime(), Boot: c.boot, Synced: kernelSynced()})
}

// Now is Read without jump tracking, for callers that only stamp an event.
func Now() ledger.Clock {
	return ledger.Clock{Wall: time.Now(), Mono: boottime(), Boot: bootID(), Synced: kernelSynced()}
}

// Fake is a clock a test moves by hand: a boot ID, a wall clock that can be stepped (NTP, or
// someone with root setting it back) and a monotonic clock that only moves forward. A stopped
// Fake (NewFake) moves only with Advance; a running one (Running) also moves with real time. It
// reports backwards jumps as System does.
type Fake struct {
	jumps jumps

	mu      sync.Mutex
	boot    string
	wall    time.Time // at start
	mono    int64     // at start
	synced  bool
	running bool
	start   time.Time
}

// NewFake returns a stopped clock of boot whose wall clock reads wall, one second after boot.
func NewFake(boot string, wall time.Time, synced bool) *Fake {
	return &Fake{jumps: jumps{hold: 10 * time.Minute}, boot: boot, wall: wall, mono: int64(time.Second), synced: synced}
}

// Running returns a clock of boot that follows real time from now, synchronised or not.
func Running(boot string, synced bool) *Fake {
	f := NewFake(boot, time.Now(), synced)
	f.running, f.start = true, time.Now()
	return f
}

// Read implements Source.
func (f *Fake) Read() Stamp {
	f.mu.Lock()
	c := ledger.Clock{Wall: f.wall, Mono: f.mono, Boot: f.boot, Synced: f.synced}
	if f.running {
		d := time.Since(f.start)
		c.Wall, c.Mono = c.Wall.Add(d), c.Mono+int64(d)
	}
	f.mu.Unlock()
	return f.jumps.stamp(c)
}

func (f *Fake) elapsed() time.Duration {
	if !f.running {
		return 0
	}
	return time.Since(f.start)
}

// Advance lets d pass: both clocks move.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.wall, f.mono = f.wall.Add(d), f.mono+int64(d)
	f.mu.Unlock()
}

// Set steps the wall clock to wall and sets the kernel's synchronised state, as NTP does when it
// first answers (or as `date -s` does, with synced false); the monotonic clock does not move.
func (f *Fake) Set(wall time.Time, synced bool) {
	f.mu.Lock()
	f.wall, f.synced = wall.Add(-f.elapsed()), synced
	f.mu.Unlock()
}

// Reboot starts a new boot: a new boot ID, the monotonic clock back near zero, the wall clock at
// wall, not synchronised.
func (f *Fake) Reboot(boot string, wall time.Time) {
	f.mu.Lock()
	f.boot, f.wall, f.mono, f.synced = boot, wall.Add(-f.elapsed()), int64(time.Second)-int64(f.elapsed()), false
	f.mu.Unlock()
	f.jumps.mu.Lock()
	f.jumps.lastMono, f.jumps.jumpMono = 0, 0
	f.jumps.mu.Unlock()
}

// Anchored is the time of c computed from anchor, a trusted read of the same boot: the anchor's
// wall time moved by the monotonic time between them. It reports false when the boots differ.
// The result is trusted (Synced) and keeps c's monotonic offset and boot, so anyone holding the
// anchor can check it.
func Anchored(anchor, c ledger.Clock) (ledger.Clock, bool) {
	if anchor.Boot == "" || anchor.Boot != c.Boot {
		return c, false
	}
	wall := anchor.Wall.Add(time.Duration(c.Mono - anchor.Mono))
	return ledger.Clock{Wall: wall, Mono: c.Mono, Boot: c.Boot, Synced: true}, true
}

var bootOnce = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
})

func bootID() string { return bootOnce() }

func boottime() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// kernelSynced is synced, except in a binary built for the command-line tests (testclock.go).
var kernelSynced = synced

// synced asks the kernel (adjtimex) whether NTP considers the clock synchronised.
func synced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
