package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// Seqd is a record with its seq, copied out of the database.
type Seqd struct {
	Seq    uint64
	Record ledger.Record
}

// Range returns up to max records of the current epoch from seq from on, in order, copied.
func (s *Store) Range(from uint64, max int) ([]Seqd, error) {
	var out []Seqd
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(from)); k != nil && len(out) < max; k, v = c.Next() {
			out = append(out, Seqd{binary.BigEndian.Uint64(k), bytes.Clone(v)})
		}
		return nil
	})
	return out, err
}

// Scan calls fn for every record from seq from on, in order. The record is valid only during the
// call. fn returning ErrStop ends the scan without error.
func (s *Store) Scan(from uint64, fn func(seq uint64, r ledger.Record) error) error {
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
			if err := fn(binary.BigEndian.Uint64(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// ErrStop ends a Scan early.
var ErrStop = errors.New("store: stop scan")

// Recent returns the events whose wall time is at or after since, in seq order, scanning back from
// the head. It stops at the first older event after slack more (clocks jump), so it reads only the
// tail of a long ledger.
func (s *Store) Recent(since time.Time) ([]ledger.Event, error) {
	const slack = 1000
	var out []ledger.Event
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		older := 0
		for k, v := c.Last(); k != nil && older < slack; k, v = c.Prev() {
			e, err := ledger.Record(v).Event()
			if err != nil {
				return fmt.Errorf("store: seq %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if e.Time.Wall.Before(since) {
				older++
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// RecordedKey reports the seq of the event that recorded a device's reading key (drivers.Reading
// Key), if this epoch has one: a terminal's resend of a reading already recorded.
func (s *Store) RecordedKey(key string) (seq uint64, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); len(v) == 8 {
			seq, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	return seq, ok, err
}

// Bindings returns the vouchers checked in on this box and the institution each is bound to.
func (s *Store) Bindings() (map[string]string, error) {
	m := map[string]string{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBindings).ForEach(func(k, v []byte) error {
			m[string(k)] = string(v)
			return nil
		})
	})
	return m, err
}

// Summary describes a verified ledger.
type Summary struct {
	Device string
	Epoch  uint64
	Events uint64
	Head   [32]byte
	// Receipt is the latest receipt of the central system the ledger keeps (nil if none). When it
	// is of this epoch, Verify checked the ledger against it: events after its seq could still have
	// been removed without a trace on the box; only the central system can tell.
	Receipt *Receipt
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	AllSignatures bool
	// Progress, if set, is called with the number of events checked so far, every batch.
	Progress func(done, total uint64)
}

// Verify checks the whole ledger: every record decoded and linked to the one before by its hash,
// seqs contiguous from 1, the chain authenticated by pub (see ledger.Chain), and the chain not
// shorter than, nor different at, the central system's latest receipt. A failure is a
// *ledger.Problem naming the first bad seq (its Err a *RemovedAfterReceipt for the receipt).
func (s *Store) Verify(pub ed25519.PublicKey, opt VerifyOptions) (Summary, error) {
	const batch = 4096
	chain := ledger.Chain{Pub: pub, AllSignatures: opt.AllSignatures}
	var sum Summary
	err := s.view(func(tx *bolt.Tx) error {
		total := uint64(tx.Bucket(bucketEvents).Stats().KeyN)
		c := tx.Bucket(bucketEvents).Cursor()
		recs := make([]ledger.Record, 0, batch)
		flush := func() error {
			if err := chain.Append(recs); err != nil {
				return err
			}
			recs = recs[:0]
			if opt.Progress != nil {
				opt.Progress(chain.Seq, total)
			}
			return nil
		}
		next := uint64(1)
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if seq := binary.BigEndian.Uint64(k); seq != next {
				if err := flush(); err != nil {
					return err
				}
				return &ledger.Problem{Seq: next, Err: fmt.Errorf("missing: the next stored seq is %d", seq)}
			}
			next++
			recs = append(recs, v) // valid for the whole transaction
			if len(recs) == batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		var err error
		if sum.Receipt, err = checkReceipt(tx, chain.Epoch, chain.Seq); err != nil {
			return err
		}
		m := tx.Bucket(bucketMeta)
		if head := binary.BigEndian.Uint64(m.Get(keyHeadSeq)); head != chain.Seq {
			return &ledger.Problem{Seq: chain.Seq + 1, Err: fmt.Errorf("missing: the store's head is seq %d but the events end at %d", head, chain.Seq)}
		}
		if !bytes.Equal(m.Get(keyHeadHash), chain.Head[:]) {
			return &ledger.Problem{Seq: chain.Seq, Err: errors.New("the store's recorded head hash differs from the last event's")}
		}
		return nil
	})
	sum.Device, sum.Epoch, sum.Events, sum.Head = chain.Device, chain.Epoch, chain.Seq, chain.Head
	return sum, err
}

// Snapshot writes a consistent copy of the whole database file to w, while appends go on (one
// read transaction). It is how a running daemon is backed up or verified without stopping it.
func (s *Store) Snapshot(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
