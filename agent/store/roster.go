package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/roster"
)

var (
	keyRosterActive = []byte("active")
	keyRosterInfo   = []byte("info")
)

// RosterInfo describes the active roster.
type RosterInfo struct {
	Version uint64
	SHA256  string
	Applied time.Time
	From    string // "import" or "mqtt"
}

// Roster returns the active roster and its info; a nil roster if none was ever applied.
func (s *Store) Roster() (*roster.Roster, RosterInfo, error) {
	var raw []byte
	var info RosterInfo
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRoster)
		raw = append(raw, b.Get(keyRosterActive)...)
		if v := b.Get(keyRosterInfo); v != nil {
			return decodeInfo(v, &info)
		}
		return nil
	})
	if err != nil || raw == nil {
		return nil, info, err
	}
	r, err := roster.Decode(raw)
	if err != nil {
		return nil, info, fmt.Errorf("store: active roster: %w", err)
	}
	return r, info, nil
}

// SetRoster makes raw (the JSON of r, already validated by the caller) the active roster in one
// transaction. It refuses a roster that is not newer than the active one, or that reuses the code
// of an institution retired by an earlier roster: retired codes are never reassigned.
func (s *Store) SetRoster(raw []byte, r *roster.Roster, from string) (RosterInfo, error) {
	if s.readOnly {
		return RosterInfo{}, ErrReadOnly
	}
	var info RosterInfo
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		info, err = setRoster(tx, raw, r, from)
		return err
	})
	if err != nil {
		return RosterInfo{}, fmt.Errorf("store: set roster: %w", err)
	}
	return info, nil
}

// setRoster is SetRoster inside a transaction: the checks and the writes, shared with the swap of
// a staged roster dataset (SwapRoster).
func setRoster(tx *bolt.Tx, raw []byte, r *roster.Roster, from string) (RosterInfo, error) {
	sum := sha256.Sum256(raw)
	info := RosterInfo{Version: r.Version, SHA256: hex.EncodeToString(sum[:]), Applied: time.Now(), From: from}
	b, ret := tx.Bucket(bucketRoster), tx.Bucket(bucketRetired)
	if v := b.Get(keyRosterInfo); v != nil {
		var cur RosterInfo
		if err := decodeInfo(v, &cur); err != nil {
			return info, err
		}
		if r.Version <= cur.Version {
			return info, fmt.Errorf("%w: version %d, active is %d", ErrNotNewer, r.Version, cur.Version)
		}
	}
	var problems roster.Problems
	for _, in := range r.Institutions {
		if when := ret.Get([]byte(in.Code)); when != nil && !in.Retired {
			problems = append(problems, fmt.Sprintf("institution %q: code retired on %s is never reassigned", in.Code, when))
		}
	}
	if problems != nil {
		return info, problems
	}
	for _, in := range r.Institutions {
		if in.Retired && ret.Get([]byte(in.Code)) == nil {
			if err := ret.Put([]byte(in.Code), []byte(time.Now().Format(time.DateOnly))); err != nil {
				return info, err
			}
		}
	}
	if err := b.Put(keyRosterActive, raw); err != nil {
		return info, err
	}
	return info, b.Put(keyRosterInfo, encodeInfo(info))
}

// ErrNotNewer refuses a roster whose version is not above the active one.
var ErrNotNewer = fmt.Errorf("store: roster is not newer than the active one")

func encodeInfo(i RosterInfo) []byte {
	return fmt.Appendf(nil, "%d %s %s %s", i.Version, i.SHA256, i.Applied.Format(time.RFC3339), i.From)
}

func decodeInfo(b []byte, i *RosterInfo) error {
	var applied string
	if _, err := fmt.Sscanf(string(b), "%d %s %s %s", &i.Version, &i.SHA256, &applied, &i.From); err != nil {
		return fmt.Errorf("store: roster info: %w", err)
	}
	t, err := time.Parse(time.RFC3339, applied)
	i.Applied = t
	return err
}

// NextCert allocates the next certificate serial of an institution for a year and category. The
// sequence is per institution and year, persisted before the serial is returned, and never
// reused; a code retired by any roster is refused with cert.ErrRetired.
func (s *Store) NextCert(iss cert.Issuer, year int, cat cert.Category) (cert.Serial, error) {
	if s.readOnly {
		return cert.Serial{}, ErrReadOnly
	}
	var sn cert.Serial
	err := s.update(func(tx *bolt.Tx) error {
		if when := tx.Bucket(bucketRetired).Get([]byte(iss.Institution)); when != nil {
			return fmt.Errorf("%w: %s since %s", cert.ErrRetired, iss.Institution, when)
		}
		b := tx.Bucket(bucketCerts)
		key := []byte(iss.Key(year))
		last := 0
		if v := b.Get(key); len(v) == 4 {
			last = int(binary.BigEndian.Uint32(v))
		}
		var err error
		if sn, err = cert.Next(iss, year, cat, last); err != nil {
			return err
		}
		v := make([]byte, 4)
		binary.BigEndian.PutUint32(v, uint32(sn.Seq))
		return b.Put(key, v)
	})
	if err != nil {
		return cert.Serial{}, fmt.Errorf("store: next cert: %w", err)
	}
	return sn, nil
}
