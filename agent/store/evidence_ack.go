package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The evidence upload's state (sync/uplink sends the photos the events name, after the events):
// which photos the central system has acknowledged, and, per epoch, the seq through which every
// photo named by an event is acknowledged. A photo without an ack is never deleted.
var (
	bucketEvidenceAcked   = []byte("evidence_acked")   // hex SHA-256 -> when the ack came (unix seconds)
	bucketEvidenceThrough = []byte("evidence_through") // epoch -> seq
)

// EvidenceAcked reports whether the central system acknowledged the photo with hex SHA-256 sha.
func (s *Store) EvidenceAcked(sha string) (bool, error) {
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEvidenceAcked); b != nil {
			ok = b.Get([]byte(sha)) != nil
		}
		return nil
	})
	return ok, err
}

// AckEvidence records the central system's ack of the photo with hex SHA-256 sha. Only a photo
// the store holds can be acknowledged.
func (s *Store) AckEvidence(sha string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if len(sha) != 64 {
		return fmt.Errorf("store: evidence ack: %q is not a SHA-256", sha)
	}
	return s.evidenceUpdate(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEvidenceAcked)
		if err != nil || b.Get([]byte(sha)) != nil {
			return err
		}
		return b.Put([]byte(sha), u64(uint64(time.Now().Unix())))
	})
}

// EvidenceThrough is the seq of the current epoch through which every photo named by an event has
// been acknowledged.
func (s *Store) EvidenceThrough() (uint64, error) {
	var n uint64
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEvidenceThrough); b != nil {
			if v := b.Get(u64(s.Epoch())); len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return n, err
}

// SetEvidenceThrough moves EvidenceThrough forward to seq (never back).
func (s *Store) SetEvidenceThrough(seq uint64) error {
	if s.readOnly {
		return ErrReadOnly
	}
	return s.evidenceUpdate(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEvidenceThrough)
		if err != nil {
			return err
		}
		k := u64(s.Epoch())
		if v := b.Get(k); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
			return nil
		}
		return b.Put(k, u64(seq))
	})
}

// evidenceUpdate commits an evidence bookkeeping change; a failed commit stops the store, as a
// failed ack does.
func (s *Store) evidenceUpdate(fn func(*bolt.Tx) error) error {
	s.mu.Lock()
	fatal := s.fatal
	s.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if err := s.update(fn); err != nil {
		if errors.Is(err, ErrDamaged) {
			return err
		}
		s.mu.Lock()
		s.fatal = fmt.Errorf("%w: evidence ack: %v", ErrFatal, err)
		s.mu.Unlock()
		return s.fatal
	}
	return nil
}
