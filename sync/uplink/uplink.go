// Package uplink carries the agent's ledger to the central system over MQTT and brings signed
// datasets and commands back (the contract is sync/wire, documented in docs/mqtt.md).
//
// # Events up
//
// One sender goroutine reads the unacknowledged part of the ledger, (acked, acked+N], in seq
// order and publishes it in batches at QoS 1, keeping at most Window batches unacknowledged. The
// cursor advances only when the central system's application ack (down/ack, sent after its
// commit and signed with the central key) arrives, through store.AckReceipt, which keeps the
// signed ack as the box's receipt in the same transaction; an ack that is unsigned, signed by
// another key, or names another hash than the box's event at its seq moves nothing (counted in
// Stats.RefusedAcks, logged at most once a minute). A PUBACK or a completed paho token proves
// nothing and is never waited for. Every online state carries the head signed with the device
// key, for the central system to hold the box to. The sender goes back to acked+1 and sends everything again (go-back-N) when
// the connection comes up, when the central asks (a signed resync command), and when acks stall
// for AckTimeout. Stale, duplicate and reordered acks are harmless (acks are cumulative and
// only ever move the cursor forward); an ack beyond anything that could have been sent is
// ignored and recorded in the ledger as an alarm (ledger.AlarmAckBeyond).
//
// # Datasets and commands down
//
// A dataset (today the roster) arrives as a signed manifest and chunks on down/data/{dataset}.
// The manifest is verified with the central key and staged in the store, each chunk is checked
// against the manifest's hash for it and staged, and once all are there the whole is checked
// (size, SHA-256, signature again) and applied through the store's gate (store.ApplyDataset:
// strict decoding, validation, newer than the active version, not emptying the room), which
// records a dataset event, applied or refused, in the same transaction. The result is reported on
// up/applied. A bad signature, a corrupt or missing chunk, another device's manifest or a
// malformed roster is refused with a dataset event and the active dataset stays; an older
// version is a replay, recorded and not reported; an equal one is a no-op. Staging survives a restart: a
// complete staging is swapped in at start, an incomplete one waits for the rest (a resent
// manifest resumes it) until DatasetTimeout. Commands on down/cmd are signed too and carry an ID
// that must increase (store.AcceptCommand), so a replayed command does nothing.
//
// # Connection
//
// The client ID is fixed per device, subscriptions are made in OnConnect, handlers only hand
// messages off, reconnection uses exponential backoff with jitter, and no token is waited on
// without a timeout (sync/internal/mqttc). A retained state message (birth) is published on
// every connect and refreshed every StateInterval; the last will, also retained, says offline.
package uplink

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/internal/mqttc"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Uplink is the agent's MQTT link. Create it with New and run it with Run, once.
type Uplink struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	central ed25519.PublicKey
	conn    *mqttc.Conn
	epoch   uint64

	eventsTopic, stateTopic, appliedTopic string

	inbox      inbox             // acks, connection changes and resyncs, from paho's goroutines
	down       chan mqtt.Message // datasets and commands, for the downlink goroutine
	stateReq   chan struct{}     // the downlink asks the sender to refresh the state message
	upDown     chan struct{}     // the connection came up: the downlink sends its pending reports
	alarms     alarmLimiter
	refusedLog logLimiter // refused acks are logged at most once per refusedLogEvery

	stats struct {
		batches, resent, acks, staleAcks, beyondAcks, goBacks, refusedAcks atomic.Uint64
		evidenceSent, evidenceAcks                                         atomic.Uint64
	}
	ran atomic.Bool
}

