// Package store is the only owner of the agent's bbolt file: the ledger of events with its hash
// chain head, the uplink's acknowledged cursor, the active roster, vouchers bound here and the
// certificate serial sequences. Every write is one bbolt transaction that returns only after
// bbolt's fsync: a caller told an event is appended may tell the trainee it is recorded.
//
// A commit error (EIO, ENOSPC on fsync) is fatal: the store refuses every later write with
// ErrFatal and the daemon exits non-zero for systemd to restart it. A file that cannot be opened
// as a consistent ledger is moved aside, never deleted, and a new epoch begins with an alarm.
// Nothing here deletes an event.
package store

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

// Errors of this package.
var (
	// ErrFatal wraps a failed commit. The store takes no more writes; the process must exit.
	ErrFatal = errors.New("store: commit failed; the daemon must restart")
	// ErrDiskFull means the free space is under the configured reserve: new captures are refused,
	// every old record is kept.
	ErrDiskFull = errors.New("store: disk reserve reached; new captures refused")
	// ErrEvidenceBudget means the evidence directory is at its budget.
	ErrEvidenceBudget = errors.New("store: evidence budget reached; new captures refused")
	// ErrDamaged means the file is damaged where bbolt read it (a page it would have panicked on,
	// or a failed structural check): the daemon moves it aside and starts a new epoch, salvaging
	// what still verifies; `kaoqin verify` says where the damage is.
	ErrDamaged = errors.New("store: the ledger file is damaged")
	// ErrLocked means another process (normally the running daemon) holds the file.
	ErrLocked = errors.New("store: the database is in use by another process (is the daemon running? use its socket)")
	// ErrReadOnly is returned by writes on a store opened with OpenReadOnly.
	ErrReadOnly = errors.New("store: opened read-only")
	// ErrKeyMismatch means the configured device key is not the one the ledger was started with.
	ErrKeyMismatch = errors.New("store: the device key does not match the key this ledger was started with")
	// ErrAckBeyondHead is an acknowledgement of events never appended.
	ErrAckBeyondHead = errors.New("store: ack beyond the last appended event")
	// ErrStaleEpoch is an acknowledgement for another epoch.
	ErrStaleEpoch = errors.New("store: ack for another epoch")
)

var (
	bucketMeta     = []byte("meta")
	bucketEvents   = []byte("events")
	bucketRoster   = []byte("roster")
	bucketBindings = []byte("bindings")
	bucketKeys     = []byte("keys")     // a device's own reading key -> the seq that recorded it
	bucketSalvaged = []byte("salvaged") // epoch|seq -> a record salvaged from a damaged file
	bucketCerts    = []byte("certs")
	bucketRetired  = []byte("retired")

	keyDevice   = []byte("device")
	keyEpoch    = []byte("epoch")
	keyPubkey   = []byte("pubkey")
	keyCreated  = []byte("created")
	keyHeadSeq  = []byte("head_seq")
	keyHeadHash = []byte("head_hash")
	keyAcked    = []byte("acked")
)

// Config says where the store lives and who writes it.
type Config struct {
	Path        string // the bbolt file, normally /var/lib/kaoqin/kaoqin.db
	EvidenceDir string // content-addressed JPEGs; empty disables evidence
	Device      string
	Key         ed25519.PrivateKey
	// MinFreeBytes is the free space kept in reserve on the file system of Path: under it, new
	// captures are refused with ErrDiskFull (alarms may still use the reserve).
	MinFreeBytes uint64
	// EvidenceBudget caps the evidence directory in bytes; zero means no cap beyond MinFreeBytes.
	EvidenceBudget int64
	// Institution is the box's institution: a roster without it is refused (it would empty the room).
	Institution string
	// AllowUnsigned is the development switch that lets unsigned datasets in from a file. While it
	// is set, and while an unsigned roster is active, every event carries the unsigned_dataset flag.
	AllowUnsigned bool
}

