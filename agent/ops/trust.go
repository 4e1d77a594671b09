package ops

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Trust is what the box checks datasets and operators against.
type Trust struct {
	// Central is the central system's public key: a dataset from a file applies only with its
	// signature. Nil refuses every file.
	Central ed25519.PublicKey
	// AllowUnsigned is the development switch: a plain roster file is applied, and every event
	// carries the unsigned_dataset flag (the store's AllowUnsigned must be set with it).
	AllowUnsigned bool
	// MaxOverrides is how many manual sign-ins a session takes before each further one needs a
	// second operator's confirmation; 0 means DefaultMaxOverrides.
	MaxOverrides int
}

// DefaultMaxOverrides is the default of Trust.MaxOverrides.
const DefaultMaxOverrides = 3

// Credentials name an operator and carry the secret they typed. The secret is compared with the
// argon2id hash of the active roster's account and never stored.
type Credentials struct {
	Operator string `json:"operator,omitempty"`
	Secret   string `json:"secret,omitempty"`
}

// DeniedError is a privileged action refused, and recorded as a denied event.
type DeniedError struct {
	Reason ledger.Reason
	Msg    string
	Seq    uint64
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s (%s; recorded as seq %d)", e.Msg, e.Reason, e.Seq)
}

// ErrDenied is wrapped by every *DeniedError (errors.Is).
var ErrDenied = errors.New("ops: denied")

func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Deny records a privileged action refused to operator and returns its error (a *DeniedError).
func (s *Service) Deny(reason ledger.Reason, operator, action, msg string) error {
	return s.deny(reason, operator, action, msg)
}

// deny records a denied action and returns its error.
func (s *Service) deny(reason ledger.Reason, operator, action, msg string) error {
	e, err := s.st.Append(ledger.Event{Kind: ledger.Denied, Time: clock.Now(), Reason: reason, Operator: operator,
		Detail: action, Note: msg, Institution: s.institution})
	if err != nil {
		return fmt.Errorf("%s; and it could not be recorded: %w", msg, err)
	}
	return &DeniedError{Reason: reason, Msg: msg, Seq: e.Seq}
}

// Authenticate checks that c names an operator of the active roster whose secret matches and
// whose role carries right. Every refusal is recorded as a denied event naming action.
func (s *Service) Authenticate(ctx context.Context, c Credentials, right roster.Right, action string) (*roster.Operator, error) {
	if c.Operator == "" {
		return nil, s.deny(ledger.DeniedNoOperator, "", action, fmt.Sprintf(
			"ops: %s needs an operator of role %s: --operator NAME, with the secret typed at the prompt (or KAOQIN_SECRET)", action, roster.RoleOf(right)))
	}
	r, _, err := s.st.Roster()
	if err != nil {
		return nil, err
	}
	var op *roster.Operator
	if r != nil {
		op = r.Operator(c.Operator)
	}
	if op == nil || !op.Verify(c.Secret) {
		return nil, s.deny(ledger.DeniedBadSecret, c.Operator, action, fmt.Sprintf(
			"ops: %s: operator %q is not in the roster or the secret is wrong", action, c.Operator))
	}
	if !op.May(right) {
		return nil, s.deny(ledger.DeniedRole, c.Operator, action, fmt.Sprintf(
			"ops: %s: operator %q has role %s; it needs role %s (duties are separated)", action, c.Operator, op.Role, roster.RoleOf(right)))
	}
	return op, nil
}

// ImportRequest is a dataset carried to the box as a file: the signed bundle of
// `kaoqin ingest publish --out`, and the administrator who imports it.
type ImportRequest struct {
	Credentials
	Bundle []byte `json:"bundle"`
}

// ImportResult is what an import applied.
type ImportResult struct {
	Dataset string         `json:"dataset"`
	Version uint64         `json:"version"`
	SHA256  string         `json:"sha256"`
	Seq     uint64         `json:"seq"` // the dataset event
	Roster  *RosterSummary `json:"roster,omitempty"`
}

