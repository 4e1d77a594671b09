package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// The ingester's bbolt file:
//
//	meta     last_cmd -> the last command ID issued (8 bytes)
//	devices  <device> -> JSON deviceRecord
//	chains   <device> 0x00 <epoch(8)> -> seq(8) head(32): the verified, contiguous end of each chain
//	events   <device> / <epoch(8)> / <seq(8)> -> the record, exactly as the device sent it
//	alarms   <time(8)> <device> -> JSON of an integrity alarm (a conflicting or unverifiable record)
//
// The key (device, epoch, seq) is unique: a record is written only if its key is absent, in the
// same transaction that moves the chain's end, and the ack goes out after that commit.

var (
	bucketMeta    = []byte("meta")
	bucketDevices = []byte("devices")
	bucketChains  = []byte("chains")
	bucketEvents  = []byte("events")
	bucketAlarms  = []byte("alarms")
	keyLastCmd    = []byte("last_cmd")
)

// ErrLocked means another process holds the database: the ingester is running (ask its socket).
var ErrLocked = errors.New("ingest: the database is in use (is the ingester running?)")

// ErrConflict means a device sent two different records for one (epoch, seq). The chain
// verification makes it impossible for honest devices; the second record is refused.
var ErrConflict = errors.New("ingest: a different record is stored under this (device, epoch, seq)")

// deviceRecord is what the ingester remembers of a device across restarts.
type deviceRecord struct {
	Institution string                  `json:"institution"`
	Epoch       uint64                  `json:"epoch"`
	LastSeen    time.Time               `json:"last_seen"`
	State       *wire.State             `json:"state,omitempty"`
	Applied     map[string]wire.Applied `json:"applied,omitempty"`
	LastError   string                  `json:"last_error,omitempty"`
	// HeadSeen is the highest seq the device ever claimed: in a state's head_seq or a batch.
	HeadSeen uint64 `json:"head_seen,omitempty"`
	// StateAt is when the ingester received State.
	StateAt time.Time `json:"state_at,omitzero"`
	// Witnessed is the highest head the device ever signed in a state message.
	Witnessed *witness `json:"witnessed,omitempty"`
}

type chainEnd struct {
	Seq  uint64
	Head [32]byte
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func chainKey(device string, epoch uint64) []byte {
	return append(append([]byte(device), 0), u64(epoch)...)
}

func openDB(path string, readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterr.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: open %s: %w", path, err)
	}
	if readOnly {
		return db, nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketDevices, bucketChains, bucketEvents, bucketAlarms} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("ingest: init %s: %w", path, err)
	}
	return db, nil
}

// loadDevices reads every device and its chain ends.
func loadDevices(tx *bolt.Tx) (map[string]*storedDevice, error) {
	devs := map[string]*storedDevice{}
	b := tx.Bucket(bucketDevices)
	if b == nil {
		return devs, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var d deviceRecord
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("ingest: device %q: %w", k, err)
		}
		devs[string(k)] = &storedDevice{rec: d, chains: map[uint64]chainEnd{}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketChains).ForEach(func(k, v []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 || len(v) != 40 {
			return fmt.Errorf("ingest: chain key %q is malformed", k)
		}
		dev, ep := string(k[:i]), binary.BigEndian.Uint64(k[i+1:])
		if devs[dev] == nil {
			devs[dev] = &storedDevice{chains: map[uint64]chainEnd{}}
		}
		devs[dev].chains[ep] = decodeEnd(v)
		return nil
	})
	return devs, err
}

func decodeEnd(v []byte) chainEnd {
	var ce chainEnd
	if len(v) == 40 {
		ce.Seq = binary.BigEndian.Uint64(v)
		copy(ce.Head[:], v[8:])
	}
	return ce
}

// putRecords writes recs as seqs first, first+1, ... of a device epoch, refusing a key that
// holds a different record, and moves the chain end.
func putRecords(tx *bolt.Tx, device string, epoch, first uint64, recs []ledger.Record, end chainEnd) error {
	dev, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(device))
	if err != nil {
		return err
	}
	ep, err := dev.CreateBucketIfNotExists(u64(epoch))
	if err != nil {
		return err
	}
	ep.FillPercent = 1 // seqs only grow
	for i, r := range recs {
		k := u64(first + uint64(i))
		if old := ep.Get(k); old != nil {
			if !bytes.Equal(old, r) {
				return fmt.Errorf("%w: %s epoch %d seq %d", ErrConflict, device, epoch, first+uint64(i))
			}
			continue
		}
		if err := ep.Put(k, r); err != nil {
			return err
		}
	}
	v := append(u64(end.Seq), end.Head[:]...)
	return tx.Bucket(bucketChains).Put(chainKey(device, epoch), v)
}