// New checks cfg and prepares the link for st; it does not connect. log is used as given (the
// caller adds the component's attributes).
func New(cfg Config, st *store.Store, log *slog.Logger) (*Uplink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Device != st.Device() {
		return nil, fmt.Errorf("uplink: config device %q, the store belongs to %q", cfg.Device, st.Device())
	}
	central, err := ledger.LoadPublicKey(cfg.CentralKeyFile)
	if err != nil {
		return nil, fmt.Errorf("uplink: central key: %w", err)
	}
	u := &Uplink{
		cfg: cfg, st: st, log: log, central: central, epoch: st.Epoch(),
		eventsTopic:  wire.EventsTopic(cfg.Institution, cfg.Device),
		stateTopic:   wire.StateTopic(cfg.Institution, cfg.Device),
		appliedTopic: wire.AppliedTopic(cfg.Institution, cfg.Device),
		down:         make(chan mqtt.Message, 256),
		stateReq:     make(chan struct{}, 1),
		upDown:       make(chan struct{}, 1),
		inbox:        inbox{notify: make(chan struct{}, 1)},
	}
	will, err := (&wire.State{Device: cfg.Device}).Encode()
	if err != nil {
		return nil, fmt.Errorf("uplink: will: %w", err)
	}
	u.conn, err = mqttc.New(mqttc.Options{
		Broker: cfg.Broker, ClientID: cfg.ClientID, Username: cfg.Username, Password: cfg.Password,
		TLS: cfg.tls(), CleanSession: true,
		KeepAlive: cfg.KeepAlive, PingTimeout: cfg.PingTimeout, ConnectTimeout: cfg.ConnectTimeout,
		WriteTimeout: cfg.WriteTimeout, BackoffMin: cfg.BackoffMin, BackoffMax: cfg.BackoffMax,
		Will:    &mqttc.Will{Topic: u.stateTopic, Payload: will, Retained: true},
		Filters: []string{wire.DownFilter(cfg.Institution, cfg.Device)},
		Handler: u.handle,
		OnUp: func() {
			u.inbox.connected(true)
			select {
			case u.upDown <- struct{}{}:
			default:
			}
		},
		OnDown: func(error) { u.inbox.connected(false) },
	}, log)
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	return u, nil
}

// Stats are counters for tests and the inspector.
type Stats struct {
	Batches    uint64 // batches published, first sends and resends
	Resent     uint64 // of which resends after a go-back-N
	Acks       uint64 // acks received and accepted
	StaleAcks  uint64 // acks for another epoch or at or below the cursor
	BeyondAcks uint64 // acks beyond what was sent, refused with an alarm
	GoBacks    uint64 // times the sender went back to acked+1
	// EvidenceSent counts evidence photos published (sends and resends), EvidenceAcks the
	// central system's acks of them.
	EvidenceSent, EvidenceAcks uint64
	// RefusedAcks are acks that moved nothing: unsigned, signed by another key, for another
	// device, or whose hash is not the hash of this ledger's event at their seq.
	RefusedAcks uint64
}

// Stats returns the counters so far.
func (u *Uplink) Stats() Stats {
	return Stats{u.stats.batches.Load(), u.stats.resent.Load(), u.stats.acks.Load(), u.stats.staleAcks.Load(),
		u.stats.beyondAcks.Load(), u.stats.goBacks.Load(), u.stats.evidenceSent.Load(), u.stats.evidenceAcks.Load(),
		u.stats.refusedAcks.Load()}
}

// Run connects and keeps the ledger flowing until ctx is done, then flushes for at most
// FlushTimeout (unacknowledged events are still sent and acks awaited), publishes the offline
// state and disconnects. It returns nil after a clean stop, or an error wrapping store.ErrFatal
// when the store failed a commit (the daemon must exit).
func (u *Uplink) Run(ctx context.Context) error {
	if u.ran.Swap(true) {
		return errors.New("uplink: Run called twice")
	}
	connCtx, stopConn := context.WithCancel(context.Background())
	downCtx, stopDown := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		u.conn.Run(connCtx)
	}()
	go func() {
		defer wg.Done()
		u.downlink(downCtx)
	}()
	err := u.send(ctx)
	stopDown()
	if err == nil {
		u.publishOffline()
	}
	stopConn()
	wg.Wait()
	return err
}

