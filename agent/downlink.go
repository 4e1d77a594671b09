package agent

import (
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

var _ uplink.Downlink = (*Agent)(nil)

// Deliver takes what the central system sent (uplink.Downlink): an applied roster becomes the
// rules' roster and wakes the template sync; a command is run or, if this agent has no use for
// it, logged; the central's clock goes to the decision loop (centraltime.go).
func (a *Agent) Deliver(d uplink.Delivery) {
	switch {
	case d.Time != nil:
		a.centralTimeSeen(*d.Time)
	case d.Roster != nil:
		a.setRoster(d.Roster)
	case d.Command != nil:
		switch d.Command.Cmd {
		case wire.CmdSpotcheck:
			a.log.Info("spot check asked by the central system", "id", d.Command.ID)
			a.SpotCheckNow()
		default:
			a.log.Info("command not supported by this agent", "cmd", d.Command.Cmd, "id", d.Command.ID)
		}
	}
}

// SpotCheckNow asks the decision loop for a spot check at every room camera at once (the central
// system's spotcheck command). It does not wait; a request while one is queued is the same one.
func (a *Agent) SpotCheckNow() {
	select {
	case a.spotNow <- struct{}{}:
	default:
	}
}
