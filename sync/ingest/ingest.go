// Package ingest is the reference central consumer of the kaoqin MQTT contract (sync/wire,
// docs/mqtt.md): the executable form of what the central system does, used by the tests and the
// demo (`kaoqin ingest`).
//
// It subscribes to the events, state and applied topics of every device (optionally as a shared
// subscription, or for some institutions only), verifies each device's hash chain and
// signatures with ledger.Chain against the device's registered public key, and stores the
// records under the unique key (device, epoch, seq), in the same transaction that moves the
// chain's verified end: in its own bbolt file (the default), or in a PostgreSQL database that
// several ingesters share as members of one shared subscription (Config.DB is then a
// postgres:// URL; see docs/central.md). Only after that commit does it publish the cumulative
// ack (the highest contiguous seq and the hash of that event, signed with the central key: the
// box's receipt). A batch that starts beyond the chain's end (its predecessor
// is late, or went to another member) is held in memory and tried again with every commit
// for GapTimeout; when the gap does not fill, the ingester sends the device a signed resync
// command. A record that differs from the one held under its seq, or a batch that does not
// verify, is an integrity alarm, recorded in the store; so is a chain that contradicts the
// highest head the device ever signed in its state (shorter, or different at that seq). It keeps
// each device's state (online, backlog, dataset versions) and sends published datasets, signed with the central key,
// to every device that reports an older version.
//
// While it runs it serves its status on a unix socket (Config.Socket); Status reads that socket,
// or the database itself when the ingester is stopped.
package ingest

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/internal/mqttc"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Ingester is a running central consumer. Create it with New, run it with Run, close it with Close.
type Ingester struct {
	cfg  Config
	log  *slog.Logger
	st   store
	key  ed25519.PrivateKey
	conn *mqttc.Conn

	msgs   chan mqtt.Message // from the handler to the worker
	reload chan struct{}

	// Owned by the worker goroutine.
	devices  map[string]*device
	keys     map[string]ed25519.PublicKey
	keyInst  map[string]string // device -> the institution its key is filed under (<dir>/<institution>/<device>.pub)
	keysRead time.Time
	unknown  map[string]time.Time // devices without a key, when last logged
	datasets map[string]*dataset
	parked   []parkedBatch

	statusMu sync.Mutex
	status   []DeviceStatus
	statusAt time.Time // when the worker last made the snapshot
}

// parkedBatch is a batch that arrived before its predecessor, tried again with every commit.
type parkedBatch struct {
	b     batchWrite
	since time.Time
}

// maxParked bounds the batches held beyond a gap; beyond it they are dropped (devices resend).
const maxParked = 4096

// device is the worker's view of one device: a cache of the store, which holds the truth (other
// ingesters sharing the store move its chains too).
type device struct {
	name   string
	rec    deviceRecord
	chains map[uint64]chainEnd // per epoch

	gapSince  time.Time // when a batch beyond the chain's end was first seen, zero if none
	gapEpoch  uint64    // the epoch of that batch
	gapLast   uint64    // the last seq of the batches held beyond it: filled once the chain reaches it
	resyncAt  time.Time // when the last resync was sent
	resyncGap time.Duration
	sent      map[string]sentDataset // dataset -> what was last sent
	refused   string                 // the last refusal reason logged, to log each once
}

type sentDataset struct {
	version uint64
	at      time.Time
}

// New checks cfg, opens the store (the bbolt file, or connects to PostgreSQL and applies its
// migrations, within ConnectTimeout) and reads the keys. It does not connect to the broker. log
// is used as given (the caller adds the component's attributes).
func New(cfg Config, log *slog.Logger) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	key, err := ledger.LoadPrivateKey(cfg.CentralKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ingest: central key: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(cfg.ConnectTimeout, 10*time.Second))
	defer cancel()
	st, err := openStore(ctx, cfg.DB, false)
	if err != nil {
		return nil, err
	}
	in := &Ingester{cfg: cfg, log: log, st: st, key: key,
		msgs: make(chan mqtt.Message, queueSize), reload: make(chan struct{}, 1),
		devices: map[string]*device{}, keys: map[string]ed25519.PublicKey{}, keyInst: map[string]string{}, datasets: map[string]*dataset{},
		unknown: map[string]time.Time{}}
	devs, err := st.devices(ctx)
	if err != nil {
		st.close()
		return nil, err
	}
	for name, sd := range devs {
		in.devices[name] = &device{name: name, rec: sd.rec, chains: sd.chains, sent: map[string]sentDataset{}}
	}
	in.readKeys()
	if err := in.loadDatasets(ctx); err != nil {
		st.close()
		return nil, err
	}
	in.publishStatus()
	in.conn, err = mqttc.New(mqttc.Options{
		Broker: cfg.Broker, ClientID: cfg.ClientID, Username: cfg.Username, Password: cfg.Password,
		TLS: cfg.tls(), CleanSession: cfg.CleanSession,
		KeepAlive: cfg.KeepAlive, PingTimeout: cfg.PingTimeout, ConnectTimeout: cfg.ConnectTimeout,
		WriteTimeout: cfg.WriteTimeout, BackoffMin: cfg.BackoffMin, BackoffMax: cfg.BackoffMax,
		Filters: wire.CentralFilters(cfg.ShareGroup, cfg.Institutions...),
		Handler: in.handle,
	}, in.log)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return in, nil
}

