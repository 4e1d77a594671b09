// Package drivers defines what every input device of the agent produces: a Reading, delivered by a
// Source. It is the boundary between hardware (fingerprint modules, line terminals, cameras) and the
// rules engine in agent/checkin, and it imports nothing but the standard library.
//
// A driver package (drivers/zfm, drivers/lineterm, drivers/camera, ...) returns a concrete type from
// its constructor; the agent holds it as a Source. One goroutine owned by the agent loops on Next,
// and on an error closes the source, backs off and reopens it.
package drivers

import (
	"context"
	"time"
)

// Method is how a reading identified its subject.
type Method string

// Methods a reading can have.
const (
	Fingerprint Method = "fingerprint" // a fingerprint module matched a stored template
	Face        Method = "face"        // a face terminal or the camera pipeline matched a face
	Card        Method = "card"        // an RFID card or Wiegand credential
	Voucher     Method = "voucher"     // a QR or barcode scanner read a training voucher code
	Manual      Method = "manual"      // an operator entered the sign-in by hand (an override)
)

// Valid reports whether m is one of the known methods.
func (m Method) Valid() bool {
	switch m {
	case Fingerprint, Face, Card, Voucher, Manual:
		return true
	}
	return false
}

// Intent is what the person asked the device for, where the device lets them say.
type Intent string

// Intents. Most devices cannot tell and report Auto; the rules engine then infers sign-in or
// sign-out from the schedule.
const (
	Auto    Intent = ""
	SignIn  Intent = "in"
	SignOut Intent = "out"
)

// Reading is one identification by one device: who (Subject), how (Method), how sure (Score and
// Margin), when, and the evidence if any. A Reading is a claim, not a decision: agent/checkin
// decides whether it becomes an accepted sign-in or a refusal.
type Reading struct {
	// Source is the configured name of the device that produced the reading.
	Source string
	Method Method
	// Subject is the trainee ID the device resolved, through the roster mapping the driver was
	// given; for Method Voucher it is the voucher code. Empty means "not identified": the device
	// saw someone (a finger, a face) but matched nobody, which is still recorded as a refusal.
	Subject string
	// Score is the device's confidence in its own unit, higher is better (a fingerprint module's
	// match score; 1 - distance for faces). Zero when the device reports none.
	Score float64
	// Margin is the score gap to the runner-up candidate, in the same unit; zero when the device
	// does not report one (fingerprint modules return only the best page).
	Margin float64
	// At is when the device produced the reading.
	At time.Time
	// Intent is sign-in or sign-out where the device has keys for it.
	Intent Intent
	// Evidence is a JPEG (a face crop or a frame) kept with the event, or nil.
	Evidence []byte
	// Detail is device context worth keeping in the ledger, such as "page 5" or the raw line.
	Detail string
	// Operator and Reason are set for Method Manual: who made the override and why.
	Operator string
	Reason   string
}

// Source produces readings from one device.
type Source interface {
	// Next blocks until the device produces a reading, ctx is done, or the device fails. An error
	// other than ctx's means the device is unusable until it is closed and reopened.
	Next(ctx context.Context) (Reading, error)
	// Close releases the device. It does not block behind a pending Next for longer than the
	// driver's read timeout.
	Close() error
}

// Template is a fingerprint template that the roster assigns to a trainee. Drivers for devices that
// store templates (drivers/zfm) keep the device's library in step with the list they are given.
type Template struct {
	Trainee string
	Finger  string // which finger, as the roster names it ("right-index"); informational
	Data    []byte
}

// State is a source's health as shown to inspectors and reported in the MQTT birth message.
type State string

// Source states.
const (
	StateStarting State = "starting"
	StateOK       State = "ok"
	StateDegraded State = "degraded" // working, but dropping bad input or retrying
	StateDown     State = "down"     // closed after an error, waiting to reopen
)

// Health is a snapshot of a source's state and counters.
type Health struct {
	State    State     `json:"state"`
	Since    time.Time `json:"since"`
	LastErr  string    `json:"last_error,omitempty"`
	Readings uint64    `json:"readings"`
	Dropped  uint64    `json:"dropped"` // corrupt packets, overlong lines, bad parity
	Reopens  uint64    `json:"reopens"`
}

// Verdict is what became of a reading, as the person at the device is told.
type Verdict int

// Verdicts.
const (
	Recorded    Verdict = iota + 1 // accepted (or already accepted: a duplicate) and in the ledger
	Refused                        // recorded as a refusal
	Waiting                        // a voucher scan waiting for its holder's identity
	NotRecorded                    // the ledger could not take it (disk reserve reached)
)

func (v Verdict) String() string {
	switch v {
	case Recorded:
		return "recorded"
	case Refused:
		return "refused"
	case Waiting:
		return "waiting"
	case NotRecorded:
		return "not recorded"
	}
	return "unknown"
}

// Teller is implemented by sources that can show the person at the device what became of their
// reading: an LED ring, a beep, a screen. The agent calls it only after the outcome is durable,
// from a goroutine of the source's own, so a slow device never holds up the decision loop.
type Teller interface {
	Tell(ctx context.Context, v Verdict) error
}
