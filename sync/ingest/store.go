package ingest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// store is where the ingester keeps what it receives: its own bbolt file (boltStore, the
// default), or a PostgreSQL database (pgStore) that several ingesters share.
//
// A store owns the chain ends. commit reads each chain's end inside its transaction (locking the
// device against other ingesters), verifies the batch from there, stores what continues the
// chain and moves the end, all in one transaction; the ingester acks only what commit reports
// after it returned. So no ingester assumes it saw a device's previous batch.
type store interface {
	// commit applies w in one transaction and returns one result per batch of w, in order. An
	// error means nothing of w was stored (or, with errUnavailable, that it is unknown whether
	// the commit happened: retrying is safe, since every write is idempotent).
	commit(ctx context.Context, w *write) ([]batchResult, error)
	// chainEnds reads the current end (seq) of some chains without locking anything (0 for a
	// chain not begun).
	chainEnds(ctx context.Context, des []DeviceEpoch) (map[DeviceEpoch]uint64, error)
	// devices returns every device the store knows, with its chain ends.
	devices(ctx context.Context) (map[string]*storedDevice, error)
	// command assigns c the next command ID (above every ID issued before, by any ingester
	// sharing the store) and records c.
	command(ctx context.Context, institution string, c *wire.Command) error
	// dataset records that version of a dataset is published (a no-op if it is already).
	dataset(ctx context.Context, ds *dataset) error
	// alarms returns the integrity alarms recorded, oldest first.
	alarms(ctx context.Context) ([]alarm, error)
	// scan calls fn for every stored record in (device, epoch, seq) order.
	scan(ctx context.Context, fn func(device string, epoch, seq uint64, rec ledger.Record) error) error
	close() error
}

// errUnavailable wraps a store error that may pass (the database restarted, the connection
// broke): the ingester retries the commit, holding its acks, instead of stopping.
var errUnavailable = errors.New("ingest: store unavailable")

// write is what one transaction stores.
type write struct {
	batches []batchWrite
	updates []deviceUpdate
}

// batchWrite is a decoded, not yet verified, batch.
type batchWrite struct {
	device      string
	institution string
	pub         ed25519.PublicKey
	allSigs     bool
	epoch       uint64
	first       uint64
	recs        []ledger.Record
	// pre is what prepare found before the transaction; nil if it did not run (the store then
	// verifies and decodes everything inside the transaction).
	pre *prepared
}

// prepared is the work on a batch that needs no stored state, done before the transaction and
// outside any lock: the batch verified on its own (each record's header, the links between its
// records, the signature that anchors them) and the columns of its records decoded. Inside the
// transaction only the link of the first new record to the stored head remains to check.
type prepared struct {
	ok   bool      // the batch verifies on its own
	head [32]byte  // the hash of its last record, when ok
	cols []decoded // the columns of each record, when ok
}

// prepare verifies each batch on its own and decodes its columns (see prepared), on every core;
// a batch prepared before (a parked batch tried again) is left as it is.
func prepare(batches []batchWrite) {
	next := make(chan *batchWrite)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(batches)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				b.pre = prepareOne(b)
			}
		}()
	}
	for i := range batches {
		if batches[i].pre == nil {
			next <- &batches[i]
		}
	}
	close(next)
	wg.Wait()
}

func prepareOne(b *batchWrite) *prepared {
	p := &prepared{}
	if len(b.recs) == 0 || b.first == 0 || b.epoch == 0 || b.device == "" {
		return p // left to the store's own checks
	}
	prev, err := b.recs[0].Prev()
	if err != nil {
		return p
	}
	c := ledger.Chain{Pub: b.pub, Device: b.device, Epoch: b.epoch, Seq: b.first - 1, Head: prev, AllSignatures: b.allSigs, Workers: 1}
	if c.Append(b.recs) != nil {
		return p // the store verifies it again from the stored end, and names the problem
	}
	p.ok, p.head = true, c.Head
	p.cols = make([]decoded, len(b.recs))
	for i, r := range b.recs {
		p.cols[i] = decode(r)
	}
	return p
}

func (b *batchWrite) last() uint64 { return b.first + uint64(len(b.recs)) - 1 }

// deviceUpdate is what a message changes of a device record besides its chains. Zero fields
// change nothing.
type deviceUpdate struct {
	device      string
	institution string
	pub         ed25519.PublicKey // recorded when the device is registered
	seen        time.Time
	state       *wire.State
	witness     *witness // the state's head, when its signature verified with the device key
	applied     *wire.Applied
	lastError   string
}

// outcome is what commit did with a batch.
type outcome int

const (
	stored    outcome = iota // some records continued the chain and were stored
	duplicate                // every record was held already, with the same bytes
	gap                      // the batch starts beyond the chain's end: nothing stored
	refused                  // the batch does not verify: nothing stored, an alarm recorded
	conflict                 // a record differs from the one held under its seq: an alarm recorded
)

