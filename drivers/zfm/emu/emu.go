package emu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers/internal/ptydev"
	"github.com/kaoqin/kaoqin/drivers/zfm"
)

// Config describes the emulated module. Zero fields take the defaults of an R503.
type Config struct {
	Capacity      int    // library pages, 1..1024; default 200
	Address       uint32 // 0 means zfm.DefaultAddress
	Password      uint32 // what VfyPwd must present; 0 by default
	PacketSize    int    // data packet size in bytes: 32, 64, 128 (default) or 256
	SecurityLevel int    // 1..5, default 3; reported, not used
	// Unsupported instructions are answered with code 0xFC (unsupported command), as an R503
	// does: zfm.InstrHiSpeedSearch for an R551, zfm.InstrAuraLedConfig and zfm.InstrHandShake
	// for an R30x.
	Unsupported []zfm.Instr
	// PowerUp is how long after Start (and after a hang-up) the module ignores commands.
	PowerUp time.Duration
	// WakeByte makes the module send the stray 0x55 of R50x modules when the power-up ends.
	WakeByte bool
	Latency  Latency
	// MatchScore, if not zero, is the score of every same-finger comparison; otherwise scores are
	// deterministic per capture, from 60 to 199. The module calls a score of 50 or more a match.
	MatchScore int
	// Preload lists fingers whose templates fill pages 0, 1, ... from the start.
	Preload []string
	// OnPacket, if set, sees every packet the module receives (fromHost) and sends, in the
	// serving goroutine. Tests use it to count commands and data packets.
	OnPacket func(fromHost bool, p zfm.Packet)
	// Log receives the emulator's own messages; nil discards them.
	Log *slog.Logger
}

// Latency is how long the emulated module takes. The zero value answers at once.
type Latency struct {
	Reply   time.Duration // before every reply
	Capture time.Duration // more for GenImg with a finger on the sensor
	Search  time.Duration // more for Search and HiSpeedSearch
	Store   time.Duration // more for Store, DeletChar and Empty (flash writes)
	Byte    time.Duration // per byte sent, e.g. 174µs for 57600 baud
}

// Realistic is the timing of a real module at 57600 baud, from the protocol notes.
var Realistic = Latency{
	Reply:   5 * time.Millisecond,
	Capture: 300 * time.Millisecond,
	Search:  150 * time.Millisecond,
	Store:   50 * time.Millisecond,
	Byte:    174 * time.Microsecond,
}

// FaultKind is a way the line or the module misbehaves.
type FaultKind int

// Faults.
const (
	// FaultDrop sends no reply at all.
	FaultDrop FaultKind = iota + 1
	// FaultBadChecksum corrupts the checksum of the last packet of the reply.
	FaultBadChecksum
	// FaultGarbage sends junk before the reply: stray bytes, a frame for another address and a
	// frame with a bad checksum.
	FaultGarbage
	// FaultSplit sends the reply one byte at a time.
	FaultSplit
	// FaultHangUp cuts the line in the middle of the reply: after the acknowledgement and half the
	// data packets of an UpChar, after the acknowledgement of a DownChar (before its data), or
	// halfway through any other acknowledgement. The emulator then comes back on a new
	// pseudo-terminal behind the same link, as a module unplugged and plugged in again, library
	// intact.
	FaultHangUp
	// FaultCode answers with Fault.Code, without doing the command.
	FaultCode
	// FaultFlipBit flips one bit of the template a transfer carries: the module stores a corrupt
	// template after a DownChar, the host receives one from an UpChar.
	FaultFlipBit
)

var faultNames = map[string]FaultKind{
	"drop": FaultDrop, "badsum": FaultBadChecksum, "garbage": FaultGarbage, "split": FaultSplit,
	"hangup": FaultHangUp, "code": FaultCode, "flipbit": FaultFlipBit,
}

// Fault is one misbehaviour, for the next command of instruction Instr (any command if Instr is
// 0). Each fault applies once.
type Fault struct {
	Kind  FaultKind
	Instr zfm.Instr
	Code  zfm.Code // for FaultCode
}

