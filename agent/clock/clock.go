// Package clock reads the time an event happened as well as a small box can know it: the wall
// clock with its zone, CLOCK_BOOTTIME (monotonic, counts suspend) and the kernel boot ID, whether
// the kernel considers the clock synchronised, and whether the wall clock recently jumped
// backwards. Boxes without a real-time clock boot in 1970 or at the last shutdown time and are set
// forward by NTP later; a forward step is normal, a backward one is flagged, never silently fixed.
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

// System is the system clock. The zero value is not usable; call New.
type System struct {
	boot string
	hold time.Duration

	mu       sync.Mutex
	lastWall time.Time
	lastMono int64
	jumpMono int64 // mono of the last backwards jump, 0 if none
}

// New returns the system clock. A backwards jump stays reported (Jumped) for hold afterwards.
func New(hold time.Duration) *System {
	return &System{boot: bootID(), hold: hold}
}

// Stamp is one read of the clock: when something happened, as well as the box can say.
type Stamp struct {
	ledger.Clock
	Jumped  bool          // a backwards jump happened within the hold time
	JumpNow time.Duration // set on the read that first saw a jump: how far the wall clock fell back
}

// Read reads the clock.
func (c *System) Read() Stamp {
	wall := time.Now()
	mono := boottime()
	r := Stamp{Clock: ledger.Clock{Wall: wall, Mono: mono, Boot: c.boot, Synced: synced()}}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastMono != 0 {
		wallDelta := wall.Sub(c.lastWall)
		monoDelta := time.Duration(mono - c.lastMono)
		if back := monoDelta - wallDelta; back > JumpTolerance {
			c.jumpMono = mono
			r.JumpNow = back
		}
	}
	c.lastWall, c.lastMono = wall, mono
	r.Jumped = c.jumpMono != 0 && time.Duration(mono-c.jumpMono) < c.hold
	return r
}

// Now is Read without jump tracking, for callers that only stamp an event.
func Now() ledger.Clock {
	return ledger.Clock{Wall: time.Now(), Mono: boottime(), Boot: bootID(), Synced: synced()}
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

// synced asks the kernel (adjtimex) whether NTP considers the clock synchronised.
func synced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
