// Package ingest is the reference central consumer of the kaoqin MQTT contract (sync/wire,
// docs/mqtt.md): the executable form of what the central system does, used by the tests and the
// demo (`kaoqin ingest`).
//
// It subscribes to the events, state and applied topics of every device (optionally as a shared
// subscription, or for some institutions only), verifies each device's hash chain and
// signatures with ledger.Chain against the device's registered public key, and stores the
// records in its own bbolt file under the unique key (device, epoch, seq), in the same
// transaction that moves the chain's verified end. Only after that commit does it publish the
// cumulative ack (the highest contiguous seq) and acknowledge the MQTT messages (manual PUBACK).
// A batch that does not continue the chain is not stored; when such a gap does not fill within
// GapTimeout the ingester sends the device a signed resync command. It keeps each device's state
// (online, backlog, dataset versions) and sends published datasets, signed with the central key,
// to every device that reports an older version.
//
// While it runs it serves its status on a unix socket (Config.Socket); Status reads that socket,
// or the database itself when the ingester is stopped.
package ingest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/internal/mqttc"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Ingester is a running central consumer. Create it with New, run it with Run, close it with Close.
type Ingester struct {
	cfg  Config
	log  *slog.Logger
	db   *bolt.DB
	key  ed25519.PrivateKey
	conn *mqttc.Conn

	msgs   chan mqtt.Message // from the handler to the worker
	reload chan struct{}

	// Owned by the worker goroutine.
	devices  map[string]*device
	keys     map[string]ed25519.PublicKey
	keysRead time.Time
	unknown  map[string]time.Time // devices without a key, when last logged
	datasets map[string]*dataset
	lastCmd  uint64

	statusMu sync.Mutex
	status   []DeviceStatus
}

// device is the worker's view of one device.
type device struct {
	name   string
	rec    deviceRecord
	chains map[uint64]chainEnd // per epoch
	dirty  bool                // rec changed since the last commit

	gapSince  time.Time // when a batch beyond the chain's end was first seen, zero if none
	gapEpoch  uint64    // the epoch of that batch
	resyncAt  time.Time // when the last resync was sent
	resyncGap time.Duration
	sent      map[string]sentDataset // dataset -> what was last sent
	refused   string                 // the last refusal reason logged, to log each once
}

type sentDataset struct {
	version uint64
	at      time.Time
}