// Emulator is a fingerprint module on a pseudo-terminal. The driver opens the link given to Start
// as its serial port. All methods are safe for concurrent use.
type Emulator struct {
	cfg Config
	log *slog.Logger
	wg  sync.WaitGroup
	wmu sync.Mutex // serialises writes to the master side

	mu      sync.Mutex
	started bool
	closed  bool
	link    string
	master  *os.File
	slave   *os.File // held open so that reads of the master do not fail when the driver closes
	readyAt time.Time
	wake    *time.Timer

	// Module state, under mu.
	addr       uint32
	password   uint32
	verified   bool
	packetSize int
	security   int
	baudN      int
	library    [][]byte
	bufs       [3][]byte // character buffers 1 and 2
	image      []byte    // character file the last capture would give; nil when none
	finger     string    // on the sensor; "" when none
	captures   uint64
	aura       zfm.Aura
	faults     []Fault
	down       *download // a DownChar in progress
}

type download struct {
	buf   int
	data  []byte
	fault *Fault
}

// New returns an emulator with the library preloaded; Start puts it on a pseudo-terminal.
func New(cfg Config) *Emulator {
	if cfg.Capacity == 0 {
		cfg.Capacity = 200
	}
	if cfg.Address == 0 {
		cfg.Address = zfm.DefaultAddress
	}
	if cfg.PacketSize == 0 {
		cfg.PacketSize = 128
	}
	if cfg.SecurityLevel == 0 {
		cfg.SecurityLevel = 3
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Emulator{
		cfg:        cfg,
		log:        log,
		addr:       cfg.Address,
		password:   cfg.Password,
		packetSize: cfg.PacketSize,
		security:   cfg.SecurityLevel,
		baudN:      6,
	}
	if cfg.Capacity > 0 && cfg.Capacity <= zfm.MaxCapacity {
		e.library = make([][]byte, cfg.Capacity)
		for page, f := range cfg.Preload {
			if page < len(e.library) {
				e.library[page] = Template(f)
			}
		}
	}
	return e
}

func (c Config) validate() error {
	if c.Capacity < 1 || c.Capacity > zfm.MaxCapacity {
		return fmt.Errorf("emu: capacity %d, want 1..%d", c.Capacity, zfm.MaxCapacity)
	}
	if _, ok := zfm.PacketSizeCode(c.PacketSize); !ok {
		return fmt.Errorf("emu: packet size %d, want 32, 64, 128 or 256", c.PacketSize)
	}
	if c.SecurityLevel < 1 || c.SecurityLevel > 5 {
		return fmt.Errorf("emu: security level %d, want 1..5", c.SecurityLevel)
	}
	if len(c.Preload) > c.Capacity {
		return fmt.Errorf("emu: %d fingers to preload into %d pages", len(c.Preload), c.Capacity)
	}
	return nil
}

// Start creates the pseudo-terminal, makes link a symbolic link to its slave side (replacing an
// older symbolic link, never a file) and starts serving. The module powers up: it ignores commands
// for Config.PowerUp, then sends 0x55 if Config.WakeByte is set.
func (e *Emulator) Start(link string) error {
	if err := e.cfg.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return errors.New("emu: already started")
	}
	e.started = true
	e.link = link
	return e.plugLocked()
}

// plugLocked creates a new pseudo-terminal behind the link and starts serving it.
func (e *Emulator) plugLocked() error {
	p, err := ptydev.Open()
	if err != nil {
		return fmt.Errorf("emu: %w", err)
	}
	if err := ptydev.Link(p.Path(), e.link); err != nil {
		p.Close()
		return fmt.Errorf("emu: %w", err)
	}
	master, slave := p.Master, p.Slave
	e.master, e.slave = master, slave
	e.readyAt = time.Now().Add(e.cfg.PowerUp)
	e.verified, e.bufs, e.image, e.down = false, [3][]byte{}, nil, nil
	if e.cfg.WakeByte {
		e.wake = time.AfterFunc(e.cfg.PowerUp, func() { e.write(master, []byte{0x55}) })
	}
	e.wg.Add(1)
	go e.serve(master)
	e.log.Info("emu: module on line", "link", e.link, "pty", slave.Name())
	return nil
}

