package agent

import (
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

var _ uplink.Downlink = (*Agent)(nil)

// Deliver takes what the central system sent (uplink.Downlink): an applied roster becomes the
// rules' roster and wakes the template sync; a command is run or, if this agent has no use for
// it, logged.
func (a *Agent) Deliver(d uplink.Delivery) {
	switch {
	case d.Roster != nil:
		a.setRoster(d.Roster)
	case d.Command != nil:
		switch d.Command.Cmd {
		case wire.CmdSpotcheck:
			a.log.Info("spot check asked by the central system; no camera source takes it in this agent", "id", d.Command.ID)
		default:
			a.log.Info("command not supported by this agent", "cmd", d.Command.Cmd, "id", d.Command.ID)
		}
	}
}
