package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// keyReceipt holds the latest signed receipt of the central system (JSON of Receipt), written in
// the transaction that moves the acknowledged cursor.
var keyReceipt = []byte("receipt")

// ErrReceiptMismatch is a receipt whose hash is not the hash of this ledger's event at its seq:
// the central system holds another chain than this box. The cursor does not move.
var ErrReceiptMismatch = errors.New("store: the receipt's hash differs from this ledger's event at its seq")

// Receipt is the central system's signed acknowledgement, as the box keeps it: the central holds
// every event of Epoch through Seq, and the event at Seq hashes to Hash. Signed is the down/ack
// payload as received (a signed envelope the bundle and an inspector can check with the central
// key); the store checks Hash against its own event, not the signature (the uplink verified it).
type Receipt struct {
	Device string    `json:"device"`
	Epoch  uint64    `json:"epoch"`
	Seq    uint64    `json:"seq"`
	Hash   [32]byte  `json:"hash"`
	Time   time.Time `json:"time"`
	Signed []byte    `json:"signed"`
}

// AckReceipt advances the acknowledged cursor to r.Seq and keeps r as the latest receipt, in one
// transaction. Like Ack, a receipt at or below the cursor changes nothing, one for another epoch
// returns ErrStaleEpoch and one beyond the head ErrAckBeyondHead; one whose hash is not the hash
// of the event at r.Seq returns ErrReceiptMismatch and changes nothing.
func (s *Store) AckReceipt(r Receipt) (advanced bool, err error) {
	if err := s.ackable(r.Epoch, r.Seq); err != nil {
		return false, err
	}
	if r.Seq == 0 {
		return false, errors.New("store: receipt for seq 0")
	}
	v, err := json.Marshal(&r)
	if err != nil {
		return false, fmt.Errorf("store: receipt: %w", err)
	}
	var mismatch error
	err = s.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if binary.BigEndian.Uint64(m.Get(keyAcked)) >= r.Seq {
			return nil
		}
		rec := tx.Bucket(bucketEvents).Get(u64(r.Seq))
		if rec == nil || ledger.Record(rec).Hash() != r.Hash {
			mismatch = fmt.Errorf("%w: seq %d", ErrReceiptMismatch, r.Seq)
			return nil
		}
		advanced = true
		if err := m.Put(keyAcked, u64(r.Seq)); err != nil {
			return err
		}
		return m.Put(keyReceipt, v)
	})
	if err != nil {
		s.mu.Lock()
		s.fatal = fmt.Errorf("%w: ack: %v", ErrFatal, err)
		s.mu.Unlock()
		return false, s.fatal
	}
	return advanced, mismatch
}

// LatestReceipt returns the latest receipt the box keeps (ok false if it has none).
func (s *Store) LatestReceipt() (r Receipt, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		var e error
		r, ok, e = receiptIn(tx)
		return e
	})
	return r, ok, err
}

func receiptIn(tx *bolt.Tx) (Receipt, bool, error) {
	var r Receipt
	v := tx.Bucket(bucketMeta).Get(keyReceipt)
	if v == nil {
		return r, false, nil
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("store: the kept receipt is unreadable: %w", err)
	}
	return r, true, nil
}

// RemovedAfterReceipt is the Problem Verify reports when the ledger contradicts its receipt: it
// ends before the receipt's seq, or its event at that seq has another hash.
type RemovedAfterReceipt struct {
	Receipt Receipt
	Have    uint64 // the last seq the ledger holds
	// OtherEpoch is the ledger's epoch when it is not the receipt's.
	OtherEpoch uint64
}

func (e *RemovedAfterReceipt) Error() string {
	if e.OtherEpoch != 0 {
		return fmt.Sprintf("events removed after seq %d was acknowledged: the receipt is for epoch %d, the ledger's events are of epoch %d",
			e.Receipt.Seq, e.Receipt.Epoch, e.OtherEpoch)
	}
	if e.Have < e.Receipt.Seq {
		return fmt.Sprintf("events removed after seq %d was acknowledged: the central system acknowledged epoch %d through seq %d (hash %x) on %s; the ledger ends at seq %d",
			e.Receipt.Seq, e.Receipt.Epoch, e.Receipt.Seq, e.Receipt.Hash, e.Receipt.Time.UTC().Format(time.RFC3339), e.Have)
	}
	return fmt.Sprintf("events removed after seq %d was acknowledged: the central system acknowledged seq %d with hash %x on %s; the ledger's event at that seq has another hash",
		e.Receipt.Seq, e.Receipt.Seq, e.Receipt.Hash, e.Receipt.Time.UTC().Format(time.RFC3339))
}

// checkReceipt compares the verified chain (ending at seq have) with the kept receipt.
func checkReceipt(tx *bolt.Tx, epoch, have uint64) (*Receipt, error) {
	r, ok, err := receiptIn(tx)
	if err != nil || !ok {
		return nil, err
	}
	if have > 0 && r.Epoch != epoch {
		// A file holds receipts of its own epoch only (a new epoch starts a new file).
		return &r, &ledger.Problem{Seq: 1, Err: &RemovedAfterReceipt{Receipt: r, Have: have, OtherEpoch: epoch}}
	}
	bad := &ledger.Problem{Seq: min(have, r.Seq) + 1, Err: &RemovedAfterReceipt{Receipt: r, Have: have}}
	if have < r.Seq {
		return &r, bad
	}
	if rec := tx.Bucket(bucketEvents).Get(u64(r.Seq)); rec == nil || !bytes.Equal(sum(rec), r.Hash[:]) {
		bad.Seq = r.Seq
		return &r, bad
	}
	return &r, nil
}

func sum(rec []byte) []byte { h := ledger.Record(rec).Hash(); return h[:] }

// WitnessHead signs the current head with the device key: msg builds the bytes to sign from the
// epoch, seq and hash (wire.HeadMessage). The central system keeps the highest head a device has
// signed, so that a later chain that is shorter, or different at that seq, contradicts the box.
func (s *Store) WitnessHead(msg func(epoch, seq uint64, hash [32]byte) []byte) (epoch, seq uint64, hash [32]byte, sig []byte, err error) {
	s.mu.Lock()
	epoch, seq, hash = s.epoch, s.headSeq, s.headHash
	s.mu.Unlock()
	if len(s.cfg.Key) != ed25519.PrivateKeySize {
		return epoch, seq, hash, nil, errors.New("store: no device key to sign the head with")
	}
	return epoch, seq, hash, ed25519.Sign(s.cfg.Key, msg(epoch, seq, hash)), nil
}
