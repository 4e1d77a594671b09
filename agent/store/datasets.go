package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// Downlink state: datasets being received from the central system (staged, chunk by chunk, until
// the whole is verified and swapped in) and the replay guard of signed commands. The store keeps
// the bytes; the uplink interprets them (sync/wire). A dataset is never half-applied: chunks are
// staged in their own bucket and the swap into the active roster is one transaction, so an agent
// killed at any moment finds either the old roster with the staged chunks (resumed or discarded
// on restart) or the new roster and no staging.

var (
	bucketStaging  = []byte("staging")  // one nested bucket per dataset name
	bucketDownlink = []byte("downlink") // the last command accepted

	keyStageMeta     = []byte("meta")     // version(8) chunks(4) since(8, unix ns)
	keyStageManifest = []byte("manifest") // the signed manifest as received
	keyLastCommand   = []byte("last_command")
)

// Errors of the downlink state.
var (
	// ErrNotStaged means a chunk arrived for a dataset version that is not being staged.
	ErrNotStaged = errors.New("store: dataset version not staged")
	// ErrIncomplete means a swap was asked of a staged dataset that still misses chunks.
	ErrIncomplete = errors.New("store: staged dataset is incomplete")
)

// Staged describes a dataset version being received.
type Staged struct {
	Dataset  string
	Version  uint64
	Manifest []byte    // the signed manifest as received
	Chunks   int       // how many chunks the manifest names
	Missing  []int     // the indexes not yet stored, in order
	Since    time.Time // when staging of this version began
}

// Complete reports whether every chunk is staged.
func (st Staged) Complete() bool { return len(st.Missing) == 0 }

func chunkKey(i int) []byte {
	k := []byte{'c', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[1:], uint32(i))
	return k
}

// Stage begins staging version of dataset with its manifest and number of chunks. Staging of
// another version of the dataset is discarded; staging of the same version with the same manifest
// is kept with its chunks (a resent dataset resumes where it stopped).
func (s *Store) Stage(dataset string, version uint64, manifest []byte, chunks int) (Staged, error) {
	if s.readOnly {
		return Staged{}, ErrReadOnly
	}
	if dataset == "" || version == 0 || chunks < 0 {
		return Staged{}, fmt.Errorf("store: stage: dataset %q version %d chunks %d", dataset, version, chunks)
	}
	var st Staged
	err := s.update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketStaging)
		if err != nil {
			return err
		}
		if b := root.Bucket([]byte(dataset)); b != nil {
			cur, err := readStaged(dataset, b)
			if err != nil || cur.Version != version || cur.Chunks != chunks || !bytes.Equal(cur.Manifest, manifest) {
				if err := root.DeleteBucket([]byte(dataset)); err != nil {
					return err
				}
			} else {
				st = cur
				return nil
			}
		}
		b, err := root.CreateBucket([]byte(dataset))
		if err != nil {
			return err
		}
		meta := make([]byte, 20)
		binary.BigEndian.PutUint64(meta, version)
		binary.BigEndian.PutUint32(meta[8:], uint32(chunks))
		binary.BigEndian.PutUint64(meta[12:], uint64(time.Now().UnixNano()))
		if err := errors.Join(b.Put(keyStageMeta, meta), b.Put(keyStageManifest, manifest)); err != nil {
			return err
		}
		st, err = readStaged(dataset, b)
		return err
	})
	if err != nil {
		return Staged{}, fmt.Errorf("store: stage %s v%d: %w", dataset, version, err)
	}
	return st, nil
}

// StageChunk stores chunk index of the staged version of dataset and returns the staging state.
// A chunk of a version that is not staged is refused with ErrNotStaged; a chunk staged again
// replaces the earlier copy.
func (s *Store) StageChunk(dataset string, version uint64, index int, data []byte) (Staged, error) {
	if s.readOnly {
		return Staged{}, ErrReadOnly
	}
	var st Staged
	err := s.update(func(tx *bolt.Tx) error {
		b := stagingBucket(tx, dataset)
		if b == nil {
			return ErrNotStaged
		}
		cur, err := readStaged(dataset, b)
		if err != nil {
			return err
		}
		if cur.Version != version {
			return fmt.Errorf("%w: staging version %d", ErrNotStaged, cur.Version)
		}
		if index < 0 || index >= cur.Chunks {
			return fmt.Errorf("store: chunk %d of %d", index, cur.Chunks)
		}
		if err := b.Put(chunkKey(index), data); err != nil {
			return err
		}
		st, err = readStaged(dataset, b)
		return err
	})
	if err != nil {
		return Staged{}, fmt.Errorf("store: stage %s v%d chunk %d: %w", dataset, version, index, err)
	}
	return st, nil
}

// StagedDataset returns the staging state of dataset; ok is false if nothing is staged.
func (s *Store) StagedDataset(dataset string) (st Staged, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b := stagingBucket(tx, dataset)
		if b == nil {
			return nil
		}
		ok = true
		st, err = readStaged(dataset, b)
		return err
	})
	return st, ok, err
}

// StagedDatasets returns every dataset being staged, for recovery at start.
func (s *Store) StagedDatasets() ([]Staged, error) {
	var out []Staged
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketStaging)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(k []byte) error {
			st, err := readStaged(string(k), root.Bucket(k))
			if err != nil {
				return err
			}
			out = append(out, st)
			return nil
		})
	})
	return out, err
}

