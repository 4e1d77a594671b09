// Package fleet simulates many classroom devices in one process, for load tests of the central
// side (`kaoqin ingest simulate`, the benchmarks of sync/ingest and docs/central.md).
//
// Each simulated device is light but speaks the real contract (sync/wire, docs/mqtt.md) over its
// own MQTT connection: its own ed25519 key (the public half written where the ingester reads
// device keys), its own epoch and hash chain sealed with agent/ledger, a retained birth state and
// a will, batches of up to BatchSize records with up to Window batches in flight, cumulative
// acks, a resend from the cursor after AckTimeout without progress or after a reconnection,
// signed resync commands, and signed datasets (manifest and chunks checked, then reported on
// up/applied and in the state). It keeps in memory only the records not yet acknowledged.
//
// What it does not do: read hardware, apply rosters (a dataset's content is checked against its
// manifest, not decoded), or go back below its cursor on a resync (the records it has acked are
// gone from its memory).
package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Config shapes a fleet. Zero values take the defaults shown.
type Config struct {
	Broker       string // tcp://host:port
	Devices      int    // how many devices
	Institutions int    // devices are spread over this many institutions; default Devices/10, at least 1
	Prefix       string // device names are <prefix>-<institution>-<n>; default "sim"
	// KeysDir receives <device>.pub for every device: point the ingester's device_keys_dir here.
	KeysDir string
	// CentralPub verifies acks, datasets and commands; without it they are ignored (and no ack
	// moves a device's cursor).
	CentralPub ed25519.PublicKey
	BatchSize  int           // records per batch; default 64
	Window     int           // batches in flight; default 4
	AckTimeout time.Duration // resend from the cursor after this long without an ack; default 5s
	// Epoch is every device's epoch; default the time of New in milliseconds.
	Epoch uint64
}

func (c *Config) defaults() {
	if c.Institutions <= 0 {
		c.Institutions = max(1, c.Devices/10)
	}
	if c.Prefix == "" {
		c.Prefix = "sim"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.Window <= 0 {
		c.Window = 4
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 5 * time.Second
	}
	if c.Epoch == 0 {
		c.Epoch = uint64(time.Now().UnixMilli())
	}
}

// Fleet is a set of simulated devices.
type Fleet struct {
	cfg  Config
	log  *slog.Logger
	Devs []*Device

	latMu sync.Mutex
	lat   []time.Duration // publish-to-ack of every batch acked, since the last ResetLatencies

	resends, resyncs, applied atomic.Int64
}

// New makes the devices and their keys, and writes the public keys to cfg.KeysDir. It connects
// nothing.
func New(cfg Config, log *slog.Logger) (*Fleet, error) {
	cfg.defaults()
	if cfg.Broker == "" || cfg.Devices <= 0 || cfg.KeysDir == "" {
		return nil, errors.New("fleet: broker, devices and keys directory are required")
	}
	if err := os.MkdirAll(cfg.KeysDir, 0o750); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	f := &Fleet{cfg: cfg, log: log}
	for i := 0; i < cfg.Devices; i++ {
		inst := fmt.Sprintf("%04d", 1+i%cfg.Institutions)
		name := fmt.Sprintf("%s-%s-%05d", cfg.Prefix, inst, i)
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		if err := writePub(filepath.Join(cfg.KeysDir, name+".pub"), pub); err != nil {
			return nil, err
		}
		f.Devs = append(f.Devs, &Device{f: f, Name: name, Institution: inst, key: key, epoch: cfg.Epoch,
			base: 1, next: 1, sentAt: map[uint64]time.Time{}, datasets: map[string]uint64{},
			staging: map[string]*staged{}, wake: make(chan struct{}, 1)})
	}
	return f, nil
}

func writePub(path string, pub ed25519.PublicKey) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, ledger.EncodePublicKey(pub), 0o644); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	return nil
}

// Run connects every device (parallel connects, at most 64 at a time, the way a province's
// classrooms come back after an outage) and runs them until ctx is done; then it disconnects
// them cleanly.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, d := range f.Devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			d.connect()
			<-sem
			d.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Record seals n events on every device now (see Device.Record), on every core.
