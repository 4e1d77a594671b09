package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	k := u64(s.Epoch()) // s.mu is never taken inside a transaction: Append holds it around one
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEvidenceThrough); b != nil {
			if v := b.Get(k); len(v) == 8 {
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
	k := u64(s.Epoch()) // s.mu is never taken inside a transaction: Append holds it around one
	return s.evidenceUpdate(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEvidenceThrough)
		if err != nil {
			return err
		}
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

// PruneEvidence deletes photos the central system has acknowledged and that are either older than
// retention (by their file's time; zero keeps them for ever) or, oldest first, needed to bring the
// evidence folder under half its budget once it is over nine tenths of it. A photo without an ack
// is never deleted, whatever its age or the budget. It returns how many photos it deleted and
// their bytes.
func (s *Store) PruneEvidence(retention time.Duration, now time.Time) (n int, freed int64, err error) {
	if s.readOnly {
		return 0, 0, ErrReadOnly
	}
	if s.cfg.EvidenceDir == "" {
		return 0, 0, nil
	}
	type photo struct {
		path, sha string
		mod       time.Time
		size      int64
	}
	var acked []photo
	err = filepath.WalkDir(s.cfg.EvidenceDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), ".jpg") {
			return err
		}
		sha := strings.TrimSuffix(d.Name(), ".jpg")
		ok, err := s.EvidenceAcked(sha)
		if err != nil || !ok {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		acked = append(acked, photo{path, sha, fi.ModTime(), fi.Size()})
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: evidence prune: %w", err)
	}
	slices.SortFunc(acked, func(a, b photo) int { return a.mod.Compare(b.mod) })
	s.mu.Lock()
	used := s.evBytes
	s.mu.Unlock()
	budget := s.cfg.EvidenceBudget
	pressed := budget > 0 && used > budget/10*9
	for _, p := range acked {
		old := retention > 0 && now.Sub(p.mod) > retention
		if !old && !(pressed && used > budget/2) {
			continue
		}
		if err := os.Remove(p.path); err != nil {
			return n, freed, fmt.Errorf("store: evidence prune: %w", err)
		}
		n++
		freed += p.size
		used -= p.size
	}
	if n > 0 {
		s.mu.Lock()
		s.evBytes -= freed
		s.mu.Unlock()
	}
	return n, freed, nil
}