// Store is an open ledger. Append and the other writes may be called from any goroutine; they are
// serialised.
type Store struct {
	db       *bolt.DB
	cfg      Config
	log      *slog.Logger
	readOnly bool

	mu       sync.Mutex // serialises appends and guards the fields below
	epoch    uint64
	headSeq  uint64
	headHash [32]byte
	fatal    error
	evBytes  int64
	// unsignedRoster is set while the active roster came in unsigned (AllowUnsigned).
	unsignedRoster bool

	dbMu sync.RWMutex // held for reading around every transaction; for writing while heal swaps db

	appended chan struct{}
}

// Open opens or creates the store. A file that is not a consistent ledger is moved aside to
// Path.corrupt-<time> and a new epoch starts; the first event of every epoch is an alarm saying
// why it began.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if cfg.Device == "" || len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("store: a device name and an ed25519 key are required")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{cfg: cfg, log: log, appended: make(chan struct{}, 1)}
	_, statErr := os.Stat(cfg.Path)
	existed := statErr == nil

	why := ""
	db, err := openBolt(cfg.Path, false)
	switch {
	case errors.Is(err, bolterr.ErrTimeout):
		return nil, ErrLocked
	case err != nil && existed:
		why = err.Error()
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	default:
		s.db = db
		if existed {
			err := s.load(true)
			if err == nil {
				err = s.Check()
			}
			if errors.Is(err, ErrKeyMismatch) {
				db.Close()
				return nil, err
			} else if err != nil {
				why = err.Error()
				db.Close()
				s.db = nil
			}
		}
	}
	note := "new store"
	var salvaged *Salvaged
	if why != "" {
		if note, salvaged, err = s.moveAside(why); err != nil {
			return nil, err
		}
	}
	if s.db == nil || !existed {
		if err := s.fresh(note, salvaged); err != nil {
			return nil, err
		}
	}
	if cfg.EvidenceDir != "" {
		if err := os.MkdirAll(cfg.EvidenceDir, 0o750); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		s.evBytes = dirSize(cfg.EvidenceDir)
	}
	return s, nil
}

// OpenReadOnly opens an existing store for reading while no daemon runs (bbolt allows one writer
// process; a running daemon makes this fail with ErrLocked).
func OpenReadOnly(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := openBolt(path, true)
	if errors.Is(err, bolterr.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, readOnly: true, log: slog.New(slog.DiscardHandler), appended: make(chan struct{}, 1)}
	if err := s.load(false); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a cut file faults in the mmap
	defer func() {                                           // bbolt panics on some kinds of garbage rather than returning an error
		if r := recover(); r != nil {
			err = fmt.Errorf("store: unreadable database: %v", r)
		}
	}()
	if err := preflight(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly, FreelistType: bolt.FreelistMapType})
}

// create writes the meta of a new epoch and its first event.
func (s *Store) create(note string) error {
	s.epoch = uint64(time.Now().UnixMilli())
	s.headSeq, s.headHash = 0, ledger.ZeroHash
	pub := s.cfg.Key.Public().(ed25519.PublicKey)
	err := s.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketEvents, bucketRoster, bucketBindings, bucketCerts, bucketRetired} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		return errors.Join(
			m.Put(keyDevice, []byte(s.cfg.Device)),
			m.Put(keyEpoch, u64(s.epoch)),
			m.Put(keyPubkey, pub),
			m.Put(keyCreated, []byte(time.Now().Format(time.RFC3339))),
			m.Put(keyHeadSeq, u64(0)),
			m.Put(keyHeadHash, ledger.ZeroHash[:]),
			m.Put(keyAcked, u64(0)),
		)
	})
	if err != nil {
		return fmt.Errorf("store: create: %w", err)
	}
	_, err = s.appendLocked([]ledger.Event{{Kind: ledger.Alarm, Reason: ledger.AlarmNewEpoch, Note: note, Time: clock.Now()}}, nil)
	return err
}