func (f *Fleet) Record(n int, kind ledger.Kind) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(f.Devs)); i = next.Add(1) - 1 {
				f.Devs[i].Record(n, kind, time.Now())
			}
		}()
	}
	wg.Wait()
}

// Totals are the fleet's counters.
type Totals struct {
	Head, Acked      uint64 // events recorded, and acknowledged by the central
	Connected        int    // devices connected now
	Resends, Resyncs int64  // times a device went back to its cursor (timeout, reconnection), resync commands obeyed
	Applied          int64  // datasets applied
}

// Totals sums the devices.
func (f *Fleet) Totals() Totals {
	var t Totals
	for _, d := range f.Devs {
		d.mu.Lock()
		t.Head += d.head
		t.Acked += d.acked
		if d.up {
			t.Connected++
		}
		d.mu.Unlock()
	}
	t.Resends, t.Resyncs, t.Applied = f.resends.Load(), f.resyncs.Load(), f.applied.Load()
	return t
}

// WaitAcked waits until every device's every event is acknowledged.
func (f *Fleet) WaitAcked(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if t := f.Totals(); t.Acked == t.Head {
			return nil
		}
		select {
		case <-ctx.Done():
			t := f.Totals()
			return fmt.Errorf("fleet: %d of %d events acknowledged: %w", t.Acked, t.Head, ctx.Err())
		case <-tick.C:
		}
	}
}

// Latencies returns the publish-to-ack times of the batches acked since the last call, sorted.
func (f *Fleet) Latencies() []time.Duration {
	f.latMu.Lock()
	out := f.lat
	f.lat = nil
	f.latMu.Unlock()
	slices.Sort(out)
	return out
}

// Quantile is the q-quantile (0..1) of sorted durations (0 if there are none).
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Device is one simulated classroom box.
type Device struct {
	f           *Fleet
	Name        string
	Institution string
	key         ed25519.PrivateKey
	epoch       uint64
	client      mqtt.Client
	wake        chan struct{}

	mu       sync.Mutex
	up       bool
	head     uint64
	headHash [32]byte
	base     uint64          // the seq of recs[0]: acked+1
	recs     []ledger.Record // base..head, not yet acknowledged
	acked    uint64
	next     uint64 // the next seq to publish
	maxSent  uint64 // the highest seq published
	progress time.Time
	stall    time.Duration        // the current ack timeout: AckTimeout, doubling on each stall
	sentAt   map[uint64]time.Time // last seq of a batch -> when it was first published
	lastCmd  uint64
	datasets map[string]uint64
	staging  map[string]*staged
	stateOf  [2]uint64 // head and acked last reported
	stateAt  time.Time
}

type staged struct {
	m      *wire.Manifest
	chunks [][]byte
	have   int
}

// Record seals n events of kind made at t (sign-ins of trainees T<institution><n>, in turn).
func (d *Device) Record(n int, kind ledger.Kind, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 0; i < n; i++ {
		seq := d.head + 1
		e := ledger.Event{Device: d.Name, Epoch: d.epoch, Seq: seq, ID: ledger.NewID(t), Kind: kind,
			Time:   ledger.Clock{Wall: t, Mono: t.UnixNano(), Boot: "sim", Synced: true},
			Source: "fp1", Method: "fingerprint", Trainee: fmt.Sprintf("T%s%02d", d.Institution, seq%40),
			IDMasked: "370102********1234", Session: "S-" + d.Institution + "-AM", Institution: d.Institution,
			Score: 87, Margin: 12}
		r, err := ledger.Seal(&e, d.headHash, d.key)
		if err != nil {
			panic("fleet: seal: " + err.Error()) // an Event of these fields always encodes
		}
		d.recs = append(d.recs, r)
		d.head, d.headHash = seq, r.Hash()
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Device) state(online bool) []byte {
	s := wire.State{Device: d.Name, Online: online}
	if online {
		s.Epoch, s.HeadSeq, s.AckedThrough, s.Backlog = d.epoch, d.head, d.acked, d.head-d.acked
		s.DatasetVersions = map[string]uint64{}
		for k, v := range d.datasets {
			s.DatasetVersions[k] = v
		}
		s.Agent = "kaoqin fleet"
		if d.head > 0 {
			s.SignHead(d.headHash, d.key)
		}
	}
	p, err := s.Encode()
	if err != nil {
		panic("fleet: state: " + err.Error()) // consistent by construction
	}
	return p
}

func (d *Device) connect() {
	cfg := d.f.cfg
	o := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID(d.Name).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(5*time.Second).
		SetKeepAlive(30*time.Second).SetConnectTimeout(30*time.Second).SetWriteTimeout(30*time.Second).
		SetOrderMatters(false).SetBinaryWill(wire.StateTopic(d.Institution, d.Name), d.state(false), 1, true).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(wire.DownFilter(d.Institution, d.Name), 1, func(_ mqtt.Client, m mqtt.Message) { d.message(m) }).
				WaitTimeout(30 * time.Second) // acks for what it sends must find the subscription
			d.mu.Lock()
			d.up, d.next, d.progress = true, d.acked+1, time.Now()
			p := d.state(true)
			d.stateOf, d.stateAt = [2]uint64{d.head, d.acked}, time.Now()
			d.mu.Unlock()
			c.Publish(wire.StateTopic(d.Institution, d.Name), 1, true, p)
			d.poke()
		}).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			d.mu.Lock()
			d.up = false
			d.mu.Unlock()
		})
	d.client = mqtt.NewClient(o)
	tok := d.client.Connect()
	tok.WaitTimeout(30 * time.Second)
}