// Discard drops the staging of dataset if it is at version (any version if version is 0).
func (s *Store) Discard(dataset string, version uint64) error {
	if s.readOnly {
		return ErrReadOnly
	}
	err := s.update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketStaging)
		if root == nil || root.Bucket([]byte(dataset)) == nil {
			return nil
		}
		if version != 0 {
			cur, err := readStaged(dataset, root.Bucket([]byte(dataset)))
			if err == nil && cur.Version != version {
				return nil
			}
		}
		return root.DeleteBucket([]byte(dataset))
	})
	if err != nil {
		return fmt.Errorf("store: discard %s: %w", dataset, err)
	}
	return nil
}

// RosterDataset is the name of the roster dataset.
const RosterDataset = "roster"

// SwapRoster makes the staged roster at version the active roster and drops the staging, through
// the gate of ApplyDataset (one dataset event, applied or refused). check verifies the staged
// manifest and the whole content (hash, signature) and returns the roster it decodes. On any
// error the staging stays, for the caller to discard, and the active roster stays. from is the
// origin recorded.
func (s *Store) SwapRoster(version uint64, from string, check func(manifest, content []byte) (*roster.Roster, error)) (RosterInfo, error) {
	if s.readOnly {
		return RosterInfo{}, ErrReadOnly
	}
	manifest, content, err := s.StagedContent(RosterDataset, version)
	if err != nil {
		return RosterInfo{}, err
	}
	ref := ledger.DatasetRef{Name: RosterDataset, Version: version, SHA256: hexSHA(content), Origin: from}
	r, err := check(manifest, content)
	if err != nil {
		_, aerr := s.ApplyDataset(DatasetIn{Ref: ref, Refused: ledger.DatasetInvalid, Why: err})
		return RosterInfo{}, errors.Join(fmt.Errorf("store: swap roster v%d: %w", version, err), ignoreRefusal(aerr))
	}
	if r.Version != version {
		err := fmt.Errorf("store: the roster says version %d, its manifest %d", r.Version, version)
		_, aerr := s.ApplyDataset(DatasetIn{Ref: ref, Refused: ledger.DatasetInvalid, Why: err})
		return RosterInfo{}, errors.Join(err, ignoreRefusal(aerr))
	}
	a, err := s.ApplyDataset(DatasetIn{Ref: ref, Content: content, Unstage: true})
	if err != nil {
		return RosterInfo{}, fmt.Errorf("store: swap roster v%d: %w", version, err)
	}
	return a.Info, nil
}

// ignoreRefusal drops the *DatasetError a recorded refusal returns, keeping any other error.
func ignoreRefusal(err error) error {
	var de *DatasetError
	if errors.As(err, &de) {
		return nil
	}
	return err
}

// StagedContent returns the manifest and the whole content of a complete staging of dataset at
// version, for the caller to verify and hand to ApplyDataset (with Unstage).
func (s *Store) StagedContent(dataset string, version uint64) (manifest, content []byte, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b := stagingBucket(tx, dataset)
		if b == nil {
			return ErrNotStaged
		}
		st, err := readStaged(dataset, b)
		if err != nil {
			return err
		}
		if st.Version != version {
			return fmt.Errorf("%w: staging version %d", ErrNotStaged, st.Version)
		}
		if !st.Complete() {
			return fmt.Errorf("%w: chunks %v missing", ErrIncomplete, st.Missing)
		}
		manifest = st.Manifest
		for i := 0; i < st.Chunks; i++ {
			content = append(content, b.Get(chunkKey(i))...)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: staged %s v%d: %w", dataset, version, err)
	}
	return manifest, content, nil
}

// DatasetVersions returns the active version of each dataset (roster, certblocks).
func (s *Store) DatasetVersions() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketRoster).Get(keyRosterInfo); v != nil {
			var info RosterInfo
			if err := decodeInfo(v, &info); err != nil {
				return err
			}
			out[RosterDataset] = info.Version
		}
		if b := tx.Bucket(bucketBlocks); b != nil {
			if v := b.Get(keyBlocksVersion); len(v) == 8 {
				out[cert.BlocksDataset] = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return out, err
}

// AcceptCommand records id as the last accepted command of the central system if it is above
// the last one, and reports whether it was. A command at or below the last is a replay.
func (s *Store) AcceptCommand(id uint64) (bool, error) {
	if s.readOnly {
		return false, ErrReadOnly
	}
	accepted := false
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDownlink)
		if err != nil {
			return err
		}
		if v := b.Get(keyLastCommand); len(v) == 8 && binary.BigEndian.Uint64(v) >= id {
			return nil
		}
		accepted = true
		return b.Put(keyLastCommand, u64(id))
	})
	if err != nil {
		return false, fmt.Errorf("store: accept command: %w", err)
	}
	return accepted, nil
}

func stagingBucket(tx *bolt.Tx, dataset string) *bolt.Bucket {
	root := tx.Bucket(bucketStaging)
	if root == nil {
		return nil
	}
	return root.Bucket([]byte(dataset))
}

func readStaged(dataset string, b *bolt.Bucket) (Staged, error) {
	meta := b.Get(keyStageMeta)
	if len(meta) != 20 {
		return Staged{}, fmt.Errorf("store: staging of %s has no meta", dataset)
	}
	st := Staged{
		Dataset:  dataset,
		Version:  binary.BigEndian.Uint64(meta),
		Chunks:   int(binary.BigEndian.Uint32(meta[8:])),
		Since:    time.Unix(0, int64(binary.BigEndian.Uint64(meta[12:]))),
		Manifest: bytes.Clone(b.Get(keyStageManifest)),
	}
	for i := 0; i < st.Chunks; i++ {
		if b.Get(chunkKey(i)) == nil {
			st.Missing = append(st.Missing, i)
		}
	}
	return st, nil
}

func hexSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