// publishOffline replaces the retained birth with the offline state before a clean disconnect
// (the will covers unclean ones).
func (u *Uplink) publishOffline() {
	if !u.conn.Up() {
		return
	}
	p, err := (&wire.State{Device: u.cfg.Device}).Encode()
	if err == nil {
		err = u.conn.PublishWait(context.Background(), u.stateTopic, true, p, time.Second)
	}
	if err != nil {
		u.log.Warn("uplink: offline state not published", "err", err)
	}
}

// handle receives every message on paho's router goroutine. It decodes acks (cheap) and hands
// datasets and commands to the downlink goroutine; it never blocks.
func (u *Uplink) handle(m mqtt.Message) {
	t, err := wire.ParseTopic(m.Topic())
	if err != nil || t.Institution != u.cfg.Institution || t.Device != u.cfg.Device {
		u.log.Warn("uplink: message on an unexpected topic ignored", "topic", m.Topic())
		m.Ack()
		return
	}
	switch t.Kind {
	case wire.KindAck:
		a, err := wire.DecodeAck(m.Payload(), u.central)
		m.Ack()
		if err == nil && a.Device != u.cfg.Device {
			err = fmt.Errorf("uplink: ack for device %q", a.Device)
		}
		if err != nil {
			u.refuseAck(err)
			return
		}
		u.inbox.ack(*a)
	case wire.KindEvidenceAck:
		a, err := wire.DecodeEvidenceAck(m.Payload())
		m.Ack()
		if err != nil {
			u.log.Warn("uplink: evidence ack refused", "reason", err)
			return
		}
		u.inbox.evidenceAck(a.SHA256)
	case wire.KindData, wire.KindCmd:
		select {
		case u.down <- m:
		default:
			u.log.Warn("uplink: downlink queue full; message dropped (the central resends)", "topic", m.Topic())
			m.Ack()
		}
	default:
		m.Ack()
	}
}

// inbox is what paho's goroutines hand the sender: a mutex, a few fields, and a signal.
type inbox struct {
	mu      sync.Mutex
	acks    []wire.Ack
	evAcks  []string // hex SHA-256 of evidence photos the central system stored
	resyncs []uint64 // from_seq of each resync command of the current epoch
	up      bool
	gen     uint64 // incremented each time the connection comes up
	notify  chan struct{}
}

const maxPendingAcks = 4096

func (in *inbox) signal() {
	select {
	case in.notify <- struct{}{}:
	default:
	}
}

func (in *inbox) ack(a wire.Ack) {
	in.mu.Lock()
	if len(in.acks) < maxPendingAcks {
		in.acks = append(in.acks, a)
	}
	in.mu.Unlock()
	in.signal()
}

func (in *inbox) evidenceAck(sha string) {
	in.mu.Lock()
	if len(in.evAcks) < maxPendingAcks {
		in.evAcks = append(in.evAcks, sha)
	}
	in.mu.Unlock()
	in.signal()
}

// takeEvidenceAcks empties the evidence acks.
func (in *inbox) takeEvidenceAcks() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	a := in.evAcks
	in.evAcks = nil
	return a
}

func (in *inbox) resync(from uint64) {
	in.mu.Lock()
	in.resyncs = append(in.resyncs, from)
	in.mu.Unlock()
	in.signal()
}

func (in *inbox) connected(up bool) {
	in.mu.Lock()
	in.up = up
	if up {
		in.gen++
	}
	in.mu.Unlock()
	in.signal()
}

// take empties the inbox.
func (in *inbox) take() (acks []wire.Ack, resyncs []uint64, up bool, gen uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	acks, resyncs = in.acks, in.resyncs
	in.acks, in.resyncs = nil, nil
	return acks, resyncs, in.up, in.gen
}

// logLimiter lets one log line through per refusedLogEvery and counts the ones it held back.
type logLimiter struct {
	mu   sync.Mutex
	last time.Time
	held int
}

