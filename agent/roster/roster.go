// Package roster holds who may sign in where and when: institutions, programmes, sessions,
// trainees and their training vouchers, as the central system sends them (a dataset) or an
// institution imports them (`kaoqin roster import`).
//
// A roster is validated as a whole before it is used: every problem is listed, and a roster with
// any problem is refused, so the previous one stays active. Resident ID numbers are checked against
// GB 11643 and shown only masked (MaskID). Index builds the lookups the rules engine needs.
package roster

import (
	"encoding/json"
	"fmt"
	"time"
)

// Roster is one version of the dataset.
type Roster struct {
	Version      uint64        `json:"version"`
	Issued       time.Time     `json:"issued"`
	Institutions []Institution `json:"institutions"`
	Programmes   []Programme   `json:"programmes"`
	Sessions     []Session     `json:"sessions"`
	Trainees     []Trainee     `json:"trainees"`
	Vouchers     []Voucher     `json:"vouchers"`
	// Operators are the people who may act on the box: enrol, override, allocate certificates,
	// import datasets. Without them every privileged action is refused.
	Operators []Operator `json:"operators,omitempty"`
}

// Institution is a training institution (培训机构).
type Institution struct {
	Code            string `json:"code"`   // 4 digits, as in certificate serials
	City            string `json:"city"`   // 4 digits: 3700 provincial, 3701 Jinan ...
	County          string `json:"county"` // 2 digits, 00 at provincial and city level
	Name            string `json:"name"`
	AcceptsVouchers bool   `json:"accepts_vouchers"` // on the published list of institutions taking vouchers
	Retired         bool   `json:"retired"`          // stopped; its code is never reassigned
}

// Programme is a training programme of an institution.
type Programme struct {
	ID          string `json:"id"`
	Institution string `json:"institution"`
	Occupation  string `json:"occupation"` // 职业（工种）
	Category    string `json:"category"`   // A employment skills, B on-the-job upgrading, C entrepreneurship
	Hours       int    `json:"hours"`
}

// Session is one class meeting: when trainees of a class sign in and out, and at which devices.
type Session struct {
	ID        string    `json:"id"`
	Programme string    `json:"programme"`
	Class     string    `json:"class"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// Windows, relative to Start and End. Zero means the default shown.
	SignInOpens   Duration `json:"sign_in_opens,omitempty"`   // before Start; default 30m
	LateAfter     Duration `json:"late_after,omitempty"`      // after Start, sign-ins are flagged late; default 10m
	SignInCloses  Duration `json:"sign_in_closes,omitempty"`  // after Start, sign-ins are refused; default 60m
	SignOutOpens  Duration `json:"sign_out_opens,omitempty"`  // before End; default 30m
	SignOutCloses Duration `json:"sign_out_closes,omitempty"` // after End; default 30m
	// Devices are the sources (configured names) that serve this session; empty means all.
	Devices []string `json:"devices,omitempty"`
}

// Window defaults.
const (
	DefaultSignInOpens   = 30 * time.Minute
	DefaultLateAfter     = 10 * time.Minute
	DefaultSignInCloses  = 60 * time.Minute
	DefaultSignOutOpens  = 30 * time.Minute
	DefaultSignOutCloses = 30 * time.Minute
)

func orDefault(d Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// Opens is the earliest sign-in.
func (s *Session) Opens() time.Time {
	return s.Start.Add(-orDefault(s.SignInOpens, DefaultSignInOpens))
}

// LateFrom is when sign-ins start being late.
func (s *Session) LateFrom() time.Time { return s.Start.Add(orDefault(s.LateAfter, DefaultLateAfter)) }

// SignInUntil is the last sign-in.
func (s *Session) SignInUntil() time.Time {
	return s.Start.Add(orDefault(s.SignInCloses, DefaultSignInCloses))
}

// SignOutFrom is the start of the sign-out window.
func (s *Session) SignOutFrom() time.Time {
	return s.End.Add(-orDefault(s.SignOutOpens, DefaultSignOutOpens))
}

// Closes is the last sign-out.
func (s *Session) Closes() time.Time {
	return s.End.Add(orDefault(s.SignOutCloses, DefaultSignOutCloses))
}

// Serves reports whether source may take sign-ins for the session.
func (s *Session) Serves(source string) bool {
	if len(s.Devices) == 0 {
		return true
	}
	for _, d := range s.Devices {
		if d == source {
			return true
		}
	}
	return false
}

// Trainee is a person enrolled in one or more classes.
type Trainee struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	IDNumber     string        `json:"id_number"` // resident ID number; shown only masked
	Enrolments   []Enrolment   `json:"enrolments"`
	Fingerprints []Fingerprint `json:"fingerprints,omitempty"`
	// Faces are the trainee's face descriptors (from `kaoqin face enroll`, one per enrolment
	// photo), for the cameras' face pipeline.
	Faces []Face   `json:"faces,omitempty"`
	Cards []string `json:"cards,omitempty"` // card numbers a card reader reports
}

// Enrolment puts a trainee in a class, paid for by a voucher (empty for unsubsidised places).
type Enrolment struct {
	Class   string `json:"class"`
	Voucher string `json:"voucher,omitempty"`
}

// Fingerprint is an enrolled template for a fingerprint module.
type Fingerprint struct {
	Finger   string `json:"finger"`
	Template []byte `json:"template"` // base64 in JSON
}

// Face is one enrolled face descriptor and the model that made it: a box refuses descriptors of
// another model than its own (they mean nothing to it).
type Face struct {
	Model       string `json:"model"`        // the descriptor model's name
	ModelSHA256 string `json:"model_sha256"` // lower-case hex SHA-256 of the model file
	Descriptor  []byte `json:"descriptor"`   // 128 little-endian float32 (512 bytes), base64 in JSON
}

// VoucherKind is directed (定向券) or general (通用券).
type VoucherKind string

// Voucher kinds.
const (
	Directed VoucherKind = "directed" // for one programme at the named institutions
	General  VoucherKind = "general"  // the trainee picks any listed institution and programme
)

// VoucherStatus is where a voucher is in its life.
type VoucherStatus string

// Voucher statuses.
const (
	Issued  VoucherStatus = "issued"  // given to the holder, not yet checked in anywhere
	Bound   VoucherStatus = "bound"   // checked in at an institution for a programme
	Used    VoucherStatus = "used"    // the training it paid for is over
	Revoked VoucherStatus = "revoked" // withdrawn; never valid again
)

// Voucher is a training voucher (培训券).
type Voucher struct {
	Code   string        `json:"code"`
	Holder string        `json:"holder"` // the holder's resident ID number: vouchers are personal
	Kind   VoucherKind   `json:"kind"`
	Status VoucherStatus `json:"status"`
	// Programme and Occupation restrict a directed voucher; a general one may leave them empty.
	Programme  string `json:"programme,omitempty"`
	Occupation string `json:"occupation,omitempty"`
	// Institutions a directed voucher is for; for a general voucher an optional narrower list.
	Institutions []string  `json:"institutions,omitempty"`
	ValidFrom    time.Time `json:"valid_from"`
	ValidTo      time.Time `json:"valid_to"`
	// BoundTo is the institution a bound voucher was checked in at.
	BoundTo string `json:"bound_to,omitempty"`
}

// Duration is a time.Duration written as a string ("15m") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string. JSON null leaves d unchanged, as for built-in types.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"15m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
