package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kaoqin/kaoqin/drivers"
)

// PutEvidence stores a JPEG content-addressed under the evidence directory and returns its
// reference (hex SHA-256, kind, size), which an event names. It implements drivers.EvidenceStore. It writes a temporary file, fsyncs it, renames it into place and
// fsyncs the directory, so an event never names evidence that a power cut lost. Over the budget
// or the disk reserve it refuses loudly (ErrEvidenceBudget, ErrDiskFull) and keeps every old file.
func (s *Store) PutEvidence(kind drivers.EvidenceKind, jpeg []byte) (drivers.EvidenceRef, error) {
	name, err := s.putEvidence(jpeg)
	if err != nil {
		return drivers.EvidenceRef{}, err
	}
	return drivers.EvidenceRef{SHA256: name, Kind: kind, Size: int64(len(jpeg))}, nil
}

func (s *Store) putEvidence(jpeg []byte) (string, error) {
	if s.cfg.EvidenceDir == "" {
		return "", errors.New("store: no evidence directory configured")
	}
	sum := sha256.Sum256(jpeg)
	name := hex.EncodeToString(sum[:])
	dir := filepath.Join(s.cfg.EvidenceDir, name[:2])
	path := filepath.Join(dir, name+".jpg")
	if _, err := os.Stat(path); err == nil {
		return name, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.EvidenceBudget > 0 && s.evBytes+int64(len(jpeg)) > s.cfg.EvidenceBudget {
		return "", fmt.Errorf("%w (%d of %d bytes used)", ErrEvidenceBudget, s.evBytes, s.cfg.EvidenceBudget)
	}
	if s.cfg.MinFreeBytes > 0 {
		if free, err := freeBytes(s.cfg.Path); err == nil && free < s.cfg.MinFreeBytes+uint64(len(jpeg)) {
			return "", fmt.Errorf("%w (%d MiB free)", ErrDiskFull, free>>20)
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("store: evidence: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("store: evidence: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(jpeg)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("store: evidence: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("store: evidence: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("store: evidence: sync dir: %w", err)
	}
	s.evBytes += int64(len(jpeg))
	return name, nil
}

// EvidencePath is where the evidence with hex SHA-256 name is kept.
func (s *Store) EvidencePath(name string) string {
	if len(name) < 2 {
		return ""
	}
	return filepath.Join(s.cfg.EvidenceDir, name[:2], name+".jpg")
}