const refusedLogEvery = time.Minute

// refuseAck counts an ack that moves nothing and logs it, at most once per refusedLogEvery (a
// flood of forged acks must not flood the log).
func (u *Uplink) refuseAck(err error) {
	u.stats.refusedAcks.Add(1)
	l := &u.refusedLog
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && time.Since(l.last) < refusedLogEvery {
		l.held++
		return
	}
	u.log.Warn("uplink: ack refused; the cursor does not move", "reason", err, "refused_since_last_line", l.held)
	l.last, l.held = time.Now(), 0
}

// alarmLimiter keeps a misbehaving central from filling the ledger with alarms: the same alarm
// text is recorded at most once per interval.
type alarmLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const alarmInterval = 10 * time.Minute

// alarm appends an alarm event unless the same one was appended within alarmInterval. It returns
// an error only when the store failed (ErrFatal).
func (u *Uplink) alarm(reason ledger.Reason, key, note string) error {
	u.alarms.mu.Lock()
	if u.alarms.last == nil {
		u.alarms.last = map[string]time.Time{}
	}
	k := string(reason) + "\x00" + key
	if t, ok := u.alarms.last[k]; ok && time.Since(t) < alarmInterval {
		u.alarms.mu.Unlock()
		return nil
	}
	u.alarms.last[k] = time.Now()
	u.alarms.mu.Unlock()
	_, err := u.st.Append(ledger.Event{Kind: ledger.Alarm, Reason: reason, Note: note, Time: clock.Now()})
	if err != nil && !errors.Is(err, store.ErrFatal) {
		u.log.Error("uplink: alarm not recorded", "reason", reason, "err", err)
		return nil
	}
	return err
}

// state builds the birth message.
func (u *Uplink) state(acked uint64) *wire.State {
	// The head is witnessed: signed with the device key, so that the central system can hold the
	// box to it (a later, shorter or different chain contradicts what the box signed).
	var hash string
	_, head, _, sig, err := u.st.WitnessHead(func(epoch, seq uint64, h [32]byte) []byte {
		hash = hex.EncodeToString(h[:])
		return wire.HeadMessage(u.cfg.Device, epoch, seq, hash)
	})
	s := &wire.State{Device: u.cfg.Device, Online: true, Epoch: u.epoch, HeadSeq: head, AckedThrough: acked,
		Backlog: head - acked, Agent: u.cfg.AgentVersion}
	if err == nil && head > 0 {
		s.HeadHash, s.HeadSig = hash, sig
	}
	if head > acked {
		if recs, err := u.st.Range(acked+1, 1); err == nil && len(recs) == 1 {
			if e, err := recs[0].Record.Event(); err == nil {
				s.OldestUnackedAge = max(0, time.Since(e.Time.Wall).Seconds())
			}
		}
	}
	if u.cfg.DiskPath != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(u.cfg.DiskPath, &fs); err == nil {
			s.Disk = &wire.Disk{FreeBytes: fs.Bavail * uint64(fs.Bsize), TotalBytes: fs.Blocks * uint64(fs.Bsize)}
		}
	}
	if v, err := u.st.DatasetVersions(); err == nil && len(v) > 0 {
		s.DatasetVersions = v
	}
	if u.cfg.Drivers != nil {
		if h := u.cfg.Drivers(); len(h) > 0 {
			s.Drivers = make(map[string]wire.DriverHealth, len(h))
			for name, d := range h {
				s.Drivers[name] = wire.DriverHealth{State: string(d.State), Since: d.Since, LastErr: d.LastErr,
					Readings: d.Readings, Dropped: d.Dropped, Reopens: d.Reopens}
			}
		}
	}
	c := clock.Now()
	s.Clock = &wire.Clock{Wall: c.Wall, Synced: c.Synced, Boot: c.Boot}
	return s
}
