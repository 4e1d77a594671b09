// Package ledger defines the attendance event and its tamper-evident encoding: the canonical body
// bytes, the SHA-256 hash chain that links every event to the one before it, and the ed25519
// signature of the device. It is shared by the agent (which seals events) and the central ingester
// and the inspector's `kaoqin verify` (which check them), and it depends on nothing but the
// standard library.
//
// # Record format
//
// An event is sealed into a record: the 64-byte ed25519 signature followed by the body, the
// event's JSON encoding. The signature covers the body. The body's first field is "prev", the
// lower-case hex SHA-256 of the previous record of the same epoch (64 zeros for the first), so the
// hash of a record covers its signature too and flipping any byte of any record breaks the chain
// at the next link. Records are stored and sent byte for byte as sealed; a verifier never
// re-encodes a body, so any JSON library can check a record.
package ledger

import (
	"time"
)

// Version is the body format version written in every event's "v" field.
const Version = 1

// Kind is what an event records.
type Kind string

// Event kinds. Every identification attempt becomes an event: accepted or refused.
const (
	SignIn         Kind = "sign_in"         // accepted: the trainee is present for a session
	SignOut        Kind = "sign_out"        // accepted: the trainee left a session
	VoucherCheckin Kind = "voucher_checkin" // accepted: a voucher was checked in by its holder and bound here
	Refusal        Kind = "refusal"         // an attempt that failed a rule; Reason says which
	Duplicate      Kind = "duplicate"       // a repeat within the suppression window: recorded, not counted
	Enrollment     Kind = "enrollment"      // a biometric template enrolled on site; Data holds it
	Alarm          Kind = "alarm"           // something an inspector must see: new epoch, clock jump, disk full
	Inspection     Kind = "inspection"      // an inspector's visit: who (Operator), the headcount seen and the head hash read (Detail, Data), a note
	Attachment     Kind = "attachment"      // photos a device sent after the event they belong to (Ref names it)
	// SpotCheck is a room camera's random spot check during a session: the headcount against the
	// trainees signed in, each marked seen, not seen or unsure, in Data as JSON
	// (checkin.SpotCheckData), with the frame and the crops as evidence.
	SpotCheck Kind = "spot_check"

	// Reading is a reading taken while the box's time was not trusted (flag time_pending): the
	// trainee is identified, the decision waits for trusted time. It is decided by a later event
	// whose ref names it, with the time its boot's time_anchor gives it; a reading that no event
	// names is still pending.
	Reading Kind = "reading"
	// TimeAnchor maps a boot's monotonic clock to trusted wall time: its Time is a trusted read of
	// that boot (wall, mono), so the wall time of any event of the boot is its mono moved by the
	// difference (clock.Anchored). The read is the kernel's synchronised clock (Time.Synced) or,
	// on a box without NTP, the central system's clock from one of its signed acks (not Synced;
	// Data holds the signed ack, Detail the round trip that bounds the error).
	TimeAnchor  Kind = "time_anchor"
	Dataset     Kind = "dataset"     // a dataset from the central system applied or refused; Dataset says which
	Certificate Kind = "certificate" // a certificate serial allocated; Cert names it, Operator who asked
	Denied      Kind = "denied"      // a privileged action refused: no operator, a wrong secret, a role without the right
)

// Counted reports whether events of this kind count as attendance.
func (k Kind) Counted() bool { return k == SignIn || k == SignOut || k == VoucherCheckin }

// Reason is why a reading was refused, or what an alarm is about.
type Reason string

