package agent

import (
	"fmt"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// A box without a real-time clock and without NTP (a network that lets only the central system's
// broker through) still learns the time: every ack of the central system is signed and carries
// its clock at its commit. The commit happened between the box's publish of the batch and the
// ack's arrival, so the box's time at the arrival is the central's plus at most the round trip.
// When the box's own time is not trusted, such an ack anchors the boot (a time_anchor event that
// keeps the signed ack as its proof), and the readings that waited are decided at the time it
// gives them, as an NTP anchor would.

// MaxCentralRoundTrip is the widest round trip an anchor is taken from: the anchor is within half
// of it of the central's clock, and never more than it after the central's signed time.
const MaxCentralRoundTrip = 5 * time.Second

// centralTimeSeen hands the decision loop the central's clock (uplink.Delivery.Time); a newer one
// replaces one not yet taken.
func (a *Agent) centralTimeSeen(ct uplink.CentralTime) { offerLatest(a.centralTime, ct) }

// anchorFromCentral anchors the boot to the central's clock if its time is not trusted, and
// decides the readings that waited.
func (a *Agent) anchorFromCentral(ct uplink.CentralTime, h *checkin.History) {
	if clk := a.settle(h); !clk.Untrusted {
		return // synchronised, or anchored already
	}
	rtt := ct.Received.Sub(ct.Sent)
	if rtt < 0 || rtt > MaxCentralRoundTrip {
		a.log.Info("central time not taken: the round trip is too long to anchor the boot", "round_trip", rtt, "max", MaxCentralRoundTrip)
		return
	}
	raw := a.now()
	wall := ct.Time.Add(rtt / 2).Add(time.Since(ct.Received))
	if last := h.LastTrusted(); wall.Before(last.Add(-checkin.TrustSlack)) {
		a.log.Warn("central time not taken: it is behind the last trusted time of the ledger", "central", ct.Time, "last_trusted", last)
		return
	}
	waiting := 0
	for _, w := range h.Waiting() {
		if w.Time.Boot == raw.Boot {
			waiting++
		}
	}
	anchor := ledger.Event{Kind: ledger.TimeAnchor, Time: ledger.Clock{Wall: wall, Mono: raw.Mono, Boot: raw.Boot},
		Data:   ct.Receipt,
		Detail: fmt.Sprintf("central ack of seq %d at %s, round trip %v", ct.Seq, ct.Time.UTC().Format(time.RFC3339Nano), rtt.Round(time.Millisecond)),
		Note: fmt.Sprintf("boot %s: monotonic %v is %s ± %v, from the central system's signed ack (no NTP); %d readings waited for trusted time",
			raw.Boot, time.Duration(raw.Mono), wall.Format(time.RFC3339Nano), (rtt / 2).Round(time.Millisecond), waiting)}
	if _, err := a.record(anchor, h); err != nil {
		return
	}
	a.log.Info("time trusted: boot anchored to the central system's clock", "boot", raw.Boot, "wall", wall, "within", rtt/2)
	a.settle(h) // decides the readings that waited
}
