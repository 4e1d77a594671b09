package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// The gate every dataset goes through, whether it came over MQTT or from a file: each attempt,
// applied or refused, becomes a dataset event, and an applied dataset is written in the same
// transaction as its event. The caller verifies the central signature (sync/wire); the store
// decides the rest: decoding, validation, newer than the active version, not emptying the room,
// blocks for this box.

// Origins of a dataset (ledger.DatasetRef.Origin).
const (
	OriginDownlink = "downlink"      // MQTT, down/data
	OriginFile     = "file"          // a signed bundle imported on the box
	OriginUnsigned = "unsigned-file" // a plain file let in by the development switch
)

var (
	bucketBlocks      = []byte("certblocks")
	keyBlocksActive   = []byte("active")
	keyBlocksVersion  = []byte("version")
	errBlocksNotFound = errors.New("store: no certificate serial blocks: the central system has not assigned any to this box")
)

// DatasetIn is one dataset that arrived.
type DatasetIn struct {
	// Ref names it: Name, Version and SHA256 as its signed manifest says (or, refused before
	// verification, as it claimed), Origin.
	Ref ledger.DatasetRef
	// Content is the verified content. Nil when Refused is set.
	Content []byte
	// Refused is the caller's refusal (a signature that does not verify, another device, expired),
	// Why its detail. The store records it and changes nothing else.
	Refused ledger.Reason
	Why     error
	// Operator imported it (a file); empty for the downlink.
	Operator string
	Time     ledger.Clock
	// Unstage drops the staging of Ref.Name in the transaction that applies it.
	Unstage bool
}

// DatasetError is a refused dataset: Reason is the ledger's code, Event the refusal recorded.
type DatasetError struct {
	Reason ledger.Reason
	Err    error
	Event  ledger.Event
}

func (e *DatasetError) Error() string {
	return fmt.Sprintf("dataset refused (%s), recorded as seq %d: %v", e.Reason, e.Event.Seq, e.Err)
}

func (e *DatasetError) Unwrap() error { return e.Err }

// Applied is what ApplyDataset made active.
type Applied struct {
	Event  ledger.Event
	Roster *roster.Roster // the roster dataset
	Info   RosterInfo
	Blocks *cert.Blocks // the certblocks dataset
}

// ApplyDataset applies a verified dataset or records its refusal. Every call appends exactly one
// dataset event (unless the ledger failed: ErrFatal). A refusal returns *DatasetError, which
// wraps ErrNotNewer for a version not above the active one; nothing already applied changes.
func (s *Store) ApplyDataset(in DatasetIn) (Applied, error) {
	if in.Time.Wall.IsZero() {
		in.Time.Wall = time.Now()
	}
	e := ledger.Event{Kind: ledger.Dataset, Time: in.Time, Operator: in.Operator, Institution: s.cfg.Institution}
	ref := in.Ref
	ref.Applied = false
	refuse := func(reason ledger.Reason, why error) (Applied, error) {
		r := e
		r.Reason, r.Note = reason, why.Error()
		r.Dataset = &ref
		rec, err := s.Append(r)
		if err != nil {
			return Applied{}, err
		}
		return Applied{}, &DatasetError{Reason: reason, Err: why, Event: rec}
	}
	if in.Refused != "" {
		return refuse(in.Refused, in.Why)
	}
	var out Applied
	var reason ledger.Reason
	now := in.Time.Wall
	rec, err := s.appendWith(e, func(tx *bolt.Tx, e *ledger.Event) error {
		var err error
		switch ref.Name {
		case RosterDataset:
			reason, err = s.applyRoster(tx, in, now, &out)
		case cert.BlocksDataset:
			reason, err = s.applyBlocks(tx, in, &out)
		default:
			reason, err = ledger.DatasetUnsupported, fmt.Errorf("dataset %q is not one this box takes (roster, certblocks)", ref.Name)
		}
		if err != nil {
			return err
		}
		if in.Unstage {
			if b := tx.Bucket(bucketStaging); b != nil && b.Bucket([]byte(ref.Name)) != nil {
				if err := b.DeleteBucket([]byte(ref.Name)); err != nil {
					return err
				}
			}
		}
		applied := ref
		applied.Applied = true
		e.Dataset = &applied
		e.Note = fmt.Sprintf("%s version %d applied", ref.Name, ref.Version)
		return nil
	})
	if reason != "" {
		return refuse(reason, err)
	}
	if err != nil {
		return Applied{}, err
	}
	if ref.Name == RosterDataset {
		s.mu.Lock()
		s.unsignedRoster = ref.Origin == OriginUnsigned
		s.mu.Unlock()
	}
	out.Event = rec
	return out, nil
}