func putDevice(tx *bolt.Tx, name string, d *deviceRecord) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketDevices).Put([]byte(name), v)
}

// scan calls fn for every stored record in (device, epoch, seq) order.
func scan(tx *bolt.Tx, fn func(device string, epoch, seq uint64, rec ledger.Record) error) error {
	evs := tx.Bucket(bucketEvents)
	if evs == nil {
		return nil
	}
	return evs.ForEachBucket(func(dk []byte) error {
		dev := evs.Bucket(dk)
		return dev.ForEachBucket(func(ek []byte) error {
			epoch := binary.BigEndian.Uint64(ek)
			return dev.Bucket(ek).ForEach(func(k, v []byte) error {
				return fn(string(dk), epoch, binary.BigEndian.Uint64(k), v)
			})
		})
	})
}

// DeviceEpoch names one chain.
type DeviceEpoch struct {
	Device string
	Epoch  uint64
}

// ScanFile calls fn for every record stored in the ingester database at path, in (device, epoch,
// seq) order, with the database opened read-only (the ingester must be stopped). The record is
// valid only during the call.
func ScanFile(path string, fn func(device string, epoch, seq uint64, rec ledger.Record) error) error {
	db, err := openDB(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error { return scan(tx, fn) })
}

// Count returns how many records the database at path holds per device epoch (read-only; the
// ingester must be stopped).
func Count(path string) (map[DeviceEpoch]uint64, error) {
	out := map[DeviceEpoch]uint64{}
	db, err := openDB(path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		evs := tx.Bucket(bucketEvents)
		if evs == nil {
			return nil
		}
		return evs.ForEachBucket(func(dk []byte) error {
			dev := evs.Bucket(dk)
			return dev.ForEachBucket(func(ek []byte) error {
				out[DeviceEpoch{string(dk), binary.BigEndian.Uint64(ek)}] = uint64(dev.Bucket(ek).Stats().KeyN)
				return nil
			})
		})
	})
	return out, err
}

// boltStore is the store in the ingester's own bbolt file: one process, one writer.
type boltStore struct {
	db *bolt.DB
}

var _ store = (*boltStore)(nil)

func openBolt(path string, readOnly bool) (*boltStore, error) {
	if !readOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
	}
	db, err := openDB(path, readOnly)
	if err != nil {
		return nil, err
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) close() error { return s.db.Close() }

func (s *boltStore) devices(context.Context) (map[string]*storedDevice, error) {
	var out map[string]*storedDevice
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = loadDevices(tx)
		return err
	})
	return out, err
}