// Run is New, Run and Close: the ingester until ctx is done.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	in, err := New(cfg, log)
	if err != nil {
		return err
	}
	err = in.Run(ctx)
	return errors.Join(err, in.Close())
}

// Close closes the store.
func (in *Ingester) Close() error { return in.st.close() }

// Run serves the status socket, connects, and stores events until ctx is done. It returns nil
// after a clean stop, or an error if the store failed a commit for good (a PostgreSQL store
// that is unreachable is retried until ctx is done, holding the acks) or the socket cannot be
// served.
func (in *Ingester) Run(ctx context.Context) error {
	srv, err := in.serveStatus()
	if err != nil {
		return err
	}
	connCtx, stopConn := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.conn.Run(connCtx)
	}()
	err = in.work(ctx)
	stopConn()
	wg.Wait()
	in.publishStatus() // the worker is done: the last snapshot is exact
	srv.Close()
	os.Remove(in.cfg.Socket)
	return err
}

// handle runs on paho's router goroutine: it hands the message to the worker and never blocks.
func (in *Ingester) handle(m mqtt.Message) {
	select {
	case in.msgs <- m:
	default:
		in.log.Warn("ingest: queue full; message dropped (the device resends)", "topic", m.Topic())
		m.Ack()
	}
}

// work is the one goroutine that owns the device state and starts the store writes. While one
// transaction commits (in a goroutine of its own: one at a time), work decodes, verifies and
// decodes the columns of the messages that arrive for the next one (up to maxRun messages),
// and starts it as soon as the first is done and acknowledged.
func (in *Ingester) work(ctx context.Context) error {
	tick := time.NewTicker(max(in.cfg.GapTimeout/4, 50*time.Millisecond))
	defer tick.Stop()
	poll := time.NewTicker(parkedPoll)
	defer poll.Stop()
	var cur, next *run // the run committing, and the one gathering behind it
	var curDone <-chan struct{}
	begin := func(r *run) {
		cur, curDone = nil, nil
		if in.start(ctx, r) {
			cur, curDone = r, r.done
		}
	}
	for {
		msgs := in.msgs
		if next != nil && len(next.msgs) >= maxRun {
			msgs = nil // the next run is full: the queue waits
		}
		select {
		case <-ctx.Done():
			if cur != nil {
				<-cur.done // stopping: nothing more acked, the devices resend
			}
			return nil
		case m := <-msgs:
			r := next
			if r == nil {
				r = in.newRun()
			}
			batch := []mqtt.Message{m}
		more:
			for len(r.msgs)+len(batch) < maxRun {
				select {
				case m := <-in.msgs:
					batch = append(batch, m)
				default:
					break more
				}
			}
			in.gather(r, batch)
			if cur == nil {
				next = nil
				begin(r)
			} else {
				next = r
			}
		case <-curDone:
			if err := in.finish(ctx, cur); err != nil {
				return err
			}
			cur, curDone = nil, nil
			if next != nil {
				r := next
				next = nil
				begin(r)
			}
		case <-poll.C:
			if len(in.parked) > 0 && cur == nil && next == nil {
				begin(in.newRun()) // commits only if another member stored a predecessor
			}
		case <-tick.C:
			in.checkGaps(ctx, time.Now())
			in.sendDatasets(time.Now())
			if time.Since(in.statusAt) > statusEvery {
				in.publishStatus()
			}
		case <-in.reload:
			in.readKeys()
			if err := in.loadDatasets(ctx); err != nil {
				in.log.Error("ingest: reload datasets", "err", err)
			}
			in.sendDatasets(time.Now())
		}
	}
}