// New checks cfg, opens the database and reads the keys. It does not connect. log is used as
// given (the caller adds the component's attributes).
func New(cfg Config, log *slog.Logger) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	key, err := ledger.LoadPrivateKey(cfg.CentralKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ingest: central key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DB), 0o750); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	db, err := openDB(cfg.DB, false)
	if err != nil {
		return nil, err
	}
	in := &Ingester{cfg: cfg, log: log, db: db, key: key,
		msgs: make(chan mqtt.Message, 1024), reload: make(chan struct{}, 1),
		devices: map[string]*device{}, keys: map[string]ed25519.PublicKey{}, datasets: map[string]*dataset{},
		unknown: map[string]time.Time{}}
	err = db.View(func(tx *bolt.Tx) error {
		recs, chains, err := loadDevices(tx)
		if err != nil {
			return err
		}
		for name, r := range recs {
			in.devices[name] = &device{name: name, rec: *r, chains: chains[name], sent: map[string]sentDataset{}}
			if in.devices[name].chains == nil {
				in.devices[name].chains = map[uint64]chainEnd{}
			}
		}
		if v := tx.Bucket(bucketMeta).Get(keyLastCmd); len(v) == 8 {
			in.lastCmd = beUint64(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	in.readKeys()
	if err := in.loadDatasets(); err != nil {
		db.Close()
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
		db.Close()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return in, nil
}

func beUint64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
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

// Close closes the database.
func (in *Ingester) Close() error { return in.db.Close() }

// Run serves the status socket, connects, and stores events until ctx is done. It returns nil
// after a clean stop, or an error if the database failed a commit or the socket cannot be served.
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

// work is the one goroutine that owns the database writes and the device state.
func (in *Ingester) work(ctx context.Context) error {
	tick := time.NewTicker(max(in.cfg.GapTimeout/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-in.msgs:
			batch := []mqtt.Message{m}
		more:
			for len(batch) < 256 {
				select {
				case m := <-in.msgs:
					batch = append(batch, m)
				default:
					break more
				}
			}
			if err := in.process(batch); err != nil {
				return err
			}
		case <-tick.C:
			in.checkGaps(time.Now())
			in.sendDatasets(time.Now())
		case <-in.reload:
			in.readKeys()
			if err := in.loadDatasets(); err != nil {
				in.log.Error("ingest: reload datasets", "err", err)
			}
			in.sendDatasets(time.Now())
		}
	}
}

// write collects what one transaction stores.
type write struct {
	puts []put
	acks map[DeviceEpoch]uint64
}

type put struct {
	device string
	epoch  uint64
	first  uint64
	recs   []ledger.Record
	end    chainEnd
}

// process handles messages in one transaction: verify, store, commit, then ack.
func (in *Ingester) process(msgs []mqtt.Message) error {
	now := time.Now()
	w := &write{acks: map[DeviceEpoch]uint64{}}
	// Chain ends as this transaction moves them; applied to the devices after the commit.
	ends := map[DeviceEpoch]chainEnd{}
	for _, m := range msgs {
		in.message(m, w, ends, now)
	}
	var dirty []*device
	for _, d := range in.devices {
		if d.dirty {
			dirty = append(dirty, d)
		}
	}
	if len(w.puts) > 0 || len(dirty) > 0 {
		err := in.db.Update(func(tx *bolt.Tx) error {
			for _, p := range w.puts {
				if err := putRecords(tx, p.device, p.epoch, p.first, p.recs, p.end); err != nil {
					return err
				}
			}
			for _, d := range dirty {
				if err := putDevice(tx, d.name, &d.rec); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, ErrConflict) {
			// Cannot happen with verified chains; refuse the whole transaction and let devices resend.
			in.log.Error("ingest: transaction refused", "err", err)
			for _, m := range msgs {
				m.Ack()
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("ingest: commit: %w", err)
		}
		for _, d := range dirty {
			d.dirty = false
		}
	}
	for de, end := range ends {
		in.devices[de.Device].chains[de.Epoch] = end
	}
	for de, seq := range w.acks {
		in.sendAck(de, seq)
	}
	for _, m := range msgs {
		m.Ack()
	}
	in.publishStatus()
	return nil
}

// message verifies one message into w.
func (in *Ingester) message(m mqtt.Message, w *write, ends map[DeviceEpoch]chainEnd, now time.Time) {
	t, err := wire.ParseTopic(m.Topic())
	if err != nil {
		in.log.Warn("ingest: message refused", "topic", m.Topic(), "reason", err)
		return
	}
	d := in.device(t, now)
	if d == nil {
		return
	}
	switch t.Kind {
	case wire.KindEvents:
		b, err := wire.DecodeBatch(m.Payload())
		if err == nil && b.Device != t.Device {
			err = fmt.Errorf("batch of device %q on the topic of %q", b.Device, t.Device)
		}
		if err != nil {
			in.refuse(d, "batch refused", err)
			return
		}
		in.batch(d, b, w, ends, now)
	case wire.KindState:
		s, err := wire.DecodeState(m.Payload())
		if err == nil && s.Device != t.Device {
			err = fmt.Errorf("state of device %q on the topic of %q", s.Device, t.Device)
		}
		if err != nil {
			in.refuse(d, "state refused", err)
			return
		}
		d.rec.State, d.dirty = s, true
	case wire.KindEvidence:
		in.evidence(d, t.Arg, m.Payload())
	case wire.KindApplied:
		a, err := wire.DecodeApplied(m.Payload())
		if err != nil {
			in.refuse(d, "applied refused", err)
			return
		}
		if d.rec.Applied == nil {
			d.rec.Applied = map[string]wire.Applied{}
		}
		d.rec.Applied[a.Dataset], d.dirty = *a, true
		if a.Status == wire.StatusRefused {
			in.log.Warn("ingest: device refused a dataset", "device", d.name, "dataset", a.Dataset, "version", a.Version, "reason", a.Reason)
		} else {
			in.log.Info("ingest: device applied a dataset", "device", d.name, "dataset", a.Dataset, "version", a.Version)
		}
	}
}

// device returns the device a topic names, registering it on first sight. A device without a
// public key, or seen under another institution, is refused (nil).
func (in *Ingester) device(t wire.Topic, now time.Time) *device {
	d := in.devices[t.Device]
	if d == nil {
		if in.key4(t.Device) == nil {
			if last, ok := in.unknown[t.Device]; !ok || now.Sub(last) > time.Minute {
				in.log.Warn("ingest: messages from an unregistered device refused (no key in device_keys_dir)", "device", t.Device, "topic", t.String())
				in.unknown[t.Device] = now
			}
			return nil
		}
		d = &device{name: t.Device, rec: deviceRecord{Institution: t.Institution}, chains: map[uint64]chainEnd{},
			sent: map[string]sentDataset{}, dirty: true}
		in.devices[t.Device] = d
	}
	if d.rec.Institution != t.Institution {
		in.refuse(d, "message refused", fmt.Errorf("device registered under institution %s, message on %s", d.rec.Institution, t.String()))
		return nil
	}
	d.rec.LastSeen, d.dirty = now, true
	return d
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

func (in *Ingester) readKeys() {
	in.keysRead = time.Now()
	files, err := filepath.Glob(filepath.Join(in.cfg.DeviceKeysDir, "*.pub"))
	if err != nil {
		in.log.Error("ingest: device keys", "err", err)
		return
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".pub")
		k, err := ledger.LoadPublicKey(f)
		if err != nil {
			in.log.Error("ingest: device key refused", "file", f, "err", err)
			continue
		}
		in.keys[name] = k
	}
}

// refuse records why a device's message was refused (logged once per distinct reason).
func (in *Ingester) refuse(d *device, what string, err error) {
	msg := err.Error()
	if d.refused != msg {
		in.log.Warn("ingest: "+what, "device", d.name, "reason", msg)
	}
	d.refused = msg
	d.rec.LastError, d.dirty = fmt.Sprintf("%s %s: %s", time.Now().Format(time.RFC3339), what, msg), true
}

// batch verifies a batch against the device's chain and queues what continues it.
func (in *Ingester) batch(d *device, b *wire.Batch, w *write, ends map[DeviceEpoch]chainEnd, now time.Time) {
	pub := in.key4(d.name)
	de := DeviceEpoch{d.name, b.Epoch}
	end, ok := ends[de]
	if !ok {
		end = d.chains[b.Epoch]
	}
	if b.LastSeq <= end.Seq { // all held already: ack again, the device may have gone back
		w.acks[de] = end.Seq
		return
	}
	if b.FirstSeq > end.Seq+1 {
		if d.gapSince.IsZero() {
			d.gapSince, d.gapEpoch = now, b.Epoch
			in.log.Info("ingest: gap", "device", d.name, "epoch", b.Epoch, "have_through", end.Seq, "got_first", b.FirstSeq)
		}
		return
	}
	recs := b.Events[end.Seq+1-b.FirstSeq:]
	c := ledger.Chain{Pub: pub, Device: d.name, Epoch: b.Epoch, Seq: end.Seq, Head: end.Head, AllSignatures: in.cfg.AllSignatures}
	if err := c.Append(recs); err != nil {
		in.refuse(d, "batch does not verify", fmt.Errorf("epoch %d: %w", b.Epoch, err))
		return
	}
	newEnd := chainEnd{Seq: c.Seq, Head: c.Head}
	w.puts = append(w.puts, put{device: d.name, epoch: b.Epoch, first: end.Seq + 1, recs: recs, end: newEnd})
	ends[de] = newEnd
	w.acks[de] = newEnd.Seq
	d.gapSince, d.resyncGap = time.Time{}, 0
	if b.Epoch > d.rec.Epoch {
		d.rec.Epoch, d.dirty = b.Epoch, true
	}
}

// sendAck publishes a cumulative ack without waiting for the broker.
func (in *Ingester) sendAck(de DeviceEpoch, seq uint64) {
	d := in.devices[de.Device]
	acks := []wire.Ack{{Epoch: de.Epoch, AckedThrough: seq}}
	if in.cfg.MangleAck != nil {
		acks = in.cfg.MangleAck(de.Device, acks[0])
	}
	for _, a := range acks {
		p, err := a.Encode()
		if err != nil {
			in.log.Error("ingest: ack", "err", err)
			continue
		}
		in.conn.Publish(wire.AckTopic(d.rec.Institution, d.name), 1, false, p)
	}
}

// checkGaps asks devices whose gap did not fill to resync, with doubling intervals.
func (in *Ingester) checkGaps(now time.Time) {
	for _, d := range in.devices {
		if d.gapSince.IsZero() || now.Sub(d.gapSince) < in.cfg.GapTimeout {
			continue
		}
		if d.resyncGap == 0 {
			d.resyncGap = in.cfg.GapTimeout
		} else if now.Sub(d.resyncAt) < d.resyncGap {
			continue
		} else {
			d.resyncGap = min(2*d.resyncGap, time.Minute)
		}
		epoch := d.gapEpoch
		from := d.chains[epoch].Seq + 1
		if err := in.command(d, &wire.Command{Cmd: wire.CmdResync, Epoch: epoch, FromSeq: from}); err != nil {
			in.log.Error("ingest: resync", "device", d.name, "err", err)
			continue
		}
		d.resyncAt = now
		in.log.Info("ingest: gap did not fill; resync asked", "device", d.name, "epoch", epoch, "from_seq", from)
	}
}

// command signs and sends a command to a device. Command IDs are the clock in microseconds,
// bumped to increase, and persisted.
func (in *Ingester) command(d *device, c *wire.Command) error {
	id := max(uint64(time.Now().UnixMicro()), in.lastCmd+1)
	if err := in.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyLastCmd, u64(id)) }); err != nil {
		return err
	}
	in.lastCmd = id
	c.ID, c.Device, c.Issued = id, d.name, time.Now()
	p, err := wire.SealCommand(c, in.key)
	if err != nil {
		return err
	}
	in.conn.Publish(wire.CmdTopic(d.rec.Institution, d.name), 1, false, p)
	return nil
}
