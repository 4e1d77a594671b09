package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	if err := migrateRetired(tx); err != nil {
		return info, err
	}
	var problems roster.Problems
	for _, in := range r.Institutions {
		key := retiredKey(cert.Issuer{City: in.City, County: in.County, Institution: in.Code})
		when := ret.Get(key)
		if when == nil {
			when = ret.Get([]byte(in.Code)) // a code retired by an older version, prefix unknown: refused as before
		}
		if when != nil && !in.Retired {
			problems = append(problems, fmt.Sprintf("institution %q (%s): code retired on %s is never reassigned", in.Code, key, when))
		}
	}
	if problems != nil {
		return info, problems
	}
	for _, in := range r.Institutions {
		key := retiredKey(cert.Issuer{City: in.City, County: in.County, Institution: in.Code})
		if in.Retired && ret.Get(key) == nil {
			if err := ret.Put(key, []byte(time.Now().Format(time.DateOnly))); err != nil {
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

// migrateRetired rekeys the retired codes an older version kept by the 4-digit code alone to the
// whole city + county + institution prefix, taking the prefix from the active roster, where the
// code is marked retired. A code the active roster does not name keeps its old key, and still
// blocks that code under every prefix.
func migrateRetired(tx *bolt.Tx) error {
	ret := tx.Bucket(bucketRetired)
	var legacy [][]byte
	ret.ForEach(func(k, _ []byte) error {
		if len(k) == 4 {
			legacy = append(legacy, bytes.Clone(k))
		}
		return nil
	})
	if legacy == nil {
		return nil
	}
	raw := tx.Bucket(bucketRoster).Get(keyRosterActive)
	if raw == nil {
		return nil
	}
	old, err := roster.Decode(raw)
	if err != nil {
		return nil
	}
	for _, k := range legacy {
		for _, in := range old.Institutions {
			if in.Code == string(k) && in.Retired {
				when := bytes.Clone(ret.Get(k))
				if err := errors.Join(ret.Put(retiredKey(cert.Issuer{City: in.City, County: in.County, Institution: in.Code}), when), ret.Delete(k)); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}