func (d *Device) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run sends until ctx is done, then disconnects (the broker keeps the retained state).
func (d *Device) run(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			p := d.state(false)
			d.mu.Unlock()
			d.client.Publish(wire.StateTopic(d.Institution, d.Name), 1, true, p).WaitTimeout(time.Second)
			d.client.Disconnect(100)
			return
		case <-d.wake:
		case <-tick.C:
		}
		d.step(time.Now())
	}
}

type pub struct {
	topic    string
	retained bool
	payload  []byte
}

// step publishes what the window allows, goes back to the cursor after AckTimeout without
// progress, and refreshes the state every 5 s while the ledger moves.
func (d *Device) step(now time.Time) {
	cfg := d.f.cfg
	var out []pub
	d.mu.Lock()
	if !d.up {
		d.mu.Unlock()
		return
	}
	if d.stall == 0 {
		d.stall = cfg.AckTimeout
	}
	if d.next > d.acked+1 && now.Sub(d.progress) > d.stall {
		d.next, d.progress = d.acked+1, now
		d.stall = min(2*d.stall, 2*time.Minute) // as a box does: a central that is slow gets time
		d.f.resends.Add(1)
	}
	if d.next == d.acked+1 {
		d.progress = now // nothing in flight
	}
	for d.next <= d.head && d.next-1-d.acked < uint64(cfg.Window*cfg.BatchSize) {
		last := min(d.next+uint64(cfg.BatchSize)-1, d.head)
		b := wire.Batch{Device: d.Name, Epoch: d.epoch, FirstSeq: d.next, LastSeq: last, Events: d.recs[d.next-d.base : last-d.base+1]}
		p, err := b.Encode()
		if err != nil {
			panic("fleet: batch: " + err.Error()) // valid by construction
		}
		if _, ok := d.sentAt[last]; !ok {
			d.sentAt[last] = now
		}
		out = append(out, pub{wire.EventsTopic(d.Institution, d.Name), false, p})
		d.next, d.maxSent = last+1, max(d.maxSent, last)
	}
	if st := [2]uint64{d.head, d.acked}; st != d.stateOf && now.Sub(d.stateAt) > 5*time.Second {
		out = append(out, pub{wire.StateTopic(d.Institution, d.Name), true, d.state(true)})
		d.stateOf, d.stateAt = st, now
	}
	d.mu.Unlock()
	for _, p := range out {
		d.client.Publish(p.topic, 1, p.retained, p.payload)
	}
}