// ImportDataset applies a signed dataset bundle from a file. It needs an administration operator
// once a roster with operators is active (the first roster has nobody to check against: its
// signature is the authority). Every attempt, applied or refused, is a dataset event; a refusal
// changes nothing already applied.
func (s *Service) ImportDataset(ctx context.Context, req ImportRequest) (ImportResult, error) {
	r, _, err := s.st.Roster()
	if err != nil {
		return ImportResult{}, err
	}
	operator := ""
	if r != nil {
		op, err := s.Authenticate(ctx, req.Credentials, roster.RightImport, "dataset import")
		if err != nil {
			return ImportResult{}, err
		}
		operator = op.Name
	}
	now := clock.Now()
	in := store.DatasetIn{Operator: operator, Time: now}
	b, err := wire.DecodeBundle(req.Bundle)
	switch {
	case err != nil && s.Trust.AllowUnsigned:
		raw, rerr := roster.Decode(req.Bundle)
		if rerr != nil {
			return ImportResult{}, fmt.Errorf("ops: neither a signed bundle (%v) nor a roster (%w)", err, rerr)
		}
		in.Ref = ledger.DatasetRef{Name: store.RosterDataset, Version: raw.Version, SHA256: wire.SHA256Hex(req.Bundle), Origin: store.OriginUnsigned}
		in.Content = req.Bundle
	case err != nil:
		in.Ref = ledger.DatasetRef{Name: store.RosterDataset, SHA256: wire.SHA256Hex(req.Bundle), Origin: store.OriginFile}
		if raw, rerr := roster.Decode(req.Bundle); rerr == nil {
			in.Ref.Version = raw.Version
		}
		in.Refused, in.Why = ledger.DatasetUnsigned, fmt.Errorf("not signed by the central system: %w", err)
	default:
		in.Ref.Name, in.Ref.Version, in.Ref.SHA256 = b.Claimed()
		in.Ref.Origin = store.OriginFile
		if in.Ref.Name == "" {
			in.Ref.Name = "unknown"
		}
		m, err := b.Open(s.Trust.Central)
		switch {
		case err != nil && errors.Is(err, wire.ErrSignature):
			in.Refused, in.Why = ledger.DatasetBadSignature, err
		case err != nil:
			in.Refused, in.Why = ledger.DatasetInvalid, err
		case m.Device != s.st.Device():
			in.Refused, in.Why = ledger.DatasetWrongDevice, fmt.Errorf("signed for device %q, this box is %q", m.Device, s.st.Device())
		case m.Expires.IsZero():
			in.Refused, in.Why = ledger.DatasetInvalid, errors.New("a bundle without an expiry is not taken from a file (kaoqin ingest publish --out sets one)")
		case now.Wall.After(m.Expires):
			in.Refused, in.Why = ledger.DatasetExpired, fmt.Errorf("expired %s, now %s", m.Expires.Format(time.RFC3339), now.Wall.Format(time.RFC3339))
		default:
			in.Content = b.Content
		}
	}
	a, err := s.st.ApplyDataset(in)
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Dataset: in.Ref.Name, Version: in.Ref.Version, SHA256: in.Ref.SHA256, Seq: a.Event.Seq}
	if a.Roster != nil {
		x, err := roster.Build(a.Roster, now.Wall)
		if err == nil && s.OnRoster != nil {
			s.OnRoster(x)
		}
		sum, err := s.Roster(ctx)
		if err != nil {
			return res, err
		}
		res.Roster = &sum
	}
	return res, nil
}

// CertRequest asks for the next certificate serial of a trainee who finished a programme.
type CertRequest struct {
	Credentials
	Institution string `json:"institution"`
	Category    string `json:"category"`
	Year        int    `json:"year"`
	Trainee     string `json:"trainee"`
	Programme   string `json:"programme"`
}