// Refusal reasons, in the order the rules engine checks them.
const (
	ReasonUnidentified       Reason = "unidentified"        // the device matched nobody
	ReasonUnknownTrainee     Reason = "unknown_trainee"     // the subject is not in the roster
	ReasonLowScore           Reason = "low_score"           // identity score under the threshold
	ReasonAmbiguous          Reason = "ambiguous"           // margin to the runner-up too small
	ReasonOverrideIncomplete Reason = "override_incomplete" // a manual override without operator or reason
	ReasonNoSession          Reason = "no_session"          // no session of the trainee is open now at this device
	ReasonSignInClosed       Reason = "sign_in_closed"      // the session is open but its sign-in window has passed
	ReasonNotSignedIn        Reason = "not_signed_in"       // a sign-out without a sign-in
	ReasonNoVoucher          Reason = "no_voucher"          // the enrolment's voucher is not in the roster
	ReasonVoucherNotYet      Reason = "voucher_not_yet_valid"
	ReasonVoucherExpired     Reason = "voucher_expired"
	ReasonVoucherRevoked     Reason = "voucher_revoked"
	ReasonVoucherUsed        Reason = "voucher_used"
	ReasonVoucherBound       Reason = "voucher_already_bound" // voucher check-in of a voucher bound elsewhere
	ReasonNotHolder          Reason = "not_voucher_holder"    // the voucher belongs to someone else
	ReasonNotAccepted        Reason = "voucher_not_accepted"  // directed to another programme or institution, or the institution takes no vouchers
	ReasonVoucherTimeout     Reason = "voucher_checkin_timeout"
	ReasonUnknownVoucher     Reason = "unknown_voucher"
	ReasonInstitutionRetired Reason = "institution_retired"
	ReasonClockUntrusted     Reason = "clock_untrusted" // a voucher scan while the box's time is not trusted: its dates cannot be checked
)

// Alarm reasons.
const (
	AlarmNewEpoch      Reason = "new_epoch"       // the store was created or re-created; Note says why
	AlarmClockJump     Reason = "clock_jump"      // the wall clock went backwards
	AlarmDiskFull      Reason = "disk_full"       // captures refused: the disk budget is reached
	AlarmAckBeyond     Reason = "ack_beyond_sent" // the central system acknowledged events never sent
	AlarmRosterRefused Reason = "dataset_refused"
)

// Reasons of a refused dataset (kind dataset) and of a denied action (kind denied).
const (
	DatasetUnsigned     Reason = "dataset_unsigned"       // not a signed bundle: the central system did not sign it
	DatasetBadSignature Reason = "dataset_bad_signature"  // a signature that the central key does not verify, or content that differs from what was signed
	DatasetWrongDevice  Reason = "dataset_wrong_device"   // signed for another box
	DatasetExpired      Reason = "dataset_expired"        // signed with a validity that has passed
	DatasetReplayed     Reason = "dataset_replayed"       // not newer than the one applied: an old dataset sent again
	DatasetInvalid      Reason = "dataset_invalid"        // fails decoding or validation
	DatasetEmptiesRoom  Reason = "dataset_empties_room"   // would drop this box's institution or every trainee of a session still running
	DatasetUnsupported  Reason = "dataset_unsupported"    // a dataset this box does not know
	DeniedNoOperator    Reason = "no_operator"            // a privileged action without an operator
	DeniedBadSecret     Reason = "bad_secret"             // an operator whose secret did not verify, or who is not in the roster
	DeniedRole          Reason = "role_lacks_right"       // an operator whose role does not carry the right
	DeniedNeedsSecond   Reason = "second_operator_needed" // an override above the session's limit without a second operator
	DeniedIdentityCheck Reason = "identity_check_failed"  // enrolment whose typed ID number is not the trainee's
	DeniedOutsideBlock  Reason = "outside_serial_block"   // a certificate serial asked for outside the blocks the central system assigned
)

// Flag is a doubt flag (疑点) carried by an accepted event for review after the fact.
type Flag string

// Doubt flags.
const (
	FlagLate            Flag = "late"                 // signed in after the session start plus grace
	FlagEarlyLeave      Flag = "early_leave"          // signed out before the session end
	FlagClockUnsynced   Flag = "clock_unsynced"       // the wall clock was not synchronised
	FlagClockJump       Flag = "clock_jump"           // the wall clock jumped backwards recently
	FlagLowMargin       Flag = "low_margin"           // accepted, but the runner-up was close
	FlagManualOverride  Flag = "manual_override"      // entered by an operator, not a device
	FlagTwoDevices      Flag = "two_devices"          // the same trainee at another device minutes ago
	FlagRapidSuccession Flag = "rapid_succession"     // another trainee at the same reader seconds ago
	FlagNotSeenByCamera Flag = "not_seen_by_camera"   // a terminal sign-in the classroom camera never saw
	FlagAbsentSpotCheck Flag = "absent_at_spot_check" // not seen in the configured share of the session's spot checks
	FlagHeadcountShort  Flag = "headcount_short"      // a spot check counted fewer faces than sign-ins, beyond the tolerance
	FlagTerminalClock   Flag = "terminal_clock_off"   // the terminal's own clock is off the box's beyond the tolerance
	FlagTerminalAddress Flag = "terminal_new_address" // a known terminal called from an address it never used
	FlagFaceDuplicate   Flag = "face_duplicate"       // the terminal holds this trainee's face under another person too
	FlagTimePending     Flag = "time_pending"         // a reading whose decision waits for trusted time
	FlagTimeAnchored    Flag = "time_anchored"        // the wall time was computed from the boot's time_anchor
	FlagUnsignedDataset Flag = "unsigned_dataset"     // recorded while the box accepts unsigned datasets (a development switch)
	FlagSecondOperator  Flag = "second_operator"      // an override a second operator confirmed
)