func (e *Emulator) isStarted() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.started
}

// Path is the slave side of the current pseudo-terminal ("" before Start).
func (e *Emulator) Path() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.slave == nil {
		return ""
	}
	return e.slave.Name()
}

// Close stops serving, closes the pseudo-terminal and removes the link. The driver's next write
// fails as on a hang-up.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.unplugLocked()
	link, slave := e.link, ""
	if e.slave != nil {
		slave = e.slave.Name()
	}
	e.mu.Unlock()
	e.wg.Wait()
	if link != "" {
		return ptydev.Unlink(link, slave)
	}
	return nil
}

// unplugLocked closes the current pseudo-terminal; its serving goroutine ends.
func (e *Emulator) unplugLocked() {
	e.stopWakeLocked()
	if e.master != nil {
		e.master.Close()
	}
	if e.slave != nil {
		e.slave.Close()
	}
}

func (e *Emulator) stopWakeLocked() {
	if e.wake != nil {
		e.wake.Stop()
		e.wake = nil
	}
}

// Place puts a finger on the sensor; it stays until Lift or another Place.
func (e *Emulator) Place(fingerID string) {
	e.mu.Lock()
	e.finger = fingerID
	e.mu.Unlock()
}

// Lift takes the finger off the sensor.
func (e *Emulator) Lift() {
	e.mu.Lock()
	e.finger = ""
	e.mu.Unlock()
}

// Inject queues a fault for the next command of f.Instr (any command when it is 0).
func (e *Emulator) Inject(f Fault) {
	e.mu.Lock()
	e.faults = append(e.faults, f)
	e.mu.Unlock()
}

// Preload stores the templates of fingers at the lowest free pages, unless they are stored
// already, and returns their pages.
func (e *Emulator) Preload(fingers ...string) ([]int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var pages []int
	for _, f := range fingers {
		t := Template(f)
		if page := slices.IndexFunc(e.library, func(s []byte) bool { return slices.Equal(s, t) }); page >= 0 {
			pages = append(pages, page)
			continue
		}
		page := slices.IndexFunc(e.library, func(t []byte) bool { return t == nil })
		if page < 0 {
			return pages, fmt.Errorf("emu: library full (%d pages)", len(e.library))
		}
		e.library[page] = t
		pages = append(pages, page)
	}
	return pages, nil
}

// StoreTemplate writes data to a library page, or erases it when data is nil.
func (e *Emulator) StoreTemplate(page int, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if page < 0 || page >= len(e.library) {
		return fmt.Errorf("emu: page %d beyond the library (%d pages)", page, len(e.library))
	}
	e.library[page] = slices.Clone(data)
	return nil
}

// Library returns a copy of the occupied pages.
func (e *Emulator) Library() map[int][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	lib := map[int][]byte{}
	for page, t := range e.library {
		if t != nil {
			lib[page] = slices.Clone(t)
		}
	}
	return lib
}

// LED is the last AuraLedConfig the module received.
func (e *Emulator) LED() zfm.Aura {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.aura
}