func (o outcome) String() string {
	return [...]string{"stored", "duplicate", "gap", "refused", "conflict"}[o]
}

// batchResult is what commit reports of one batch.
type batchResult struct {
	outcome outcome
	end     chainEnd // the chain's contiguous, verified end after the commit (ack this)
	stored  int      // records inserted
	err     error    // why a batch was refused or conflicts
}

// storedDevice is what a store holds of a device.
type storedDevice struct {
	rec    deviceRecord
	chains map[uint64]chainEnd
}

// alarm is an integrity alarm: a batch that does not verify, or a record that differs from the
// one stored under its (device, epoch, seq).
type alarm struct {
	device   string
	epoch    uint64
	seq      uint64
	kind     string // "conflict", "unverified" or "head" (a chain that contradicts a signed head)
	held     string // hex SHA-256 of the record held, for a conflict
	received string // hex SHA-256 of the record received
	detail   string
}

// extension is what a store must do for one batch, as extend decided it.
type extension struct {
	res   batchResult
	first uint64          // the seq of recs[0]
	recs  []ledger.Record // to insert (seqs first..), when res.outcome is stored
	cols  []decoded       // their columns, when the batch was prepared (nil: decode them)
	alarm *alarm
}

// extend decides what a batch does to a chain whose end is end. held returns the stored records
// of seqs from..to (to <= end.Seq), in order, for the part of the batch the chain holds already.
// It is the one place that decides duplicate, conflict, gap and verification for every store.
func extend(end chainEnd, b *batchWrite, held func(from, to uint64) ([]ledger.Record, error)) (extension, error) {
	x := extension{res: batchResult{end: end}}
	if b.first > end.Seq+1 {
		x.res.outcome = gap
		return x, nil
	}
	if b.first <= end.Seq {
		to := min(b.last(), end.Seq)
		old, err := held(b.first, to)
		if err != nil {
			return x, err
		}
		if uint64(len(old)) != to-b.first+1 {
			return x, fmt.Errorf("ingest: store holds %d records of %s epoch %d seqs %d..%d, its chain ends at %d",
				len(old), b.device, b.epoch, b.first, to, end.Seq)
		}
		for i, o := range old {
			if r := b.recs[i]; !bytes.Equal(o, r) {
				seq := b.first + uint64(i)
				x.res.outcome = conflict
				x.res.err = fmt.Errorf("epoch %d seq %d: a record other than the one held (held %s, received %s)",
					b.epoch, seq, wire.SHA256Hex(o)[:12], wire.SHA256Hex(r)[:12])
				x.alarm = &alarm{device: b.device, epoch: b.epoch, seq: seq, kind: "conflict",
					held: wire.SHA256Hex(o), received: wire.SHA256Hex(r), detail: x.res.err.Error()}
				return x, nil
			}
		}
		if b.last() <= end.Seq {
			x.res.outcome = duplicate
			return x, nil
		}
	}
	k := end.Seq + 1 - b.first
	recs := b.recs[k:]
	if p := b.pre; p != nil && p.ok {
		// The batch verified on its own: from the stored end, the chain holds if the first new
		// record links to the stored head (what Append would check first, the rest being done).
		if prev, err := recs[0].Prev(); err == nil && prev == end.Head {
			x.res.outcome, x.res.stored = stored, len(recs)
			x.res.end = chainEnd{Seq: b.last(), Head: p.head}
			x.first, x.recs, x.cols = end.Seq+1, recs, p.cols[k:]
			return x, nil
		}
	}
	c := ledger.Chain{Pub: b.pub, Device: b.device, Epoch: b.epoch, Seq: end.Seq, Head: end.Head, AllSignatures: b.allSigs}
	if err := c.Append(recs); err != nil {
		x.res.outcome = refused
		x.res.err = fmt.Errorf("epoch %d: %w", b.epoch, err)
		a := &alarm{device: b.device, epoch: b.epoch, seq: end.Seq + 1, kind: "unverified", detail: x.res.err.Error()}
		var p *ledger.Problem
		if errors.As(err, &p) {
			a.seq = p.Seq
			if p.Seq >= end.Seq+1 && p.Seq <= b.last() {
				a.received = wire.SHA256Hex(b.recs[p.Seq-b.first])
			}
		}
		x.alarm = a
		return x, nil
	}
	x.res.outcome, x.res.stored = stored, len(recs)
	x.res.end = chainEnd{Seq: c.Seq, Head: c.Head}
	x.first, x.recs = end.Seq+1, recs
	return x, nil
}

// decoded is the columns of a record that the central staff query (PostgreSQL).
type decoded struct {
	trainee, kind, session, method, institution string
	wall                                        time.Time
	flags                                       []string
	evidence                                    []ledger.Photo
}

