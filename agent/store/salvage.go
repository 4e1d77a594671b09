package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// Salvaged is what a damaged ledger file still proves: the records of one epoch that verify,
// linked from seq 1 without a gap, found by reading the raw bytes.
type Salvaged struct {
	Device string
	Epoch  uint64
	// Records are seq 1..len(Records), each signed by the device key and linked to the one
	// before by its hash.
	Records []ledger.Record
	// Signed counts the distinct records of any epoch whose signature verified, linked or not
	// (bbolt's free pages keep old copies of pages; they count once).
	Signed int
	// BrokeAt is the first seq of Epoch that could not be recovered or did not link, 0 if the
	// chain ran to the last record found.
	BrokeAt uint64
	// Last is the highest seq of Epoch found with a valid signature, past any break.
	Last uint64
}

// bodyStart is how every record's body begins (ledger: "prev" is the body's first field).
var bodyStart = []byte(`{"prev":"`)

// Salvage reads a ledger file without bbolt, for when bbolt cannot be trusted with it (a damaged
// page, a truncated file): every record signed by pub is found in the raw bytes (a record is a
// 64-byte signature followed by its JSON body, stored contiguously in a leaf or overflow page),
// and the newest epoch's chain is rebuilt from seq 1 for as long as its links hold. It never
// panics on any input.
func Salvage(path string, pub ed25519.PublicKey) (Salvaged, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Salvaged{}, fmt.Errorf("store: salvage: %w", err)
	}
	return salvage(raw, pub), nil
}

func salvage(raw []byte, pub ed25519.PublicKey) Salvaged {
	type found struct {
		rec ledger.Record
		ev  ledger.Event
	}
	byHash := map[[32]byte]found{}
	for off := 0; ; {
		i := bytes.Index(raw[off:], bodyStart)
		if i < 0 {
			break
		}
		at := off + i
		off = at + 1
		if at < ledger.SigSize {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw[at:]))
		var body json.RawMessage
		if dec.Decode(&body) != nil {
			continue
		}
		end := at + int(dec.InputOffset())
		rec := ledger.Record(slices.Clone(raw[at-ledger.SigSize : end]))
		if rec.Verify(pub) != nil {
			continue
		}
		ev, err := rec.Event()
		if err != nil {
			continue
		}
		byHash[rec.Hash()] = found{rec, ev}
	}
	out := Salvaged{Signed: len(byHash)}
	// The newest epoch is the one the damaged file was appending to.
	bySeq := map[uint64][]found{}
	for _, f := range byHash {
		if f.ev.Epoch > out.Epoch {
			out.Epoch, out.Device = f.ev.Epoch, f.ev.Device
		}
	}
	for _, f := range byHash {
		if f.ev.Epoch == out.Epoch {
			bySeq[f.ev.Seq] = append(bySeq[f.ev.Seq], f)
			out.Last = max(out.Last, f.ev.Seq)
		}
	}
	prev := ledger.ZeroHash
	for seq := uint64(1); ; seq++ {
		var next *found
		for i, f := range bySeq[seq] { // two signed records of one seq: the one that links
			if p, err := f.rec.Prev(); err == nil && p == prev {
				next = &bySeq[seq][i]
				break
			}
		}
		if next == nil {
			if seq <= out.Last {
				out.BrokeAt = seq
			}
			return out
		}
		out.Records = append(out.Records, next.rec)
		prev = next.rec.Hash()
	}
}

// String says what was salvaged, for the new epoch's alarm and the log.
func (sv Salvaged) String() string {
	switch {
	case sv.Signed == 0:
		return "no signed event could be read from it"
	case sv.BrokeAt == 0:
		return fmt.Sprintf("salvaged %d events of epoch %d, all that verify (seq 1-%d)", len(sv.Records), sv.Epoch, len(sv.Records))
	}
	return fmt.Sprintf("salvaged %d events of epoch %d (seq 1-%d verify); the damage is at seq %d (the last signed event found is seq %d)",
		len(sv.Records), sv.Epoch, len(sv.Records), sv.BrokeAt, sv.Last)
}

// keepSalvaged stores the records salvaged from a damaged file, byte for byte as signed.
func (s *Store) keepSalvaged(sv *Salvaged) error {
	if len(sv.Records) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSalvaged)
		if err != nil {
			return err
		}
		for i, r := range sv.Records {
			if err := b.Put(append(u64(sv.Epoch), u64(uint64(i+1))...), r); err != nil {
				return err
			}
		}
		return keepCertCounters(tx, sv.Records)
	})
}

// SalvagedRecords calls fn for each record salvaged from damaged files into this store, by epoch
// and seq. They are the old epochs' events that still verify: export them with the rest.
func (s *Store) SalvagedRecords(fn func(epoch, seq uint64, rec ledger.Record) error) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSalvaged)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 16 {
				return nil
			}
			return fn(binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:]), slices.Clone(v))
		})
	})
}

// SalvagedEpoch is one old epoch whose records were salvaged into this store: seqs 1..Last, of
// which the central system has acknowledged 1..Acked (AckSalvaged).
type SalvagedEpoch struct {
	Epoch, Last, Acked uint64
}

var bucketSalvageAcked = []byte("salvage_acked") // epoch -> the seq the central acknowledged through

// SalvagedEpochs lists the epochs salvaged into this store, oldest first.
func (s *Store) SalvagedEpochs() ([]SalvagedEpoch, error) {
	var out []SalvagedEpoch
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSalvaged)
		if b == nil {
			return nil
		}
		acked := tx.Bucket(bucketSalvageAcked)
		return b.ForEach(func(k, _ []byte) error {
			if len(k) != 16 {
				return nil
			}
			epoch, seq := binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:])
			if n := len(out); n == 0 || out[n-1].Epoch != epoch {
				out = append(out, SalvagedEpoch{Epoch: epoch})
				if acked != nil {
					if v := acked.Get(k[:8]); len(v) == 8 {
						out[len(out)-1].Acked = binary.BigEndian.Uint64(v)
					}
				}
			}
			out[len(out)-1].Last = max(out[len(out)-1].Last, seq)
			return nil
		})
	})
	return out, err
}

// SalvagedRange returns at most max salvaged records of epoch from seq from on, in seq order.
func (s *Store) SalvagedRange(epoch, from uint64, max int) ([]Seqd, error) {
	var out []Seqd
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSalvaged)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(append(u64(epoch), u64(from)...)); k != nil && len(out) < max; k, v = c.Next() {
			if len(k) != 16 || binary.BigEndian.Uint64(k[:8]) != epoch {
				break
			}
			out = append(out, Seqd{Seq: binary.BigEndian.Uint64(k[8:]), Record: slices.Clone(v)})
		}
		return nil
	})
	return out, err
}

// AckSalvaged records that the central system holds epoch's salvaged records through seq
// through (cumulative: a lower one changes nothing).
func (s *Store) AckSalvaged(epoch, through uint64) error {
	if s.readOnly {
		return ErrReadOnly
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSalvageAcked)
		if err != nil {
			return err
		}
		if v := b.Get(u64(epoch)); len(v) == 8 && binary.BigEndian.Uint64(v) >= through {
			return nil
		}
		return b.Put(u64(epoch), u64(through))
	})
}