// serve answers the packets arriving on master until it is closed. A command that arrives with a
// bad checksum is answered with confirmation code 0x01, in its place in the stream.
func (e *Emulator) serve(master *os.File) {
	defer e.wg.Done()
	var corrupt []zfm.PID // frames with a bad checksum, met by the last dec.Next
	newDecoder := func(addr uint32) *zfm.Decoder {
		d := zfm.NewDecoder(addr)
		d.OnBadChecksum(func(pid zfm.PID) { corrupt = append(corrupt, pid) })
		return d
	}
	e.mu.Lock()
	dec := newDecoder(e.addr)
	e.mu.Unlock()
	buf := make([]byte, 512)
	for {
		n, rerr := master.Read(buf)
		dec.Write(buf[:n])
		for {
			p, ok := dec.Next()
			for _, pid := range corrupt {
				if out := e.handleCorrupt(pid); out != nil {
					e.send(master, out)
				}
			}
			corrupt = corrupt[:0]
			if !ok {
				break
			}
			if e.cfg.OnPacket != nil {
				e.cfg.OnPacket(true, p)
			}
			out := e.handle(p)
			if out == nil {
				continue
			}
			if e.send(master, out) {
				e.replug()
				return
			}
			e.mu.Lock()
			if addr := e.addr; addr != p.Address {
				dec = newDecoder(addr) // SetAdder
			}
			e.mu.Unlock()
		}
		if rerr != nil {
			return
		}
	}
}

// replug puts a new pseudo-terminal behind the link after a hang-up and closes the old one. The new
// line is behind the link before the old one goes, so that a driver reopening at once finds it.
func (e *Emulator) replug() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	oldMaster, oldSlave := e.master, e.slave
	e.stopWakeLocked()
	if err := e.plugLocked(); err != nil {
		e.log.Error("emu: cannot come back after the hang-up", "err", err)
	}
	oldMaster.Close()
	oldSlave.Close()
}

// handleCorrupt answers a frame that arrived with a bad checksum: a command gets confirmation code
// 0x01 (error receiving the packet) and is not run, as on a real module; a data packet of a
// download in progress ends the download (the buffer is left as it was), without an answer, since
// the host expects none to data packets.
func (e *Emulator) handleCorrupt(pid zfm.PID) *reply {
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Now().Before(e.readyAt) {
		return nil // powering up
	}
	switch pid {
	case zfm.PIDCommand:
		e.down = nil
		e.log.Info("emu: command with a bad checksum, answered 0x01")
		return &reply{delay: e.cfg.Latency.Reply, packets: []zfm.Packet{e.ack(zfm.CodePacket, nil)}}
	case zfm.PIDData, zfm.PIDEndData:
		if e.down != nil {
			e.log.Info("emu: data packet with a bad checksum, download abandoned")
			e.down = nil
		}
	}
	return nil
}

// reply is what the module sends for one command.
type reply struct {
	delay   time.Duration
	packets []zfm.Packet
	fault   *Fault
	acked   bool // the first packet is an acknowledgement followed by data (a transfer)
}

// handle runs one packet from the host and returns the reply, or nil.
func (e *Emulator) handle(p zfm.Packet) *reply {
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Now().Before(e.readyAt) {
		return nil // powering up
	}
	if p.PID == zfm.PIDData || p.PID == zfm.PIDEndData {
		if d := e.down; d != nil {
			d.data = append(d.data, p.Payload...)
			if p.PID == zfm.PIDEndData {
				if d.fault != nil && d.fault.Kind == FaultFlipBit && len(d.data) > 0 {
					d.data[len(d.data)/2] ^= 0x01
				}
				e.bufs[d.buf] = d.data
				e.down = nil
			}
		}
		return nil
	}
	if p.PID != zfm.PIDCommand {
		return nil
	}
	e.down = nil
	in := zfm.Instr(p.Payload[0])
	params := p.Payload[1:]
	fault := e.takeFault(in)
	r := &reply{delay: e.cfg.Latency.Reply, fault: fault}
	if fault != nil && fault.Kind == FaultCode {
		r.packets = []zfm.Packet{e.ack(fault.Code, nil)}
		return r
	}
	code, results, data := e.execute(in, params, r)
	r.packets = []zfm.Packet{e.ack(code, results)}
	if code == zfm.CodeOK && in == zfm.InstrDownChar {
		e.down = &download{buf: int(params[0]), fault: fault}
		r.acked = true
	}
	if data != nil {
		r.acked = true
		if fault != nil && fault.Kind == FaultFlipBit {
			data = slices.Clone(data)
			data[len(data)/2] ^= 0x01
		}
		for off := 0; off < len(data); off += e.packetSize {
			end := min(off+e.packetSize, len(data))
			pid := zfm.PIDData
			if end == len(data) {
				pid = zfm.PIDEndData
			}
			r.packets = append(r.packets, zfm.Packet{Address: e.addr, PID: pid, Payload: data[off:end]})
		}
	}
	return r
}