// NextCert allocates a certificate serial for a trainee of the active roster, inside the blocks
// the central system assigned this box, as a certificate event naming the administrator.
func (s *Service) NextCert(ctx context.Context, req CertRequest) (cert.Serial, error) {
	op, err := s.Authenticate(ctx, req.Credentials, roster.RightCert, "certificate serial")
	if err != nil {
		return cert.Serial{}, err
	}
	cat, err := cert.ParseCategory(req.Category)
	if err != nil {
		return cert.Serial{}, err
	}
	r, _, err := s.st.Roster()
	if err != nil {
		return cert.Serial{}, err
	}
	if r == nil {
		return cert.Serial{}, errors.New("cert: no roster: the institution's city and county come from it")
	}
	i := slices.IndexFunc(r.Institutions, func(in roster.Institution) bool { return in.Code == req.Institution })
	if i < 0 {
		return cert.Serial{}, fmt.Errorf("cert: institution %q is not in the active roster", req.Institution)
	}
	in := r.Institutions[i]
	if in.Retired {
		return cert.Serial{}, fmt.Errorf("%w: %s (%s)", cert.ErrRetired, in.Code, in.Name)
	}
	if !slices.ContainsFunc(r.Trainees, func(t roster.Trainee) bool { return t.ID == req.Trainee }) {
		return cert.Serial{}, fmt.Errorf("cert: trainee %q is not in the active roster", req.Trainee)
	}
	if !slices.ContainsFunc(r.Programmes, func(p roster.Programme) bool { return p.ID == req.Programme && p.Institution == in.Code }) {
		return cert.Serial{}, fmt.Errorf("cert: programme %q of institution %s is not in the active roster", req.Programme, in.Code)
	}
	now := clock.Now()
	year := req.Year
	if year == 0 {
		year = now.Wall.Year()
	}
	if y := now.Wall.Year(); year < y-cert.MaxYearSkew || year > y+cert.MaxYearSkew {
		return cert.Serial{}, fmt.Errorf("cert: year %d is more than %d year(s) from this box's date (%d)", year, cert.MaxYearSkew, y)
	}
	sn, _, err := s.st.NextCert(store.CertRequest{Issuer: cert.Issuer{City: in.City, County: in.County, Institution: in.Code},
		Year: year, Category: cat, Trainee: req.Trainee, Programme: req.Programme, Operator: op.Name, Time: now})
	if errors.Is(err, cert.ErrOutsideBlocks) {
		return cert.Serial{}, s.deny(ledger.DeniedOutsideBlock, op.Name, "certificate serial", err.Error())
	}
	return sn, err
}

// OverrideRequest is a manual sign-in's operators: who enters it and, above the session's
// limit, who confirms it.
type OverrideRequest struct {
	Credentials
	Confirm Credentials
	Trainee string
}

// AuthorizeOverride checks the operator of a manual sign-in (role teaching) and, when a session
// of the trainee running now already has Trust.MaxOverrides manual sign-ins, a second operator
// (teaching or administration, not the same person). It returns the confirmer's name, empty if
// none was needed. Refusals are recorded.
func (s *Service) AuthorizeOverride(ctx context.Context, req OverrideRequest) (confirmer string, err error) {
	op, err := s.Authenticate(ctx, req.Credentials, roster.RightOverride, "manual sign-in")
	if err != nil {
		return "", err
	}
	limit := s.Trust.MaxOverrides
	if limit <= 0 {
		limit = DefaultMaxOverrides
	}
	r, _, err := s.st.Roster()
	if err != nil || r == nil {
		return "", err
	}
	now := time.Now()
	var classes []string
	for _, t := range r.Trainees {
		if t.ID == req.Trainee {
			for _, e := range t.Enrolments {
				classes = append(classes, e.Class)
			}
		}
	}
	over := ""
	for i := range r.Sessions {
		se := &r.Sessions[i]
		if !slices.Contains(classes, se.Class) || now.Before(se.Opens()) || now.After(se.Closes()) {
			continue
		}
		n := 0
		err := s.Events(ctx, ledger.Filter{Since: se.Opens(), Session: se.ID, Flag: ledger.FlagManualOverride}, 1, func(e *ledger.Event) error {
			if e.Kind.Counted() {
				n++
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		if n >= limit {
			over = fmt.Sprintf("session %s has %d manual sign-ins (limit %d)", se.ID, n, limit)
		}
	}
	if over == "" {
		return "", nil
	}
	if req.Confirm.Operator == "" || req.Confirm.Operator == op.Name {
		return "", s.deny(ledger.DeniedNeedsSecond, op.Name, "manual sign-in", fmt.Sprintf(
			"ops: %s: a second operator must confirm (--confirm-operator NAME, not %s)", over, op.Name))
	}
	var c *roster.Operator
	if r != nil {
		c = r.Operator(req.Confirm.Operator)
	}
	if c == nil || !c.Verify(req.Confirm.Secret) || (c.Role != roster.Teaching && c.Role != roster.Administration) {
		return "", s.deny(ledger.DeniedBadSecret, req.Confirm.Operator, "manual sign-in confirmation", fmt.Sprintf(
			"ops: %s: the confirming operator %q is not a teaching or administration account of the roster, or the secret is wrong", over, req.Confirm.Operator))
	}
	return c.Name, nil
}