// moveAside renames a damaged or inconsistent file to Path.corrupt-<time>, never deleting it, and
// salvages from it every event that still verifies. It returns the note of the new epoch's alarm.
func (s *Store) moveAside(why string) (note string, salvaged *Salvaged, err error) {
	cfg := s.cfg
	aside := fmt.Sprintf("%s.corrupt-%s", cfg.Path, time.Now().UTC().Format("20060102T150405.000Z"))
	if err := os.Rename(cfg.Path, aside); err != nil {
		return "", nil, fmt.Errorf("store: %s is corrupt (%s) and cannot be moved aside: %w", cfg.Path, why, err)
	}
	syncDir(filepath.Dir(cfg.Path))
	note = fmt.Sprintf("previous store moved aside to %s: %s", filepath.Base(aside), why)
	if sv, err := Salvage(aside, cfg.Key.Public().(ed25519.PublicKey)); err != nil {
		note += fmt.Sprintf("; nothing salvaged: %v", err)
	} else {
		salvaged = &sv
		note += "; " + sv.String()
	}
	s.log.Error("store: corrupt database moved aside; starting a new epoch", "file", aside, "why", why, "salvage", note)
	return note, salvaged, nil
}

// fresh creates a new file (if none is open) and starts an epoch in it with the alarm note, keeping
// what was salvaged.
func (s *Store) fresh(note string, salvaged *Salvaged) error {
	if s.db == nil {
		db, err := openBolt(s.cfg.Path, false)
		if err != nil {
			return fmt.Errorf("store: create %s: %w", s.cfg.Path, err)
		}
		s.dbMu.Lock()
		s.db = db
		s.dbMu.Unlock()
	}
	if err := s.create(note); err != nil {
		s.db.Close()
		return err
	}
	if salvaged != nil {
		if err := s.keepSalvaged(salvaged); err != nil {
			s.db.Close()
			return err
		}
	}
	return nil
}

// heal replaces a file found damaged while writing (bbolt panicked inside a write transaction:
// damage the check at open could not see) with a new epoch, as Open would have, so the box goes
// on taking attendance. It is called with s.mu held; readers that were inside the old file get
// errors until they read again.
func (s *Store) heal(why string) error {
	s.dbMu.Lock()
	old := s.db
	s.db = nil
	s.dbMu.Unlock()
	// bbolt may have panicked holding a lock of its own; closing could wait on it for ever. The
	// old file is released in the background, or with the process.
	go old.Close()
	note, salvaged, err := s.moveAside(why)
	if err != nil {
		return err
	}
	return s.fresh(note, salvaged)
}

// load reads the meta of an existing store. With checkHead it also checks that the file is a
// consistent ledger to append to: the head record is present, hashes to the recorded head and
// verifies with the recorded key. (A reader such as `kaoqin verify` wants to see a damaged ledger,
// not be refused it.)
func (s *Store) load(checkHead bool) error {
	return s.view(func(tx *bolt.Tx) error {
		// A cut file would be read past its end through the mmap (SIGBUS, not a panic).
		if fi, err := os.Stat(s.db.Path()); err == nil && fi.Size() < tx.Size() {
			return fmt.Errorf("%w: the file is cut short: %d of %d bytes", ErrDamaged, fi.Size(), tx.Size())
		}
		m, ev := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
		if m == nil || ev == nil {
			return errors.New("store: not a kaoqin ledger (buckets missing)")
		}
		dev, ep, pub := m.Get(keyDevice), m.Get(keyEpoch), m.Get(keyPubkey)
		hs, hh := m.Get(keyHeadSeq), m.Get(keyHeadHash)
		if dev == nil || len(ep) != 8 || len(pub) != ed25519.PublicKeySize || len(hs) != 8 || len(hh) != 32 {
			return errors.New("store: meta is incomplete")
		}
		if s.cfg.Key != nil {
			if !ed25519.PublicKey(pub).Equal(s.cfg.Key.Public()) {
				return ErrKeyMismatch
			}
			if string(dev) != s.cfg.Device {
				return fmt.Errorf("store: this ledger belongs to device %q, the config says %q", dev, s.cfg.Device)
			}
		}
		s.cfg.Device = string(dev)
		s.epoch = binary.BigEndian.Uint64(ep)
		s.headSeq = binary.BigEndian.Uint64(hs)
		copy(s.headHash[:], hh)
		if v := tx.Bucket(bucketRoster).Get(keyRosterInfo); v != nil {
			var info RosterInfo
			s.unsignedRoster = decodeInfo(v, &info) == nil && info.From == OriginUnsigned
		}
		if s.headSeq == 0 || !checkHead {
			return nil
		}
		k, v := ev.Cursor().Last()
		if k == nil || binary.BigEndian.Uint64(k) != s.headSeq {
			return fmt.Errorf("store: head seq %d is not the last event", s.headSeq)
		}
		rec := ledger.Record(v)
		if rec.Hash() != s.headHash {
			return fmt.Errorf("store: the head record does not hash to the recorded head")
		}
		if err := rec.Verify(ed25519.PublicKey(pub)); err != nil {
			return fmt.Errorf("store: head record seq %d: %w", s.headSeq, err)
		}
		return nil
	})
}