func (e *Emulator) takeFault(in zfm.Instr) *Fault {
	for i, f := range e.faults {
		if f.Instr == 0 || f.Instr == in {
			e.faults = slices.Delete(e.faults, i, i+1)
			return &f
		}
	}
	return nil
}

func (e *Emulator) ack(code zfm.Code, results []byte) zfm.Packet {
	return zfm.Packet{Address: e.addr, PID: zfm.PIDAck, Payload: append([]byte{byte(code)}, results...)}
}

// execute does one command on the module state. It returns the confirmation code, the results
// after it, and the data an UpChar sends; it adds the command's latency to r.
func (e *Emulator) execute(in zfm.Instr, params []byte, r *reply) (zfm.Code, []byte, []byte) {
	if slices.Contains(e.cfg.Unsupported, in) {
		return zfm.CodeUnsupported, nil, nil
	}
	need := map[zfm.Instr]int{
		zfm.InstrImg2Tz: 1, zfm.InstrSearch: 5, zfm.InstrHiSpeedSearch: 5, zfm.InstrStore: 3,
		zfm.InstrLoadChar: 3, zfm.InstrUpChar: 1, zfm.InstrDownChar: 1, zfm.InstrDeletChar: 4,
		zfm.InstrSetSysPara: 2, zfm.InstrSetPwd: 4, zfm.InstrVfyPwd: 4, zfm.InstrSetAdder: 4,
		zfm.InstrReadIndexTable: 1, zfm.InstrAuraLedConfig: 4,
	}
	if len(params) < need[in] {
		return zfm.CodePacket, nil, nil
	}
	buffer := func() (int, bool) {
		b := int(params[0])
		return b, b == 1 || b == 2
	}
	u16 := func(at int) int { return int(binary.BigEndian.Uint16(params[at:])) }
	switch in {
	case zfm.InstrHandShake:
		return zfm.CodeOK, nil, nil
	case zfm.InstrVfyPwd:
		if binary.BigEndian.Uint32(params) != e.password {
			return zfm.CodePassword, nil, nil
		}
		e.verified = true
		return zfm.CodeOK, nil, nil
	case zfm.InstrSetPwd:
		e.password = binary.BigEndian.Uint32(params)
		return zfm.CodeOK, nil, nil
	case zfm.InstrSetAdder:
		e.addr = binary.BigEndian.Uint32(params)
		return zfm.CodeOK, nil, nil
	case zfm.InstrReadSysPara:
		var status uint16
		if e.verified {
			status |= 1 << 2
		}
		if e.image != nil {
			status |= 1 << 3
		}
		b, err := zfm.SysPara{
			Status: status, Capacity: len(e.library), SecurityLevel: e.security,
			Address: e.addr, PacketSize: e.packetSize, BaudN: e.baudN,
		}.MarshalBinary()
		if err != nil {
			return zfm.Code(0xFE), nil, nil // command execution failure
		}
		return zfm.CodeOK, b, nil
	case zfm.InstrSetSysPara:
		reg, v := params[0], int(params[1])
		switch {
		case reg == zfm.RegBaud && v >= 1 && v <= 12:
			e.baudN = v
		case reg == zfm.RegSecurity && v >= 1 && v <= 5:
			e.security = v
		case reg == zfm.RegPacketSize && v <= 3:
			e.packetSize = 32 << v
		default:
			return zfm.CodeRegister, nil, nil
		}
		return zfm.CodeOK, nil, nil
	case zfm.InstrGenImg:
		if e.finger == "" {
			e.image = nil
			return zfm.CodeNoFinger, nil, nil
		}
		r.delay += e.cfg.Latency.Capture
		e.captures++
		e.image = character(e.finger, e.captures)
		return zfm.CodeOK, nil, nil
	case zfm.InstrImg2Tz:
		b, ok := buffer()
		if !ok {
			return zfm.CodePacket, nil, nil
		}
		if e.image == nil {
			return zfm.CodeNoImage, nil, nil
		}
		e.bufs[b] = e.image
		return zfm.CodeOK, nil, nil
	case zfm.InstrMatch:
		s := score(e.bufs[1], e.bufs[2], e.cfg.MatchScore)
		if s < matchThreshold {
			return zfm.CodeNoMatch, u16bytes(s), nil
		}
		return zfm.CodeOK, u16bytes(s), nil
	case zfm.InstrSearch, zfm.InstrHiSpeedSearch:
		r.delay += e.cfg.Latency.Search
		b, ok := buffer()
		start, count := u16(1), u16(3)
		switch {
		case !ok:
			return zfm.CodePacket, nil, nil
		case e.bufs[b] == nil:
			return zfm.CodeNoImage, nil, nil
		case start >= len(e.library):
			return zfm.CodeBadPage, nil, nil
		}
		best, bestScore := -1, 0
		for page := start; page < start+count && page < len(e.library); page++ {
			if t := e.library[page]; t != nil {
				if s := score(e.bufs[b], t, e.cfg.MatchScore); s >= matchThreshold && s > bestScore {
					best, bestScore = page, s
				}
			}
		}
		if best < 0 {
			return zfm.CodeNotFound, u16bytes(0, 0), nil
		}
		return zfm.CodeOK, u16bytes(best, bestScore), nil
	case zfm.InstrRegModel:
		fa, oka := FingerOf(e.bufs[1])
		fb, okb := FingerOf(e.bufs[2])
		if !oka || !okb || fa != fb {
			return zfm.CodeCombine, nil, nil
		}
		t := encode(kindTemplate, fa, 0)
		e.bufs[1], e.bufs[2] = t, t
		return zfm.CodeOK, nil, nil
	case zfm.InstrStore:
		r.delay += e.cfg.Latency.Store
		b, ok := buffer()
		page := u16(1)
		switch {
		case !ok:
			return zfm.CodePacket, nil, nil
		case page >= len(e.library):
			return zfm.CodeBadPage, nil, nil
		case e.bufs[b] == nil:
			return zfm.CodeNoImage, nil, nil
		}
		e.library[page] = slices.Clone(e.bufs[b])
		return zfm.CodeOK, nil, nil
	case zfm.InstrLoadChar:
		b, ok := buffer()
		page := u16(1)
		switch {
		case !ok:
			return zfm.CodePacket, nil, nil
		case page >= len(e.library):
			return zfm.CodeBadPage, nil, nil
		case e.library[page] == nil:
			return zfm.CodeBadTemplate, nil, nil
		}
		e.bufs[b] = slices.Clone(e.library[page])
		return zfm.CodeOK, nil, nil
	case zfm.InstrUpChar:
		b, ok := buffer()
		switch {
		case !ok:
			return zfm.CodePacket, nil, nil
		case e.bufs[b] == nil:
			return zfm.CodeUpload, nil, nil
		}
		return zfm.CodeOK, nil, slices.Clone(e.bufs[b])
	case zfm.InstrDownChar:
		if _, ok := buffer(); !ok {
			return zfm.CodePacket, nil, nil
		}
		return zfm.CodeOK, nil, nil
	case zfm.InstrUpImage:
		// The image buffer holds the last capture; before any, or after a GenImg with no finger,
		// it holds what the sensor saw: nothing, a white image.
		finger, _ := FingerOf(e.image)
		return zfm.CodeOK, nil, Image(finger)
	case zfm.InstrGetRandomCode:
		return zfm.CodeOK, binary.BigEndian.AppendUint32(nil, rand.Uint32()), nil
	case zfm.InstrDeletChar:
		r.delay += e.cfg.Latency.Store
		page, count := u16(0), u16(2)
		if count == 0 || page+count > len(e.library) {
			return zfm.CodeDelete, nil, nil
		}
		for p := page; p < page+count; p++ {
			e.library[p] = nil
		}
		return zfm.CodeOK, nil, nil
	case zfm.InstrEmpty:
		r.delay += e.cfg.Latency.Store
		clear(e.library)
		return zfm.CodeOK, nil, nil
	case zfm.InstrTemplateNum:
		n := 0
		for _, t := range e.library {
			if t != nil {
				n++
			}
		}
		return zfm.CodeOK, u16bytes(n), nil
	case zfm.InstrReadIndexTable:
		table := int(params[0])
		if table > 3 {
			return zfm.CodeBadPage, nil, nil
		}
		bits := make([]byte, 32)
		for i := 0; i < 256; i++ {
			if page := table*256 + i; page < len(e.library) && e.library[page] != nil {
				bits[i/8] |= 1 << (i % 8)
			}
		}
		return zfm.CodeOK, bits, nil
	case zfm.InstrAuraLedConfig:
		e.aura = zfm.Aura{Control: zfm.AuraControl(params[0]), Speed: params[1], Colour: zfm.AuraColour(params[2]), Times: params[3]}
		return zfm.CodeOK, nil, nil
	}
	return zfm.CodeUnsupported, nil, nil
}