// maxRun bounds the messages of one transaction.
const maxRun = 256

// parkedPoll is how often an idle worker with batches parked beyond a gap reads their chain
// ends (one query, no lock) to see whether another member of the group stored a predecessor.
const parkedPoll = 25 * time.Millisecond

// seenEvery is how often a device's last contact is written while it sends.
const seenEvery = 5 * time.Second

// queueSize bounds the messages waiting for the worker. The broker bounds what it sends before
// the PUBACKs (mosquitto's max_inflight_messages); the devices' windows bound it too.
const queueSize = 8192

// pending collects the writes of one transaction.
type pending struct {
	w       write
	updates map[string]int // device -> index in w.updates
	parked  int            // w.batches[parked:] are parked batches tried again
	keyOf   func(device string) ed25519.PublicKey
}

func (p *pending) update(d *device, now time.Time) *deviceUpdate {
	i, ok := p.updates[d.name]
	if !ok {
		i = len(p.w.updates)
		p.updates[d.name] = i
		p.w.updates = append(p.w.updates, deviceUpdate{device: d.name, institution: d.rec.Institution, pub: p.keyOf(d.name), seen: now})
	}
	return &p.w.updates[i]
}

// run is one transaction's messages, from their decoding to their acks.
type run struct {
	msgs    []mqtt.Message
	p       *pending
	now     time.Time
	retry   []parkedBatch // parked batches tried again: p.w.batches[p.parked:]
	keep    []parkedBatch // parked batches still ahead of a gap
	t0      time.Time
	results []batchResult
	err     error
	done    chan struct{} // closed when the commit returned
}

func (in *Ingester) newRun() *run {
	return &run{now: time.Now(), p: &pending{updates: map[string]int{}, keyOf: in.key4}}
}

// gather decodes messages into r and prepares their batches: verified on their own and their
// columns decoded, on every core, before the transaction and outside its locks.
func (in *Ingester) gather(r *run, msgs []mqtt.Message) {
	from := len(r.p.w.batches)
	r.msgs = append(r.msgs, msgs...)
	for _, m := range msgs {
		in.message(m, r.p, r.now)
	}
	prepare(r.p.w.batches[from:])
}

// start adds to r the parked batches whose chains now reach them and commits r in a goroutine
// of its own. It reports false if r had nothing to commit (r is then done: its messages acked).
func (in *Ingester) start(ctx context.Context, r *run) bool {
	r.p.parked = len(r.p.w.batches)
	r.retry, r.keep = in.readyParked(ctx, r.now)
	for _, pb := range r.retry {
		r.p.w.batches = append(r.p.w.batches, pb.b)
	}
	if len(r.p.w.batches) == 0 && len(r.p.w.updates) == 0 {
		in.parked = r.keep
		for _, m := range r.msgs {
			m.Ack()
		}
		return false
	}
	r.t0, r.done = time.Now(), make(chan struct{})
	go func() {
		defer close(r.done)
		r.results, r.err = in.commit(ctx, &r.p.w)
	}()
	return true
}

