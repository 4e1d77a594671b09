package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Inspector is an account that may log in to the inspector's pages: a name, a role and a salted
// password hash made with a password KDF, in the PHC string form
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash; agent/inspect checks it). No password is ever
// stored.
type Inspector struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Hash string `json:"hash"`
}

// InspectorsInfo says where the active accounts came from.
type InspectorsInfo struct {
	Version uint64    `json:"version"`
	From    string    `json:"from"` // "central" (a signed dataset) or "local"
	Applied time.Time `json:"applied"`
}

var (
	bucketInspectors = []byte("inspectors")
	keyAccounts      = []byte("accounts")
	keyAccountsInfo  = []byte("info")
)

// SetInspectors replaces the inspector accounts, all at once, in one transaction. It is the
// store-level setter the central system's signed dataset of accounts is applied through, once
// the downlink carries it (from "central"); until then accounts are set locally ("local").
func (s *Store) SetInspectors(list []Inspector, info InspectorsInfo) error {
	if s.readOnly {
		return ErrReadOnly
	}
	for i, a := range list {
		if a.Name == "" || a.Hash == "" {
			return fmt.Errorf("store: inspector %d: a name and a password hash are required", i+1)
		}
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("store: inspectors: %w", err)
	}
	if info.Applied.IsZero() {
		info.Applied = time.Now()
	}
	rawInfo, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("store: inspectors: %w", err)
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInspectors)
		if err != nil {
			return err
		}
		if err := b.Put(keyAccounts, raw); err != nil {
			return err
		}
		return b.Put(keyAccountsInfo, rawInfo)
	})
}

// Inspectors returns the inspector accounts; none (and a zero info) if none were ever set.
func (s *Store) Inspectors() ([]Inspector, InspectorsInfo, error) {
	var list []Inspector
	var info InspectorsInfo
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInspectors)
		if b == nil {
			return nil
		}
		if v := b.Get(keyAccounts); v != nil {
			if err := json.Unmarshal(v, &list); err != nil {
				return fmt.Errorf("store: inspectors: %w", err)
			}
		}
		if v := b.Get(keyAccountsInfo); v != nil {
			if err := json.Unmarshal(v, &info); err != nil {
				return fmt.Errorf("store: inspectors: %w", err)
			}
		}
		return nil
	})
	return list, info, err
}