func (s *Store) applyRoster(tx *bolt.Tx, in DatasetIn, now time.Time, out *Applied) (ledger.Reason, error) {
	r, err := roster.Decode(in.Content)
	if err != nil {
		return ledger.DatasetInvalid, err
	}
	if r.Version != in.Ref.Version {
		return ledger.DatasetInvalid, fmt.Errorf("the roster says version %d, its manifest %d", r.Version, in.Ref.Version)
	}
	if err := r.Validate(now); err != nil {
		return ledger.DatasetInvalid, err
	}
	var old *roster.Roster
	if raw := tx.Bucket(bucketRoster).Get(keyRosterActive); raw != nil {
		if old, err = roster.Decode(raw); err != nil {
			old = nil // an active roster this build cannot read gives no running session to keep
		}
	}
	if v := tx.Bucket(bucketRoster).Get(keyRosterInfo); v != nil {
		var cur RosterInfo
		if err := decodeInfo(v, &cur); err == nil && r.Version <= cur.Version {
			return ledger.DatasetReplayed, fmt.Errorf("%w: version %d, active is %d", ErrNotNewer, r.Version, cur.Version)
		}
	}
	if err := roster.CheckSuccessor(old, r, s.cfg.Institution, now); err != nil {
		return ledger.DatasetEmptiesRoom, err
	}
	info, err := setRoster(tx, in.Content, r, in.Ref.Origin)
	if err != nil {
		var p roster.Problems
		if errors.As(err, &p) {
			return ledger.DatasetInvalid, err
		}
		return "", err
	}
	out.Roster, out.Info = r, info
	return "", nil
}

func (s *Store) applyBlocks(tx *bolt.Tx, in DatasetIn, out *Applied) (ledger.Reason, error) {
	bs, err := cert.DecodeBlocks(in.Content)
	if err != nil {
		return ledger.DatasetInvalid, err
	}
	if bs.Version != in.Ref.Version {
		return ledger.DatasetInvalid, fmt.Errorf("the blocks say version %d, their manifest %d", bs.Version, in.Ref.Version)
	}
	if bs.Device != s.cfg.Device {
		return ledger.DatasetWrongDevice, fmt.Errorf("blocks for device %q, this box is %q", bs.Device, s.cfg.Device)
	}
	b, err := tx.CreateBucketIfNotExists(bucketBlocks)
	if err != nil {
		return "", err
	}
	if v := b.Get(keyBlocksVersion); len(v) == 8 && binary.BigEndian.Uint64(v) >= bs.Version {
		return ledger.DatasetReplayed, fmt.Errorf("%w: version %d, active is %d", ErrNotNewer, bs.Version, binary.BigEndian.Uint64(v))
	}
	if err := errors.Join(b.Put(keyBlocksActive, in.Content), b.Put(keyBlocksVersion, u64(bs.Version))); err != nil {
		return "", err
	}
	out.Blocks = bs
	return "", nil
}

// CertBlocks returns the active serial blocks, or nil.
func (s *Store) CertBlocks() (*cert.Blocks, error) {
	var raw []byte
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketBlocks); b != nil {
			raw = append(raw, b.Get(keyBlocksActive)...)
		}
		return nil
	})
	if err != nil || raw == nil {
		return nil, err
	}
	return cert.DecodeBlocks(raw)
}

// CertRequest is one certificate serial to allocate: for whom, by whom.
type CertRequest struct {
	Issuer    cert.Issuer
	Year      int
	Category  cert.Category
	Trainee   string
	Programme string
	Operator  string
	Time      ledger.Clock
}