// finish takes in the outcome of r's commit: the device state, the batches parked beyond a
// gap, the acks to the devices (only now, after the commit) and the messages' acks to the
// broker.
func (in *Ingester) finish(ctx context.Context, r *run) error {
	p, results, err, now, retry, keep, msgs := r.p, r.results, r.err, r.now, r.retry, r.keep, r.msgs
	in.log.Debug("ingest: commit", "messages", len(msgs), "batches", len(p.w.batches), "retried", len(retry),
		"updates", len(p.w.updates), "took", time.Since(r.t0), "queued", len(in.msgs), "err", err)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopping: nothing acked, the devices resend
		}
		return err
	}
	acks := map[DeviceEpoch]chainEnd{}
	parked := keep
	for i, r := range results {
		b := &p.w.batches[i]
		d := in.devices[b.device]
		de := DeviceEpoch{b.device, b.epoch}
		if r.end.Seq > d.chains[b.epoch].Seq {
			d.chains[b.epoch] = r.end
		}
		switch r.outcome {
		case stored, duplicate:
			if r.end.Seq > acks[de].Seq {
				acks[de] = r.end
			}
			if r.outcome == stored {
				if b.epoch != d.gapEpoch || r.end.Seq >= d.gapLast {
					d.gapSince, d.resyncGap = time.Time{}, 0
				}
				d.rec.Epoch = max(d.rec.Epoch, b.epoch)
			}
		case gap:
			since := now
			if i >= p.parked {
				since = retry[i-p.parked].since
			} else if d.gapSince.IsZero() {
				d.gapSince, d.gapEpoch, d.gapLast = now, b.epoch, b.last()
				in.log.Debug("ingest: gap", "device", d.name, "epoch", b.epoch, "have_through", r.end.Seq, "got_first", b.first)
			}
			if b.epoch == d.gapEpoch {
				d.gapLast = max(d.gapLast, b.last())
			}
			if now.Sub(since) < in.cfg.GapTimeout && len(parked) < maxParked {
				parked = append(parked, parkedBatch{b: *b, since: since})
			}
		case refused, conflict:
			in.refuse(d, "integrity alarm: batch "+r.outcome.String(), r.err)
		}
	}
	in.parked = parked
	for _, u := range p.w.updates {
		if d := in.devices[u.device]; d != nil {
			if a := applyUpdate(&d.rec, &u); a != nil {
				in.refuse(d, "integrity alarm: head", errors.New(a.detail))
			}
		}
	}
	for de, end := range acks {
		in.sendAck(de, end)
	}
	for _, m := range msgs {
		m.Ack()
	}
	if now.Sub(in.statusAt) > statusEvery {
		in.publishStatus()
	}
	return nil
}

// statusEvery is how often the worker refreshes the status snapshot while it commits (a
// snapshot costs a walk over every device; at a province's scale, not once per commit).
const statusEvery = 250 * time.Millisecond

// readyParked splits the parked batches into those whose chain now reaches them (another
// member of the group stored the predecessor: try them in this commit) and those still ahead of
// a gap (kept, without locking anything), dropping those parked for GapTimeout (the device
// resends; the gap timer asks it to).
func (in *Ingester) readyParked(ctx context.Context, now time.Time) (retry, keep []parkedBatch) {
	if len(in.parked) == 0 {
		return nil, nil
	}
	var des []DeviceEpoch
	for _, pb := range in.parked {
		des = append(des, DeviceEpoch{pb.b.device, pb.b.epoch})
	}
	ends, err := in.st.chainEnds(ctx, des)
	for _, pb := range in.parked {
		switch {
		case now.Sub(pb.since) >= in.cfg.GapTimeout:
		case err != nil || ends[DeviceEpoch{pb.b.device, pb.b.epoch}]+1 >= pb.b.first:
			retry = append(retry, pb)
		default:
			keep = append(keep, pb)
		}
	}
	return retry, keep
}