// view runs a read transaction. A damaged page makes bbolt panic; the panic becomes ErrDamaged.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return s.guarded(func(db *bolt.DB) error { return db.View(fn) })
}

// update runs a write transaction; a panic on a damaged page becomes ErrDamaged.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	return s.guarded(func(db *bolt.DB) error { return db.Update(fn) })
}

// guarded runs tx on the open file with a fault in the mmap or a bbolt panic turned into
// ErrDamaged, and the file held against heal's swap.
func (s *Store) guarded(tx func(*bolt.DB) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a fault in the mmap panics here, not the process
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return fmt.Errorf("%w: the file is being replaced", ErrDamaged)
	}
	return tx(s.db)
}

// Check reads every page the file's buckets reach (every branch and leaf, every key and value)
// in this goroutine, where a damaged page's panic or a fault in the mmap becomes ErrDamaged.
// Open runs it before a daemon appends to a file. (bbolt's own Tx.Check reads on a goroutine of
// its own, where a fault would end the process.)
func (s *Store) Check() error {
	return s.view(func(tx *bolt.Tx) error {
		var walk func(b *bolt.Bucket) error
		size := tx.Size()
		walk = func(b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				// A damaged element's size would make the next write copy (and allocate) gigabytes:
				// no key or value is larger than the file, and each is read at both ends (a fault
				// past the end of the file panics here).
				if int64(len(k)) > size || int64(len(v)) > size {
					return fmt.Errorf("%w: an element of %d+%d bytes in a file of %d", ErrDamaged, len(k), len(v), size)
				}
				if len(k) > 0 {
					touched ^= k[0] ^ k[len(k)-1]
				}
				if len(v) > 0 {
					touched ^= v[0] ^ v[len(v)-1]
				}
				if v == nil {
					if sub := b.Bucket(k); sub != nil {
						return walk(sub)
					}
				}
				return nil
			})
		}
		pages := size / int64(tx.DB().Info().PageSize)
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			// A page whose overflow count is damaged would make the next write allocate and free
			// without bound: the pages a bucket spans must fit in the file.
			st := b.Stats()
			if n := int64(st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN); n > pages {
				return fmt.Errorf("%w: bucket %s spans %d pages, the file has %d", ErrDamaged, name, n, pages)
			}
			return walk(b)
		})
	})
}

// touched keeps Check's reads of each element's first and last byte from being compiled away.
//
//lint:ignore U1000 written only: the writes are the point
var touched byte

// Close closes the file.
func (s *Store) Close() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	return s.db.Close()
}

// Device is the device name the ledger belongs to.
func (s *Store) Device() string { return s.cfg.Device }

// Path is the ledger file's path.
func (s *Store) Path() string { return s.cfg.Path }

