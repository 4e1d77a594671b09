package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
//
// The key (device, epoch, seq) is unique: a record is written only if its key is absent, in the
// same transaction that moves the chain's end, and the ack goes out after that commit.

var (
	bucketMeta    = []byte("meta")
	bucketDevices = []byte("devices")
	bucketChains  = []byte("chains")
	bucketEvents  = []byte("events")
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
		for _, b := range [][]byte{bucketMeta, bucketDevices, bucketChains, bucketEvents} {
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
func loadDevices(tx *bolt.Tx) (map[string]*deviceRecord, map[string]map[uint64]chainEnd, error) {
	devs := map[string]*deviceRecord{}
	chains := map[string]map[uint64]chainEnd{}
	b := tx.Bucket(bucketDevices)
	if b == nil {
		return devs, chains, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var d deviceRecord
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("ingest: device %q: %w", k, err)
		}
		devs[string(k)] = &d
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = tx.Bucket(bucketChains).ForEach(func(k, v []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 || len(v) != 40 {
			return fmt.Errorf("ingest: chain key %q is malformed", k)
		}
		dev, ep := string(k[:i]), binary.BigEndian.Uint64(k[i+1:])
		if chains[dev] == nil {
			chains[dev] = map[uint64]chainEnd{}
		}
		var ce chainEnd
		ce.Seq = binary.BigEndian.Uint64(v)
		copy(ce.Head[:], v[8:])
		chains[dev][ep] = ce
		return nil
	})
	return devs, chains, err
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