// message handles down/ack, down/cmd and down/data (on paho's goroutine).
func (d *Device) message(m mqtt.Message) {
	t, err := wire.ParseTopic(m.Topic())
	if err != nil {
		return
	}
	switch t.Kind {
	case wire.KindAck:
		a, err := wire.DecodeAck(m.Payload(), d.f.cfg.CentralPub)
		if err == nil && a.Device != d.Name {
			err = fmt.Errorf("ack for %q", a.Device)
		}
		if err != nil {
			return
		}
		d.ack(a)
	case wire.KindCmd:
		if d.f.cfg.CentralPub == nil {
			return
		}
		c, err := wire.DecodeCommand(m.Payload(), d.f.cfg.CentralPub)
		if err != nil || c.Device != d.Name || c.Cmd != wire.CmdResync {
			return
		}
		d.mu.Lock()
		if c.ID > d.lastCmd && c.Epoch == d.epoch {
			d.lastCmd = c.ID
			d.next = max(min(c.FromSeq, d.acked+1), d.acked+1)
			d.progress = time.Now()
			d.f.resyncs.Add(1)
		}
		d.mu.Unlock()
		d.poke()
	case wire.KindData:
		d.data(m.Payload())
	}
}

func (d *Device) ack(a *wire.Ack) {
	now := time.Now()
	var lat []time.Duration
	d.mu.Lock()
	if a.Epoch != d.epoch || a.AckedThrough <= d.acked || a.AckedThrough > d.maxSent {
		d.mu.Unlock()
		return // stale, duplicate, or beyond what was sent: ignored
	}
	for last, at := range d.sentAt {
		if last <= a.AckedThrough {
			lat = append(lat, now.Sub(at))
			delete(d.sentAt, last)
		}
	}
	drop := a.AckedThrough + 1 - d.base
	d.recs = slices.Clone(d.recs[drop:]) // let the acknowledged records go
	d.base, d.acked, d.progress, d.stall = a.AckedThrough+1, a.AckedThrough, now, d.f.cfg.AckTimeout
	d.next = max(d.next, d.acked+1)
	d.mu.Unlock()
	d.f.latMu.Lock()
	d.f.lat = append(d.f.lat, lat...)
	d.f.latMu.Unlock()
	d.poke()
}

// data stages a signed dataset and reports it applied once complete and consistent.
func (d *Device) data(p []byte) {
	if d.f.cfg.CentralPub == nil {
		return
	}
	msg, err := wire.DecodeData(p)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if msg.Manifest != nil {
		m, err := wire.OpenManifest(msg.Manifest, d.f.cfg.CentralPub)
		if err != nil || m.Device != d.Name || m.Version <= d.datasets[m.Dataset] {
			return
		}
		if s := d.staging[m.Dataset]; s == nil || s.m.Version != m.Version {
			d.staging[m.Dataset] = &staged{m: m, chunks: make([][]byte, len(m.Chunks))}
		}
		return
	}
	c := msg.Chunk
	s := d.staging[c.Dataset]
	if s == nil || s.m.Version != c.Version || c.Index < 0 || c.Index >= len(s.chunks) || s.chunks[c.Index] != nil {
		return
	}
	if s.m.CheckChunk(c.Index, c.Data) != nil {
		return
	}
	s.chunks[c.Index], s.have = c.Data, s.have+1
	if s.have < len(s.chunks) {
		return
	}
	var content []byte
	for _, ch := range s.chunks {
		content = append(content, ch...)
	}
	delete(d.staging, c.Dataset)
	if s.m.CheckContent(content) != nil {
		return
	}
	d.datasets[c.Dataset] = s.m.Version
	d.f.applied.Add(1)
	a := wire.Applied{Dataset: c.Dataset, Version: s.m.Version, SHA256: wire.SHA256Hex(content), Status: wire.StatusApplied}
	ap, err := a.Encode()
	if err != nil {
		return
	}
	st := d.state(true)
	go func() { // not on paho's router goroutine
		d.client.Publish(wire.AppliedTopic(d.Institution, d.Name), 1, false, ap)
		d.client.Publish(wire.StateTopic(d.Institution, d.Name), 1, true, st)
	}()
}

// Head returns the device's last seq and the hash of that record.
func (d *Device) Head() (uint64, [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.head, d.headHash
}

// Epoch is the device's epoch.
func (d *Device) Epoch() uint64 { return d.epoch }

// Public is the device's public key.
func (d *Device) Public() ed25519.PublicKey { return d.key.Public().(ed25519.PublicKey) }