// commit commits w, trying again while the store is unavailable (holding every ack) until ctx
// is done.
func (in *Ingester) commit(ctx context.Context, w *write) ([]batchResult, error) {
	wait := 100 * time.Millisecond
	for {
		results, err := in.st.commit(ctx, w)
		if err == nil || !errors.Is(err, errUnavailable) || ctx.Err() != nil {
			return results, err
		}
		in.log.Warn("ingest: store unavailable; holding the acks and trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// message decodes one message into p.
func (in *Ingester) message(m mqtt.Message, p *pending, now time.Time) {
	t, err := wire.ParseTopic(m.Topic())
	if err != nil {
		in.log.Warn("ingest: message refused", "topic", m.Topic(), "reason", err)
		return
	}
	d := in.device(t, now)
	if d == nil {
		return
	}
	if now.Sub(d.rec.LastSeen) >= seenEvery {
		p.update(d, now) // the last contact, recorded at most every seenEvery per device
	}
	switch t.Kind {
	case wire.KindEvents:
		b, err := wire.DecodeBatch(m.Payload())
		if err == nil && b.Device != t.Device {
			err = fmt.Errorf("batch of device %q on the topic of %q", b.Device, t.Device)
		}
		if err != nil {
			in.refuse(d, "batch refused", err)
			p.update(d, now).lastError = d.rec.LastError
			return
		}
		p.w.batches = append(p.w.batches, batchWrite{device: d.name, institution: d.rec.Institution, pub: in.key4(d.name),
			allSigs: in.cfg.AllSignatures, epoch: b.Epoch, first: b.FirstSeq, recs: b.Events})
	case wire.KindState:
		s, err := wire.DecodeState(m.Payload())
		if err == nil && s.Device != t.Device {
			err = fmt.Errorf("state of device %q on the topic of %q", s.Device, t.Device)
		}
		if err != nil {
			in.refuse(d, "state refused", err)
			p.update(d, now).lastError = d.rec.LastError
			return
		}
		u := p.update(d, now)
		u.state = s
		if s.HeadHash != "" {
			if err := s.VerifyHead(in.key4(d.name)); err != nil {
				in.refuse(d, "state head refused", err)
				u.lastError = d.rec.LastError
			} else {
				u.witness = &witness{Epoch: s.Epoch, Seq: s.HeadSeq, Hash: s.HeadHash, Seen: now}
			}
		}
	case wire.KindEvidence:
		in.evidence(d, t.Arg, m.Payload())
	case wire.KindApplied:
		a, err := wire.DecodeApplied(m.Payload())
		if err != nil {
			in.refuse(d, "applied refused", err)
			p.update(d, now).lastError = d.rec.LastError
			return
		}
		p.update(d, now).applied = a
		if a.Status == wire.StatusRefused {
			in.log.Warn("ingest: device refused a dataset", "device", d.name, "dataset", a.Dataset, "version", a.Version, "reason", a.Reason)
		} else {
			in.log.Info("ingest: device applied a dataset", "device", d.name, "dataset", a.Dataset, "version", a.Version)
		}
	}
}

// device returns the device a topic names, registering it on first sight. A device without a
// public key, under another institution than its key is filed under, or seen before under another
// institution, is refused (nil).
func (in *Ingester) device(t wire.Topic, now time.Time) *device {
	d := in.devices[t.Device]
	if d == nil {
		if in.key4(t.Device) == nil {
			in.refuseUnknown(t, now, "ingest: messages from an unregistered device refused (no key in device_keys_dir)")
			return nil
		}
		if inst := in.keyInst[t.Device]; inst != "" && inst != t.Institution {
			in.refuseUnknown(t, now, "ingest: messages refused: the device's key is filed under institution "+inst)
			return nil
		}
		d = &device{name: t.Device, rec: deviceRecord{Institution: t.Institution}, chains: map[uint64]chainEnd{},
			sent: map[string]sentDataset{}}
		in.devices[t.Device] = d
	}
	if inst := in.keyInst[t.Device]; inst != "" && inst != t.Institution {
		in.refuse(d, "message refused", fmt.Errorf("device key filed under institution %s, message on %s", inst, t.String()))
		return nil
	}
	if d.rec.Institution != t.Institution {
		in.refuse(d, "message refused", fmt.Errorf("device registered under institution %s, message on %s", d.rec.Institution, t.String()))
		return nil
	}
	return d
}

// refuseUnknown logs, at most once a minute per device, why a device not registered is refused.
func (in *Ingester) refuseUnknown(t wire.Topic, now time.Time, msg string) {
	if last, ok := in.unknown[t.Device]; !ok || now.Sub(last) > time.Minute {
		in.log.Warn(msg, "device", t.Device, "topic", t.String())
		in.unknown[t.Device] = now
	}
}

// key4 returns a device's public key, reading the keys directory again (at most every second)
// for a device not seen before.
func (in *Ingester) key4(name string) ed25519.PublicKey {
	if k := in.keys[name]; k != nil {
		return k
	}
	if time.Since(in.keysRead) > time.Second {
		in.readKeys()
	}
	return in.keys[name]
}

// readKeys reads the keys not read yet: <dir>/<device>.pub, and <dir>/<institution>/<device>.pub,
// which also pins the device to its institution (a device whose key is at the top is registered
// under the institution of its first message).
func (in *Ingester) readKeys() {
	in.keysRead = time.Now()
	top, err := filepath.Glob(filepath.Join(in.cfg.DeviceKeysDir, "*.pub"))
	if err != nil {
		in.log.Error("ingest: device keys", "err", err)
		return
	}
	filed, _ := filepath.Glob(filepath.Join(in.cfg.DeviceKeysDir, "*", "*.pub"))
	for _, f := range append(filed, top...) { // a key filed under its institution first
		name := strings.TrimSuffix(filepath.Base(f), ".pub")
		inst := ""
		if dir := filepath.Dir(f); dir != filepath.Clean(in.cfg.DeviceKeysDir) {
			inst = filepath.Base(dir)
		}
		if in.keys[name] != nil {
			if inst != "" && in.keyInst[name] != inst {
				in.log.Error("ingest: device key filed twice; the first is kept", "file", f, "kept_institution", in.keyInst[name])
			}
			continue // a device's key does not change under it
		}
		if inst != "" && wire.CheckName(inst) != nil {
			in.log.Error("ingest: device key refused: not an institution's folder", "file", f)
			continue
		}
		k, err := ledger.LoadPublicKey(f)
		if err != nil {
			in.log.Error("ingest: device key refused", "file", f, "err", err)
			continue
		}
		in.keys[name] = k
		if inst != "" {
			in.keyInst[name] = inst
		}
	}
}

// refuse records why a device's message was refused (logged once per distinct reason).
func (in *Ingester) refuse(d *device, what string, err error) {
	msg := err.Error()
	if d.refused != msg {
		in.log.Warn("ingest: "+what, "device", d.name, "reason", msg)
	}
	d.refused = msg
	d.rec.LastError = fmt.Sprintf("%s %s: %s", time.Now().Format(time.RFC3339), what, msg)
}

// sendAck publishes a cumulative ack without waiting for the broker: signed with the central key,
// it names the hash of the event at its seq, and the device keeps it as its receipt.
func (in *Ingester) sendAck(de DeviceEpoch, end chainEnd) {
	d := in.devices[de.Device]
	acks := []wire.Ack{{Device: de.Device, Epoch: de.Epoch, AckedThrough: end.Seq, Hash: hex.EncodeToString(end.Head[:]), Time: time.Now().UTC()}}
	if in.cfg.MangleAck != nil {
		acks = in.cfg.MangleAck(de.Device, acks[0])
	}
	for _, a := range acks {
		p, err := wire.SealAck(&a, in.key)
		if err != nil {
			in.log.Error("ingest: ack", "err", err)
			continue
		}
		in.conn.Publish(wire.AckTopic(d.rec.Institution, d.name), 1, false, p)
	}
}

// checkGaps asks devices whose gap did not fill to resync, with doubling intervals. The chain
// ends are read from the store first: another member of the group may have filled the gap.
func (in *Ingester) checkGaps(ctx context.Context, now time.Time) {
	var due []*device
	var des []DeviceEpoch
	for _, d := range in.devices {
		if d.gapSince.IsZero() || now.Sub(d.gapSince) < in.cfg.GapTimeout {
			continue
		}
		if d.resyncGap != 0 && now.Sub(d.resyncAt) < d.resyncGap {
			continue
		}
		due, des = append(due, d), append(des, DeviceEpoch{d.name, d.gapEpoch})
	}
	if len(due) == 0 {
		return
	}
	ends, err := in.st.chainEnds(ctx, des)
	if err != nil {
		in.log.Warn("ingest: gaps: read chain ends", "err", err)
		return
	}
	for _, d := range due {
		epoch := d.gapEpoch
		end := ends[DeviceEpoch{d.name, epoch}]
		if end > d.chains[epoch].Seq {
			d.chains[epoch] = chainEnd{Seq: end} // head unknown here: the cache is for status only
		}
		if end >= d.gapLast {
			d.gapSince, d.resyncGap = time.Time{}, 0 // filled, by this member or another
			continue
		}
		if d.resyncGap == 0 {
			d.resyncGap = in.cfg.GapTimeout
		} else {
			d.resyncGap = min(2*d.resyncGap, time.Minute)
		}
		from := end + 1
		if err := in.command(ctx, d, &wire.Command{Cmd: wire.CmdResync, Epoch: epoch, FromSeq: from}); err != nil {
			in.log.Error("ingest: resync", "device", d.name, "err", err)
			continue
		}
		d.resyncAt = now
		in.log.Info("ingest: gap did not fill; resync asked", "device", d.name, "epoch", epoch, "from_seq", from)
	}
}

// command signs and sends a command to a device. The store assigns the command ID (the clock in
// microseconds, bumped to increase) and records it.
func (in *Ingester) command(ctx context.Context, d *device, c *wire.Command) error {
	c.Device, c.Issued = d.name, time.Now()
	if err := in.st.command(ctx, d.rec.Institution, c); err != nil {
		return err
	}
	p, err := wire.SealCommand(c, in.key)
	if err != nil {
		return err
	}
	in.conn.Publish(wire.CmdTopic(d.rec.Institution, d.name), 1, false, p)
	return nil
}