// Clock is when an event happened, as well as a box without a real-time clock can say.
type Clock struct {
	Wall   time.Time `json:"wall"`   // wall clock with zone (RFC 3339)
	Mono   int64     `json:"mono"`   // nanoseconds since boot (CLOCK_BOOTTIME), monotonic within Boot
	Boot   string    `json:"boot"`   // kernel boot ID
	Synced bool      `json:"synced"` // whether the kernel considered the clock synchronised, or (flag time_anchored) the wall time was computed from a trusted anchor
}

// Event is one ledger entry. The zero values of optional fields are omitted from the body.
type Event struct {
	// Prev must stay the first field: checkers read it at a fixed offset of the body.
	Prev   string `json:"prev"`
	V      int    `json:"v"`
	Device string `json:"device"`
	Epoch  uint64 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	ID     string `json:"id"` // UUIDv7
	Kind   Kind   `json:"kind"`
	Time   Clock  `json:"time"`

	Source      string  `json:"source,omitempty"` // the configured device name that produced the reading
	Method      string  `json:"method,omitempty"`
	Intent      string  `json:"intent,omitempty"` // a pending reading's intent ("in", "out"), for its later decision
	Trainee     string  `json:"trainee,omitempty"`
	IDMasked    string  `json:"id_masked,omitempty"` // the trainee's resident ID number, masked
	Session     string  `json:"session,omitempty"`
	Voucher     string  `json:"voucher,omitempty"`
	Institution string  `json:"institution,omitempty"`
	Score       float64 `json:"score,omitempty"`
	Margin      float64 `json:"margin,omitempty"`
	Reason      Reason  `json:"reason,omitempty"`
	Flags       []Flag  `json:"flags,omitempty"`
	Operator    string  `json:"operator,omitempty"`
	Note        string  `json:"note,omitempty"`     // an override's reason, an alarm's text, a refusal's detail
	Detail      string  `json:"detail,omitempty"`   // device context: "page 5", the raw line
	Evidence    []Photo `json:"evidence,omitempty"` // the photos kept with the event, by content
	Ref         string  `json:"ref,omitempty"`      // ID of an event this one refers to
	Key         string  `json:"key,omitempty"`      // the device's own identity of the reading (a terminal's record serial)
	Data        []byte  `json:"data,omitempty"`     // an enrolled template; a central time anchor's signed ack
	// Dataset is the dataset of a dataset event: what arrived, from where, applied or not.
	Dataset *DatasetRef `json:"dataset,omitempty"`
	// Cert is the serial a certificate event allocated (Trainee and Detail, the programme, say for whom).
	Cert string `json:"cert,omitempty"`
}

// DatasetRef names a dataset as it arrived.
type DatasetRef struct {
	Name    string `json:"name"` // roster, certblocks
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256,omitempty"` // of the content, as signed; empty if it never got that far
	Origin  string `json:"origin"`           // downlink (MQTT) or file (a signed bundle imported on the box)
	Applied bool   `json:"applied"`
}

// Photo names one evidence JPEG of an event by its content.
type Photo struct {
	SHA256 string `json:"sha256"` // lower-case hex SHA-256 of the JPEG bytes
	Kind   string `json:"kind"`   // "crop" (one face) or "frame" (a whole capture)
	Size   int64  `json:"size"`
}

// WithoutTemplate is e as it may leave the ledger for a reader (the log, an export, the API, the
// inspector's pages): an enrolment's biometric template (Data) dropped, since templates stay on
// the box; the data of other kinds (a spot check's counts) kept.
func (e *Event) WithoutTemplate() Event {
	c := *e
	if c.Kind == Enrollment {
		c.Data = nil
	}
	return c
}

// HasFlag reports whether e carries f.
func (e *Event) HasFlag(f Flag) bool {
	for _, g := range e.Flags {
		if g == f {
			return true
		}
	}
	return false
}