func (s *boltStore) commit(_ context.Context, w *write) ([]batchResult, error) {
	results := make([]batchResult, len(w.batches))
	err := s.db.Update(func(tx *bolt.Tx) error {
		devs := tx.Bucket(bucketDevices)
		recs := map[string]*deviceRecord{}
		rec := func(name, institution string) (*deviceRecord, error) {
			if r := recs[name]; r != nil {
				return r, nil
			}
			r := &deviceRecord{Institution: institution}
			if v := devs.Get([]byte(name)); v != nil {
				if err := json.Unmarshal(v, r); err != nil {
					return nil, fmt.Errorf("ingest: device %q: %w", name, err)
				}
			}
			recs[name] = r
			return r, nil
		}
		for _, u := range w.updates {
			r, err := rec(u.device, u.institution)
			if err != nil {
				return err
			}
			if a := applyUpdate(r, &u); a != nil {
				if err := putAlarm(tx, a); err != nil {
					return err
				}
			}
		}
		for i := range w.batches {
			b := &w.batches[i]
			r, err := rec(b.device, b.institution)
			if err != nil {
				return err
			}
			if r.Institution != b.institution {
				results[i] = batchResult{outcome: refused,
					err: fmt.Errorf("device registered under institution %s, batch under %s", r.Institution, b.institution)}
				continue
			}
			end := decodeEnd(tx.Bucket(bucketChains).Get(chainKey(b.device, b.epoch)))
			x, err := extend(end, b, func(from, to uint64) ([]ledger.Record, error) {
				var out []ledger.Record
				ep := tx.Bucket(bucketEvents).Bucket([]byte(b.device))
				if ep != nil {
					ep = ep.Bucket(u64(b.epoch))
				}
				for seq := from; ep != nil && seq <= to; seq++ {
					if v := ep.Get(u64(seq)); v != nil {
						out = append(out, ledger.Record(v))
					}
				}
				return out, nil
			})
			if err != nil {
				return err
			}
			results[i] = x.res
			r.HeadSeen = max(r.HeadSeen, b.last())
			if x.alarm == nil {
				x.alarm = witnessStored(r.Witnessed, b, &x)
			}
			if x.alarm != nil {
				if err := putAlarm(tx, x.alarm); err != nil {
					return err
				}
			}
			if x.res.outcome == stored {
				if err := putRecords(tx, b.device, b.epoch, x.first, x.recs, x.res.end); err != nil {
					return err
				}
				r.Epoch = max(r.Epoch, b.epoch)
			}
		}
		for name, r := range recs {
			if err := putDevice(tx, name, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: commit: %w", err)
	}
	return results, nil
}

// applyUpdate applies u to a device record. It returns an alarm when u's signed head
// contradicts the head the record holds.
func applyUpdate(r *deviceRecord, u *deviceUpdate) (a *alarm) {
	if u.witness != nil {
		r.Witnessed, a = witnessHead(u.device, r.Witnessed, u.witness)
	}
	if u.seen.After(r.LastSeen) {
		r.LastSeen = u.seen
	}
	if u.state != nil && !u.seen.Before(r.StateAt) { // the state received last wins
		r.State, r.StateAt = u.state, u.seen
	}
	if u.state != nil {
		r.HeadSeen = max(r.HeadSeen, u.state.HeadSeq)
	}
	if u.applied != nil {
		if r.Applied == nil {
			r.Applied = map[string]wire.Applied{}
		}
		r.Applied[u.applied.Dataset] = *u.applied
	}
	if u.lastError != "" {
		r.LastError = u.lastError
	}
	return a
}

func putAlarm(tx *bolt.Tx, a *alarm) error {
	v, err := json.Marshal(map[string]any{"device": a.device, "epoch": a.epoch, "seq": a.seq, "kind": a.kind,
		"held": a.held, "received": a.received, "detail": a.detail, "at": time.Now()})
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketAlarms)
	n, _ := b.NextSequence()
	return b.Put(append(u64(n), a.device...), v)
}

func (s *boltStore) command(_ context.Context, _ string, c *wire.Command) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		var last uint64
		if v := tx.Bucket(bucketMeta).Get(keyLastCmd); len(v) == 8 {
			last = binary.BigEndian.Uint64(v)
		}
		c.ID = max(uint64(time.Now().UnixMicro()), last+1)
		return tx.Bucket(bucketMeta).Put(keyLastCmd, u64(c.ID))
	})
}

// dataset is a no-op: the bbolt ingester's datasets are the files of DatasetDir.
func (s *boltStore) dataset(context.Context, *dataset) error { return nil }

func (s *boltStore) scan(_ context.Context, fn func(device string, epoch, seq uint64, rec ledger.Record) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return scan(tx, fn) })
}

func (s *boltStore) alarms(context.Context) ([]alarm, error) {
	var out []alarm
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAlarms).ForEach(func(_, v []byte) error {
			var m struct {
				Device, Kind, Held, Received, Detail string
				Epoch, Seq                           uint64
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, alarm{device: m.Device, epoch: m.Epoch, seq: m.Seq, kind: m.Kind, held: m.Held, received: m.Received, detail: m.Detail})
			return nil
		})
	})
	return out, err
}

func (s *boltStore) chainEnds(_ context.Context, des []DeviceEpoch) (map[DeviceEpoch]uint64, error) {
	out := make(map[DeviceEpoch]uint64, len(des))
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, de := range des {
			out[de] = decodeEnd(tx.Bucket(bucketChains).Get(chainKey(de.Device, de.Epoch))).Seq
		}
		return nil
	})
	return out, err
}