// Epoch is the current epoch.
func (s *Store) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Head is the seq and record hash of the last event.
func (s *Store) Head() (seq uint64, hash [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headSeq, s.headHash
}

// PublicKey is the key the ledger is signed with.
func (s *Store) PublicKey() (ed25519.PublicKey, error) {
	var pub ed25519.PublicKey
	err := s.view(func(tx *bolt.Tx) error {
		pub = append(pub, tx.Bucket(bucketMeta).Get(keyPubkey)...)
		return nil
	})
	return pub, err
}

// Appended signals (without blocking the writer) after each append; the uplink waits on it.
func (s *Store) Appended() <-chan struct{} { return s.appended }

// Append seals e as the next event of the ledger and returns once it is durable, with Device,
// Epoch, Seq, ID and Prev filled in. Captures (see Captured) are refused with ErrDiskFull
// when the free space is under the reserve. An error wrapping ErrFatal means the commit failed:
// the event may not be on disk and the daemon must exit.
func (s *Store) Append(e ledger.Event) (ledger.Event, error) {
	if Captured(e.Kind) {
		if err := s.CheckReserve(); err != nil {
			return e, err
		}
	}
	return s.appendWith(e, nil)
}

// AppendBatch appends es, in order, as the next events of the ledger in one transaction and
// returns once all are durable: one fsync for the lot (group commit). Each event is filled in as
// Append fills one; an event's ID, if set, is kept. Either every event is appended or, on an
// error, none. The disk reserve is not checked here: a batch decided is written whole, so its
// caller checks the reserve (CheckReserve) before deciding one.
func (s *Store) AppendBatch(es []ledger.Event) ([]ledger.Event, error) {
	if len(es) == 0 {
		return nil, nil
	}
	return s.appendAll(es, nil)
}

// CheckReserve returns ErrDiskFull, saying how much is free, when the free space of the ledger's
// file system is under the configured reserve: captures are refused then.
func (s *Store) CheckReserve() error {
	if s.cfg.MinFreeBytes == 0 {
		return nil
	}
	if free, err := freeBytes(s.cfg.Path); err == nil && free < s.cfg.MinFreeBytes {
		return fmt.Errorf("%w (%d MiB free, reserve %d MiB)", ErrDiskFull, free>>20, s.cfg.MinFreeBytes>>20)
	}
	return nil
}

// Captured reports whether events of kind k are captures, refused under the disk reserve. Alarms
// and the rare administrative events (datasets, serials, denied actions) may use the reserve.
func Captured(k ledger.Kind) bool {
	switch k {
	case ledger.Alarm, ledger.Dataset, ledger.Certificate, ledger.Denied:
		return false
	}
	return true
}

// appendWith appends e in the same transaction as fn's writes: both are durable or neither. fn
// may complete e before it is sealed. An error from fn aborts the transaction, appends nothing and
// is returned as it is (it is not a failed commit).
func (s *Store) appendWith(e ledger.Event, fn func(tx *bolt.Tx, e *ledger.Event) error) (ledger.Event, error) {
	recs, err := s.appendAll([]ledger.Event{e}, fn)
	if err != nil {
		return e, err
	}
	return recs[0], nil
}

// appendAll is appendWith for a batch of events: fn is called for each before it is sealed.
func (s *Store) appendAll(es []ledger.Event, fn func(tx *bolt.Tx, e *ledger.Event) error) ([]ledger.Event, error) {
	if s.readOnly {
		return es, ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.appendLocked(es, fn)
	if err != nil && errors.Is(err, ErrDamaged) && s.fatal == nil {
		// The file is damaged where the check at open could not see: a new epoch, and these
		// events follow its first.
		if herr := s.heal(err.Error()); herr != nil {
			s.fatal = fmt.Errorf("%w: %v; and the damaged file could not be replaced: %v", ErrFatal, err, herr)
			return es, s.fatal
		}
		return s.appendLocked(es, fn)
	}
	return recs, err
}

// appendLocked is appendAll with s.mu held (or before the store is shared). A damaged page found
// while writing is returned as ErrDamaged, any other failed commit as ErrFatal. es is not changed:
// the events as appended are returned.
func (s *Store) appendLocked(es []ledger.Event, fn func(tx *bolt.Tx, e *ledger.Event) error) ([]ledger.Event, error) {
	if s.fatal != nil {
		return es, s.fatal
	}
	out := make([]ledger.Event, len(es))
	for i, e := range es {
		e.Device, e.Epoch, e.Seq = s.cfg.Device, s.epoch, s.headSeq+1+uint64(i)
		if e.ID == "" {
			e.ID = ledger.NewID(e.Time.Wall)
		}
		out[i] = e
	}
	var fnErr error
	hash := s.headHash
	err := s.update(func(tx *bolt.Tx) error {
		for i := range out {
			e := &out[i]
			if fn != nil {
				if fnErr = fn(tx, e); fnErr != nil {
					return fnErr
				}
			}
			if s.unsigned() && !e.HasFlag(ledger.FlagUnsignedDataset) {
				e.Flags = append(e.Flags, ledger.FlagUnsignedDataset)
			}
			rec, err := ledger.Seal(e, hash, s.cfg.Key)
			if err != nil {
				fnErr = err
				return err
			}
			if err := s.put(tx, e, rec); err != nil {
				return err
			}
			hash = rec.Hash()
		}
		m := tx.Bucket(bucketMeta)
		if err := m.Put(keyHeadSeq, u64(out[len(out)-1].Seq)); err != nil {
			return err
		}
		return m.Put(keyHeadHash, hash[:])
	})
	first := out[0].Seq
	if fnErr != nil {
		return es, fnErr
	}
	if errors.Is(err, ErrDamaged) {
		return es, fmt.Errorf("append seq %d: %w", first, err)
	}
	if err != nil {
		s.fatal = fmt.Errorf("%w: append seq %d: %v", ErrFatal, first, err)
		return es, s.fatal
	}
	s.headSeq, s.headHash = out[len(out)-1].Seq, hash
	select {
	case s.appended <- struct{}{}:
	default:
	}
	return out, nil
}

// put writes e's sealed record with its reading key and, for a voucher check-in, the voucher's
// binding.
func (s *Store) put(tx *bolt.Tx, e *ledger.Event, rec ledger.Record) error {
	key := u64(e.Seq)
	if err := events(tx).Put(key, rec); err != nil {
		return err
	}
	if e.Key != "" {
		b, err := tx.CreateBucketIfNotExists(bucketKeys)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(e.Key), key); err != nil {
			return err
		}
	}
	if e.Kind == ledger.VoucherCheckin {
		return tx.Bucket(bucketBindings).Put([]byte(e.Voucher), []byte(e.Institution))
	}
	return nil
}

// Acked is the highest seq of the current epoch the central system has acknowledged.
func (s *Store) Acked() (uint64, error) {
	var n uint64
	err := s.view(func(tx *bolt.Tx) error {
		n = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyAcked))
		return nil
	})
	return n, err
}

