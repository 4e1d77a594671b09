package agent

import "github.com/kaoqin/kaoqin/agent/clock"

// SetClock makes a the agent read its time from c: a test's clock.Fake, so that a box can boot in
// 1970 and gain NTP later without root. Call it before Run.
func SetClock(a *Agent, c clock.Source) { a.clock = c }