func u16bytes(vs ...int) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// garbage is what FaultGarbage sends before a reply: stray bytes, a header for another address,
// and a whole frame with a bad checksum.
var garbage = []byte{
	0x55, 0x00, 0xEF, 0xEF, 0x01, 0x02, 0x03,
	0xEF, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00, 0x03, 0x00, 0x00, 0xFF,
}

// send writes a reply, applying its fault, and reports whether the line must now hang up. It
// waits the reply latency, then sends packet by packet, each after its time on the line, so that a
// long transfer (an UpImage takes seconds at 57600 baud) starts with a timely acknowledgement.
func (e *Emulator) send(master *os.File, r *reply) (hangup bool) {
	kind := FaultKind(0)
	if r.fault != nil {
		kind = r.fault.Kind
	}
	if kind == FaultDrop {
		return false
	}
	var wire []byte
	var ends []int // where each packet ends in wire
	for i, p := range r.packets {
		b, err := zfm.Encode(p)
		if err != nil {
			e.log.Error("emu: encode reply", "err", err)
			return false
		}
		if i == len(r.packets)-1 && kind == FaultBadChecksum {
			b[len(b)-1] ^= 0xFF
		}
		wire = append(wire, b...)
		ends = append(ends, len(wire))
		if e.cfg.OnPacket != nil {
			e.cfg.OnPacket(false, p)
		}
	}
	if kind == FaultHangUp {
		ackLen := ends[0]
		switch {
		case !r.acked:
			wire = wire[:ackLen/2]
		case len(r.packets) == 1: // DownChar: the ack, then the data never arrives
		default:
			wire = wire[:ends[(len(r.packets)-1)/2]] // the ack and half the data packets
		}
	}
	if kind == FaultGarbage {
		wire = append(slices.Clone(garbage), wire...)
		for i := range ends {
			ends[i] += len(garbage)
		}
	}
	time.Sleep(r.delay)
	from := 0
	for _, end := range ends {
		end = min(end, len(wire))
		if end <= from {
			continue
		}
		seg := wire[from:end]
		from = end
		time.Sleep(time.Duration(len(seg)) * e.cfg.Latency.Byte)
		if kind == FaultSplit {
			for i := range seg {
				if !e.write(master, seg[i:i+1]) {
					return false
				}
				time.Sleep(200 * time.Microsecond)
			}
		} else if !e.write(master, seg) {
			return false
		}
	}
	return kind == FaultHangUp
}

func (e *Emulator) write(master *os.File, b []byte) bool {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	_, err := master.Write(b)
	return err == nil
}