// columns is the part of an event body decode reads (the rest is skipped unread).
type columns struct {
	Kind        string                   `json:"kind"`
	Time        struct{ Wall time.Time } `json:"time"`
	Method      string                   `json:"method"`
	Trainee     string                   `json:"trainee"`
	Session     string                   `json:"session"`
	Institution string                   `json:"institution"`
	Flags       []string                 `json:"flags"`
	Evidence    []ledger.Photo           `json:"evidence"`
}

// decode reads the columns of a verified record. A record whose body does not decode as an
// event (it verified, so the device signed it) keeps empty columns: the bytes are what count.
func decode(r ledger.Record) decoded {
	if d, ok := decodeFast(r.Body()); ok {
		return d
	}
	return decodeJSON(r)
}

// decodeJSON is decode by json.Unmarshal: the reference, for any body.
func decodeJSON(r ledger.Record) decoded {
	var c columns
	if err := json.Unmarshal(r.Body(), &c); err != nil {
		return decoded{kind: "undecodable", flags: []string{}}
	}
	d := decoded{trainee: c.Trainee, kind: c.Kind, session: c.Session, method: c.Method,
		institution: c.Institution, wall: c.Time.Wall, evidence: c.Evidence, flags: c.Flags}
	if d.flags == nil {
		d.flags = []string{}
	}
	return d
}

// openStore opens the store a DB setting names: a postgres:// or postgresql:// URL is a
// PostgreSQL database, anything else the path of a bbolt file.
func openStore(ctx context.Context, db string, readOnly bool) (store, error) {
	if isPostgres(db) {
		return openPG(ctx, db)
	}
	return openBolt(db, readOnly)
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// witness is a head a device signed in its state message (wire.State.VerifyHead): the device
// cannot later show a chain that is shorter, or different at that seq, without contradicting it.
type witness struct {
	Epoch uint64    `json:"epoch"`
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"` // hex SHA-256 of the record at Seq
	Seen  time.Time `json:"seen"` // when the ingester received the state
}

// witnessHead compares a newly signed head with the highest head the device signed before and
// returns the one to keep, and an alarm when the new one contradicts the old: an older epoch, a
// shorter chain, or another hash at the same seq. A head received before the one held (members
// of a group commit in any order) contradicts nothing: the higher of the two is kept.
func witnessHead(device string, held, now *witness) (*witness, *alarm) {
	higher := func() *witness {
		if now.Epoch > held.Epoch || now.Epoch == held.Epoch && now.Seq > held.Seq {
			return now
		}
		return held
	}
	switch {
	case held == nil:
		return now, nil
	case now.Seen.Before(held.Seen):
		return higher(), nil
	case now.Epoch < held.Epoch:
		return held, headAlarm(device, held, now, fmt.Sprintf("the device shows epoch %d seq %d after it signed epoch %d through seq %d (an old ledger restored?)",
			now.Epoch, now.Seq, held.Epoch, held.Seq))
	case now.Epoch > held.Epoch:
		return now, nil
	case now.Seq < held.Seq:
		return held, headAlarm(device, held, now, fmt.Sprintf("events removed: the device shows a chain ending at seq %d of epoch %d after it signed a head at seq %d",
			now.Seq, now.Epoch, held.Seq))
	case now.Seq == held.Seq && now.Hash != held.Hash:
		return held, headAlarm(device, held, now, fmt.Sprintf("the device shows another event at seq %d of epoch %d than the head it signed there", now.Seq, now.Epoch))
	}
	return now, nil
}

func headAlarm(device string, held, now *witness, detail string) *alarm {
	return &alarm{device: device, epoch: now.Epoch, seq: now.Seq, kind: alarmHead, held: held.Hash, received: now.Hash, detail: detail}
}

// alarmHead is the kind of an alarm raised when a device's chain contradicts a head it signed.
const alarmHead = "head"

// witnessStored checks the records a batch stored against the head the device signed: a record
// at the witnessed seq with another hash contradicts it (the chain was rewritten after the head
// was shown). The records are stored all the same (they verify); the alarm is the finding.
func witnessStored(w *witness, b *batchWrite, x *extension) *alarm {
	if w == nil || w.Epoch != b.epoch || x.res.outcome != stored || w.Seq < x.first || w.Seq >= x.first+uint64(len(x.recs)) {
		return nil
	}
	h := x.recs[w.Seq-x.first].Hash()
	if got := hex.EncodeToString(h[:]); got != w.Hash {
		return &alarm{device: b.device, epoch: b.epoch, seq: w.Seq, kind: alarmHead, held: w.Hash, received: got,
			detail: fmt.Sprintf("the chain stored now differs at seq %d from the head the device signed there", w.Seq)}
	}
	return nil
}