// NextCert allocates the next serial of an issuer, year and category inside the blocks the
// central system assigned this box, and records the allocation as a certificate event in the same
// transaction: the serial is durable, in the ledger and synced like any event, before it is
// returned. The counter never goes back: it continues from this store's allocations and from
// those salvaged from a damaged file (keepSalvaged). A code retired by any roster is refused
// with cert.ErrRetired, a serial outside the blocks with cert.ErrOutsideBlocks.
func (s *Store) NextCert(req CertRequest) (cert.Serial, ledger.Event, error) {
	if err := req.Issuer.Validate(); err != nil {
		return cert.Serial{}, ledger.Event{}, err
	}
	if req.Time.Wall.IsZero() {
		req.Time.Wall = time.Now()
	}
	var sn cert.Serial
	e := ledger.Event{Kind: ledger.Certificate, Time: req.Time, Trainee: req.Trainee, Detail: req.Programme,
		Operator: req.Operator, Institution: req.Issuer.Institution}
	rec, err := s.appendWith(e, func(tx *bolt.Tx, e *ledger.Event) error {
		prefix := retiredKey(req.Issuer)
		if when := tx.Bucket(bucketRetired).Get(prefix); when != nil {
			return fmt.Errorf("%w: %s since %s", cert.ErrRetired, prefix, when)
		}
		var bs *cert.Blocks
		if b := tx.Bucket(bucketBlocks); b != nil && b.Get(keyBlocksActive) != nil {
			var err error
			if bs, err = cert.DecodeBlocks(b.Get(keyBlocksActive)); err != nil {
				return err
			}
		}
		if bs == nil {
			return fmt.Errorf("%w: %v", cert.ErrOutsideBlocks, errBlocksNotFound)
		}
		c := tx.Bucket(bucketCerts)
		key := []byte(cert.SeqKey(req.Issuer, req.Year, req.Category))
		last := counter(c.Get(key))
		last = max(last, counter(c.Get([]byte(req.Issuer.Key(req.Year))))) // a counter of before blocks
		seq, err := bs.NextIn(req.Issuer, req.Year, req.Category, last)
		if err != nil {
			return err
		}
		if sn, err = cert.Next(req.Issuer, req.Year, req.Category, seq-1); err != nil {
			return err
		}
		if err := c.Put(key, u32(sn.Seq)); err != nil {
			return err
		}
		e.Cert = sn.String()
		return nil
	})
	if err != nil {
		return cert.Serial{}, ledger.Event{}, fmt.Errorf("store: next cert: %w", err)
	}
	return sn, rec, nil
}

// retiredKey keys a retired institution code by its whole prefix, city + county + institution:
// Jinan's 0001 and Qingdao's 0001 are different institutions.
func retiredKey(iss cert.Issuer) []byte { return []byte(iss.City + iss.County + iss.Institution) }

func counter(v []byte) int {
	if len(v) == 4 {
		return int(binary.BigEndian.Uint32(v))
	}
	return 0
}

func u32(n int) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(n))
	return b
}

// keepCertCounters raises the certificate counters to the serials recorded in events (the
// salvaged records of a damaged file), so a new epoch never hands one out again.
func keepCertCounters(tx *bolt.Tx, recs []ledger.Record) error {
	c := tx.Bucket(bucketCerts)
	for _, r := range recs {
		e, err := r.Event()
		if err != nil || e.Kind != ledger.Certificate || e.Cert == "" {
			continue
		}
		sn, err := cert.Parse(e.Cert)
		if err != nil {
			continue
		}
		key := []byte(cert.SeqKey(sn.Issuer, sn.Year, sn.Category))
		if counter(c.Get(key)) < sn.Seq {
			if err := c.Put(key, u32(sn.Seq)); err != nil {
				return err
			}
		}
	}
	return nil
}

// unsigned reports whether events are to carry the unsigned_dataset flag. Called with s.mu held.
func (s *Store) unsigned() bool { return s.cfg.AllowUnsigned || s.unsignedRoster }

// Unsigned reports whether the box accepts unsigned datasets or runs on one: every event carries
// the unsigned_dataset flag, and the inspector's page shows it in red.
func (s *Store) Unsigned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsigned()
}