// Ack advances the acknowledged cursor to through (cumulative). An ack at or below the cursor is a
// no-op; one for another epoch returns ErrStaleEpoch; one beyond the head returns
// ErrAckBeyondHead and changes nothing. It keeps no receipt: the uplink moves the cursor with
// AckReceipt, which also keeps the central system's signed receipt.
func (s *Store) Ack(epoch, through uint64) (advanced bool, err error) {
	if err := s.ackable(epoch, through); err != nil {
		return false, err
	}
	err = s.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if binary.BigEndian.Uint64(m.Get(keyAcked)) >= through {
			return nil
		}
		advanced = true
		return m.Put(keyAcked, u64(through))
	})
	if err != nil {
		s.mu.Lock()
		s.fatal = fmt.Errorf("%w: ack: %v", ErrFatal, err)
		s.mu.Unlock()
		return false, s.fatal
	}
	return advanced, nil
}

// ackable refuses an acknowledgement the store cannot take: after a failed commit, for another
// epoch, or beyond the head.
func (s *Store) ackable(epoch, through uint64) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	ep, head, fatal := s.epoch, s.headSeq, s.fatal
	s.mu.Unlock()
	switch {
	case fatal != nil:
		return fatal
	case epoch != ep:
		return fmt.Errorf("%w: ack for epoch %d, current %d", ErrStaleEpoch, epoch, ep)
	case through > head:
		return fmt.Errorf("%w: acked_through %d, head %d", ErrAckBeyondHead, through, head)
	}
	return nil
}

// Fatal returns the commit error that stopped the store, or nil.
func (s *Store) Fatal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// eventsFill is how full bbolt packs the pages of the events bucket. Its keys only ever grow, so
// a split page is never written into again: with bbolt's default of half full, the leaf pages of
// a ledger appended one event a commit stay 47% used; with this, 62% (TestLedgerPagesArePacked).
const eventsFill = 0.95

// events is the events bucket of a writable transaction, set up for appending.
func events(tx *bolt.Tx) *bolt.Bucket {
	b := tx.Bucket(bucketEvents)
	b.FillPercent = eventsFill
	return b
}
