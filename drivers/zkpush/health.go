package zkpush

import (
	"fmt"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Status is a terminal's own health beyond drivers.Health: what the inspector page and
// `kaoqin status` show of a network terminal.
type Status struct {
	Serial      string        `json:"serial"`
	LastContact time.Time     `json:"last_contact,omitzero"`
	Address     string        `json:"address,omitempty"`
	ClockOffset time.Duration `json:"clock_offset"` // terminal minus box; valid when ClockKnown
	ClockKnown  bool          `json:"clock_known"`
	Pending     int           `json:"commands_pending"`
	Sent        int           `json:"commands_sent"`
	Failures    uint64        `json:"failures"`
	OperLog     uint64        `json:"operlog_lines"`
}

// Status returns the terminal's contact, clock and queue figures.
func (t *Terminal) Status() Status {
	pending, sent, err := t.q.counts()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{
		Serial: t.cfg.Serial, LastContact: t.lastContact, Address: t.lastAddr,
		ClockOffset: t.offset, ClockKnown: t.offsetKnown, Pending: pending, Sent: sent,
		Failures: t.failures, OperLog: t.operlog,
	}
	if err != nil {
		s.Failures++
	}
	return s
}

// Health reports the terminal's state: starting until it first calls, degraded while it is
// silent for longer than three polls and an error delay, while its clock is off, or after a
// failure until its next good upload. LastErr names the latest problem with the figures the
// inspector needs (last contact, clock offset, queue length).
func (t *Terminal) Health() drivers.Health {
	st := t.Status()
	t.mu.Lock()
	defer t.mu.Unlock()
	h := drivers.Health{State: t.state, Since: t.since, Readings: t.nReadings, Dropped: t.dropped, LastErr: t.lastErr,
		LastContact: t.lastContact, Info: map[string]string{
			"serial": st.Serial, "address": st.Address, "commands_queued": fmt.Sprint(st.Pending + st.Sent),
			"failures": fmt.Sprint(st.Failures), "operlog_lines": fmt.Sprint(st.OperLog)}}
	if st.ClockKnown {
		h.Info["clock_offset"] = st.ClockOffset.String()
	}
	if t.state == drivers.StateStarting {
		return h
	}
	silent := time.Since(t.lastContact) > 3*time.Duration(t.cfg.Delay)+time.Duration(t.cfg.ErrorDelay)
	tol := time.Duration(t.cfg.ClockTolerance)
	clockOff := t.offsetKnown && (t.offset > tol || t.offset < -tol)
	if silent || clockOff || t.lastErr != "" {
		h.State = drivers.StateDegraded
		h.LastErr = fmt.Sprintf("%s; last contact %s, clock offset %v, %d commands queued, %d failures",
			orNone(t.lastErr), t.lastContact.Format(time.RFC3339), st.ClockOffset, st.Pending+st.Sent, st.Failures)
		if silent {
			h.LastErr = "terminal silent; " + h.LastErr
		}
	}
	return h
}

func orNone(s string) string {
	if s == "" {
		return "no error"
	}
	return s
}
