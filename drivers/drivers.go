// Package drivers defines what every input device of the agent produces: a Reading, delivered by a
// Source. It is the boundary between hardware (fingerprint modules, line terminals, cameras,
// network terminals) and the rules engine in agent/checkin, and it imports nothing but the
// standard library.
//
// A driver package (drivers/zfm, drivers/lineterm, ...) returns a concrete type from its
// constructor and registers itself under its kind (registry.go): the agent finds a [[source]]'s
// driver by its kind, never by its type. One goroutine owned by the agent loops on Next, and on an
// error closes the source, backs off and reopens it. What a source can do beyond producing
// readings it says by implementing one-method interfaces (Teller, TemplateSyncer, Enroller,
// Capturer); the agent asks for them with a type assertion on the interface.
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
// sign-out from the schedule. Sighting is a camera's: the person was seen in the room, which is no
// sign-in and no ledger event, but the rules remember it (not_seen_by_camera, spot checks).
const (
	Auto     Intent = ""
	SignIn   Intent = "in"
	SignOut  Intent = "out"
	Sighting Intent = "seen"
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
	// Evidence lists the photos kept with the event (a face crop, the frame it came from), already
	// durable in the evidence store: a source writes evidence through Env.Evidence before it hands
	// the reading over, so the decision loop never waits on a photo's fsync.
	Evidence []EvidenceRef
	// Key, if set, is the device's own identity of the reading (a terminal's record serial, or
	// serial+PIN+time+status): a reading whose key the ledger already holds is recorded once,
	// however often the device resends it, and answered as Recorded.
	Key string
	// Done, if set, is called exactly once by the agent when the reading's outcome is durable in
	// the ledger (or can never be: NotRecorded). It must not block. Network terminals use it to
	// acknowledge a batch to the device only after the next hop holds it.
	Done func(Verdict)
	// Detail is device context worth keeping in the ledger, such as "page 5" or the raw line.
	Detail string
	// Flags are doubts the driver has about its own reading, as ledger flag codes (a terminal
	// whose clock is off, a known terminal at a new address); the rules carry them onto the event.
	Flags []string
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

// Template is a biometric template that the roster assigns to a trainee. Drivers for devices that
// store or match templates (TemplateSyncer) keep themselves in step with the list they are given.
type Template struct {
	Trainee string
	Kind    TemplateKind
	Finger  string // which finger, as the roster names it ("right-index"); informational
	Data    []byte // a fingerprint module's template bytes, or a face descriptor's
}

// TemplateKind says what a Template's bytes are.
type TemplateKind string

// Template kinds.
const (
	FingerTemplate TemplateKind = "fingerprint"
	FaceTemplate   TemplateKind = "face"
)

// EvidenceKind is what a photo of the evidence store shows.
type EvidenceKind string

// Evidence kinds.
const (
	Crop  EvidenceKind = "crop"  // one face, cut from a frame
	Frame EvidenceKind = "frame" // a whole camera frame or a terminal's capture
)

// EvidenceRef names one durable photo of the evidence store by its content.
type EvidenceRef struct {
	SHA256 string       `json:"sha256"` // lower-case hex SHA-256 of the JPEG bytes
	Kind   EvidenceKind `json:"kind"`
	Size   int64        `json:"size"`
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
	// LastContact is when a networked device last called or answered; zero for the others.
	LastContact time.Time `json:"last_contact,omitzero"`
	// Info holds a driver's own figures an inspector needs, by name: a terminal's clock offset,
	// its command queue, a lockout's end.
	Info map[string]string `json:"info,omitempty"`
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

// TemplateSyncer is implemented by sources that hold or match templates (a fingerprint module's
// library, a camera's face gallery). SyncTemplates makes the device's set equal to ts (of the
// kinds the device uses; others are ignored) and returns a one-line report for the log. The agent
// calls it after each open and whenever the roster changes.
type TemplateSyncer interface {
	SyncTemplates(ctx context.Context, ts []Template) (report string, err error)
}

// Enroller is implemented by sources that can capture a new template from the person at the
// device (a fingerprint module's enrol sequence). progress is told each step the person must take.
type Enroller interface {
	Enroll(ctx context.Context, progress func(step string)) (Template, error)
}

// Capturer is implemented by sources that can look now (a room camera): Capture takes one frame,
// or a short burst, and returns every reading in it, one per face found, identified or not (an
// empty Subject). The number of readings is the headcount. It is the spot check's seam.
type Capturer interface {
	Capture(ctx context.Context) ([]Reading, error)
}
