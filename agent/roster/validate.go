package roster

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
)

// Problems is every reason a roster was refused. Its Error lists them one a line.
type Problems []string

func (p Problems) Error() string {
	return fmt.Sprintf("roster: %d problem(s):\n  %s", len(p), strings.Join(p, "\n  "))
}

// Decode reads a roster in its JSON form strictly: an unknown field is an error. It does not
// validate; call Validate (or Build, which does both checks and indexes).
func Decode(b []byte) (*Roster, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Roster
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("roster: decode: %w", err)
	}
	// dec.More is not enough here: it reports a stray '}' or ']' as "no more".
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("roster: decode: trailing data after the roster object")
	}
	return &r, nil
}

// Validate checks the roster as a whole and returns Problems listing everything wrong, or nil.
// now is used for birth dates in ID numbers.
func (r *Roster) Validate(now time.Time) error {
	var p Problems
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	if r.Version == 0 {
		bad("version: must be 1 or more")
	}
	insts := map[string]*Institution{}
	for i := range r.Institutions {
		in := &r.Institutions[i]
		where := fmt.Sprintf("institutions[%d] %q", i, in.Code)
		if insts[in.Code] != nil {
			bad("%s: duplicate code", where)
		}
		insts[in.Code] = in
		if err := (cert.Issuer{City: in.City, County: in.County, Institution: in.Code}).Validate(); err != nil {
			bad("%s: %v", where, strings.TrimPrefix(err.Error(), "cert: "))
		}
		if in.Name == "" {
			bad("%s: name is empty", where)
		}
	}
	progs := map[string]*Programme{}
	for i := range r.Programmes {
		pg := &r.Programmes[i]
		where := fmt.Sprintf("programmes[%d] %q", i, pg.ID)
		if pg.ID == "" {
			bad("%s: id is empty", where)
		}
		if progs[pg.ID] != nil {
			bad("%s: duplicate id", where)
		}
		progs[pg.ID] = pg
		if insts[pg.Institution] == nil {
			bad("%s: institution %q is not in the roster", where, pg.Institution)
		}
		if _, err := cert.ParseCategory(pg.Category); err != nil {
			bad("%s: %v", where, strings.TrimPrefix(err.Error(), "cert: "))
		}
		if pg.Hours <= 0 {
			bad("%s: hours must be positive", where)
		}
		if pg.Occupation == "" {
			bad("%s: occupation is empty", where)
		}
	}
	classes := map[string]bool{}
	sessions := map[string]bool{}
	for i := range r.Sessions {
		s := &r.Sessions[i]
		where := fmt.Sprintf("sessions[%d] %q", i, s.ID)
		if s.ID == "" {
			bad("%s: id is empty", where)
		}
		if sessions[s.ID] {
			bad("%s: duplicate id", where)
		}
		sessions[s.ID] = true
		if s.Class == "" {
			bad("%s: class is empty", where)
		}
		classes[s.Class] = true
		if progs[s.Programme] == nil {
			bad("%s: programme %q is not in the roster", where, s.Programme)
		}
		if s.Start.IsZero() || !s.End.After(s.Start) {
			bad("%s: end must be after start", where)
		}
		// A slice, not a map: the same roster must always be refused with the same text.
		for _, w := range []struct {
			name string
			d    Duration
		}{{"sign_in_opens", s.SignInOpens}, {"late_after", s.LateAfter}, {"sign_in_closes", s.SignInCloses},
			{"sign_out_opens", s.SignOutOpens}, {"sign_out_closes", s.SignOutCloses}} {
			if w.d < 0 {
				bad("%s: %s is negative", where, w.name)
			}
		}
		if s.LateFrom().After(s.SignInUntil()) {
			bad("%s: late_after is after sign_in_closes", where)
		}
	}
	vouchers := map[string]*Voucher{}
	for i := range r.Vouchers {
		v := &r.Vouchers[i]
		where := fmt.Sprintf("vouchers[%d] %q", i, v.Code)
		if v.Code == "" {
			bad("%s: code is empty", where)
		}
		if vouchers[v.Code] != nil {
			bad("%s: duplicate code", where)
		}
		vouchers[v.Code] = v
		if err := ValidateIDNumber(v.Holder, now); err != nil {
			bad("%s: holder %v", where, err)
		}
		switch v.Kind {
		case Directed:
			if v.Programme == "" && v.Occupation == "" {
				bad("%s: a directed voucher names a programme or an occupation", where)
			}
			if len(v.Institutions) == 0 {
				bad("%s: a directed voucher names its institutions", where)
			}
		case General:
		default:
			bad("%s: kind %q: want directed or general", where, v.Kind)
		}
		switch v.Status {
		case Issued, Used, Revoked:
		case Bound:
			if insts[v.BoundTo] == nil {
				bad("%s: bound to institution %q which is not in the roster", where, v.BoundTo)
			}
		default:
			bad("%s: status %q: want issued, bound, used or revoked", where, v.Status)
		}
		if v.Programme != "" && progs[v.Programme] == nil {
			bad("%s: programme %q is not in the roster", where, v.Programme)
		}
		for _, c := range v.Institutions {
			if insts[c] == nil {
				bad("%s: institution %q is not in the roster", where, c)
			}
		}
		if !v.ValidTo.After(v.ValidFrom) {
			bad("%s: valid_to must be after valid_from", where)
		}
	}
	trainees := map[string]bool{}
	idNumbers := map[string]string{}
	cards := map[string]string{}
	for i := range r.Trainees {
		t := &r.Trainees[i]
		where := fmt.Sprintf("trainees[%d] %q", i, t.ID)
		if t.ID == "" {
			bad("%s: id is empty", where)
		}
		if trainees[t.ID] {
			bad("%s: duplicate id", where)
		}
		trainees[t.ID] = true
		if t.Name == "" {
			bad("%s: name is empty", where)
		}
		if err := ValidateIDNumber(t.IDNumber, now); err != nil {
			bad("%s: %v", where, err)
		} else if other, dup := idNumbers[t.IDNumber]; dup {
			bad("%s: id number %s is also trainee %q's", where, MaskID(t.IDNumber), other)
		}
		idNumbers[t.IDNumber] = t.ID
		for j, e := range t.Enrolments {
			if !classes[e.Class] {
				bad("%s: enrolments[%d]: class %q has no session in the roster", where, j, e.Class)
			}
			if e.Voucher == "" {
				continue
			}
			v := vouchers[e.Voucher]
			if v == nil {
				bad("%s: enrolments[%d]: voucher %q is not in the roster", where, j, e.Voucher)
			} else if v.Holder != t.IDNumber {
				bad("%s: enrolments[%d]: voucher %q belongs to someone else", where, j, e.Voucher)
			}
		}
		for j, f := range t.Fingerprints {
			if len(f.Template) == 0 {
				bad("%s: fingerprints[%d]: template is empty", where, j)
			}
		}
		for j, f := range t.Faces {
			if sum, err := hex.DecodeString(f.ModelSHA256); err != nil || len(sum) != 32 || f.Model == "" {
				bad("%s: faces[%d]: the model's name and sha256 (64 hex digits) are required", where, j)
			}
			if len(f.Descriptor) != 512 {
				bad("%s: faces[%d]: descriptor is %d bytes, want 512 (128 float32)", where, j, len(f.Descriptor))
			}
		}
		for _, c := range t.Cards {
			if other, dup := cards[c]; dup {
				bad("%s: card %q is also trainee %q's", where, c, other)
			}
			cards[c] = t.ID
		}
	}
	names := map[string]bool{}
	for i := range r.Operators {
		o := &r.Operators[i]
		where := fmt.Sprintf("operators[%d] %q", i, o.Name)
		if o.Name == "" {
			bad("%s: name is empty", where)
		}
		if names[o.Name] {
			bad("%s: duplicate name", where)
		}
		names[o.Name] = true
		if !validRole(o.Role) {
			bad("%s: role %q: want registration, teaching or administration", where, o.Role)
		}
		if len(o.Salt) < SaltLen || len(o.Hash) != KDFLen {
			bad("%s: want a salt of %d bytes or more and an argon2id hash of %d", where, SaltLen, KDFLen)
		}
	}
	if len(p) > 0 {
		return p
	}
	return nil
}
