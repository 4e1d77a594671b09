package zfm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaoqin/kaoqin/drivers/serialport"
)

// Command timeouts, from the protocol notes: libraries use 1-2 s.
const (
	timeoutDefault = 1 * time.Second // most commands
	timeoutLong    = 2 * time.Second // Search, HiSpeedSearch, Store, DeletChar, Empty
	timeoutPacket  = 1 * time.Second // each data packet of an UpChar
)

// maxTemplate bounds a template transfer: templates are 512 bytes on R30x and up to 768 on R502A.
const maxTemplate = 4096

// maxImage bounds an image transfer: 36,864 bytes on R30x and AS608 (256x288 pixels, 4 bits each).
const maxImage = 64 << 10

// fastEmptyReads is how many reads in a row may return nothing at once before the line is taken
// for hung up. A serial line with a read timeout waits for it before returning nothing; a line
// whose other end is gone returns at once.
const (
	fastEmptyReads = 4
	fastEmptyLimit = 5 * time.Millisecond
)

// Port is what a Module needs from a serial line; *serialport.Port implements it.
type Port interface {
	// Read returns what has arrived, waiting at most the line's read timeout (tens of
	// milliseconds or more); (0, nil) means nothing came.
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	// Flush discards unread input and unsent output.
	Flush() error
}

// Support is whether the module knows a model-specific instruction, as far as the driver has
// found out.
type Support int32

// Support states.
const (
	SupportUnknown Support = iota // not tried yet
	Supported
	Unsupported
)

func (s Support) String() string {
	switch s {
	case Supported:
		return "supported"
	case Unsupported:
		return "unsupported"
	}
	return "unknown"
}

// ModuleStats counts a Module's traffic.
type ModuleStats struct {
	Commands      uint64 // command packets sent
	Timeouts      uint64 // replies that did not come in time
	Resent        uint64 // commands sent again after the module answered 0x01 (received corrupt)
	Dropped       uint64 // corrupt input dropped by the decoder, and packets nobody asked for
	HiSpeedSearch Support
	AuraLed       Support
}

// Module is a client of one fingerprint module on one serial line. One goroutine, started by
// NewModule and stopped by Close, owns the line: it runs one command at a time, so exactly one
// command is outstanding, whichever goroutine asked for it. All methods are safe for concurrent
// use; each typed method (GenImg, Search, ...) is one command, and Do runs several as one unit.
type Module struct {
	port Port
	log  *slog.Logger
	jobs chan job
	quit chan struct{}
	done chan struct{}
	once sync.Once

	// Owned by the owner goroutine.
	dec        *Decoder
	rbuf       []byte
	wbuf       []byte
	dirty      bool // the last exchange went wrong: flush stale input before the next command
	packetSize int  // data packet size the module reported, 0 until ReadSysPara
	fastEmpty  int

	// Read by Stats from any goroutine.
	commands   atomic.Uint64
	timeouts   atomic.Uint64
	resent     atomic.Uint64
	decDropped atomic.Uint64
	unexpected atomic.Uint64
	hiSpeed    atomic.Int32
	aura       atomic.Int32
}

type job struct {
	fn   func(*Session) error
	done chan error
}

// NewModule starts the owner goroutine of port for the module at address. The Module does not
// close port; call Close before closing it.
func NewModule(port Port, address uint32, log *slog.Logger) *Module {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Module{
		port: port,
		log:  log,
		jobs: make(chan job),
		quit: make(chan struct{}),
		done: make(chan struct{}),
		dec:  NewDecoder(address),
		rbuf: make([]byte, 512),
	}
	go m.own()
	return m
}

func (m *Module) own() {
	defer close(m.done)
	s := &Session{m: m}
	for {
		select {
		case j := <-m.jobs:
			j.done <- j.fn(s)
		case <-m.quit:
			return
		}
	}
}

// Do runs fn in the owner goroutine: no other command reaches the module until fn returns, so
// the character buffers hold what fn put there. Do blocks until fn has run; when ctx is done the
// session's commands fail at their next read, within one read timeout of the line. If ctx is done
// or the module is closed before fn starts, fn is not run.
func (m *Module) Do(ctx context.Context, fn func(s *Session) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("zfm: %w", err)
	}
	j := job{fn: fn, done: make(chan error, 1)}
	select {
	case m.jobs <- j:
	case <-ctx.Done():
		return fmt.Errorf("zfm: %w", ctx.Err())
	case <-m.quit:
		return fmt.Errorf("zfm: %w", ErrClosed)
	}
	return <-j.done
}

// Close stops the owner goroutine. A command in progress is abandoned at its next read (within
// one read timeout of the line); later calls fail with ErrClosed. Close does not close the port.
func (m *Module) Close() error {
	m.once.Do(func() { close(m.quit) })
	<-m.done
	return nil
}

// Stats returns the counters so far.
func (m *Module) Stats() ModuleStats {
	return ModuleStats{
		Commands:      m.commands.Load(),
		Timeouts:      m.timeouts.Load(),
		Resent:        m.resent.Load(),
		Dropped:       m.decDropped.Load() + m.unexpected.Load(),
		HiSpeedSearch: Support(m.hiSpeed.Load()),
		AuraLed:       Support(m.aura.Load()),
	}
}

// Session is the module as seen from inside Do: the same typed commands as Module, run at once in
// the owner goroutine. It is valid only during the call of fn it was passed to.
type Session struct {
	m *Module
}

// send writes one packet.
func (s *Session) send(op string, pid PID, payload []byte) error {
	m := s.m
	var err error
	m.wbuf, err = AppendEncode(m.wbuf[:0], Packet{Address: m.dec.addr, PID: pid, Payload: payload})
	if err != nil {
		return err
	}
	n, err := m.port.Write(m.wbuf)
	if err != nil {
		m.dirty = true
		return fmt.Errorf("zfm: %s: %w", op, err)
	}
	if n != len(m.wbuf) {
		m.dirty = true
		return fmt.Errorf("zfm: %s: short write (%d of %d bytes)", op, n, len(m.wbuf))
	}
	return nil
}

// receive reads until a packet whose id is accepted arrives, the timeout passes, ctx is done or
// the module is closed. Packets of other kinds are stale (a late reply) and counted as dropped.
func (s *Session) receive(ctx context.Context, op string, timeout time.Duration, accept func(PID) bool) (Packet, error) {
	m := s.m
	deadline := time.Now().Add(timeout)
	for {
		for {
			p, ok := m.dec.Next()
			if !ok {
				break
			}
			if accept(p.PID) {
				m.decDropped.Store(m.dec.Stats().Dropped())
				return p, nil
			}
			m.unexpected.Add(1)
		}
		m.decDropped.Store(m.dec.Stats().Dropped())
		select {
		case <-m.quit:
			m.dirty = true
			return Packet{}, fmt.Errorf("zfm: %s: %w", op, ErrClosed)
		default:
		}
		if err := ctx.Err(); err != nil {
			m.dirty = true
			return Packet{}, fmt.Errorf("zfm: %s: %w", op, err)
		}
		if !time.Now().Before(deadline) {
			m.dirty = true
			m.timeouts.Add(1)
			return Packet{}, fmt.Errorf("zfm: %s: %w (%v)", op, ErrTimeout, timeout)
		}
		start := time.Now()
		n, err := m.port.Read(m.rbuf)
		if err != nil {
			m.dirty = true
			return Packet{}, lineErr(op, err)
		}
		if n == 0 && time.Since(start) < fastEmptyLimit {
			m.fastEmpty++
			if m.fastEmpty >= fastEmptyReads {
				m.dirty = true
				return Packet{}, fmt.Errorf("zfm: %s: reads return nothing at once: %w", op, serialport.ErrHangup)
			}
			continue
		}
		m.fastEmpty = 0
		m.dec.Write(m.rbuf[:n])
	}
}

// lineErr wraps an error of the line (serialport reports a hung-up line as ErrHangup).
func lineErr(op string, err error) error { return fmt.Errorf("zfm: %s: %w", op, err) }

func isAck(p PID) bool  { return p == PIDAck }
func isData(p PID) bool { return p == PIDData || p == PIDEndData }

// maxResends is how many times a command is sent again after the module answered 0x01 (CodePacket):
// it received the command corrupt, and did not run it.
const maxResends = 2

// command sends instruction in with params and waits for its acknowledgement. It returns the
// results after the confirmation code, at least minResults bytes of them, or a *CodeError.
//
// A module that receives a command with a bad checksum answers 0x01 instead of running it. That
// answer is no result: command discards whatever else is in the line (the late reply to an earlier
// command that 0x01 may have overtaken included), sends the same command again, up to maxResends
// times, and only then returns ErrPacket.
func (s *Session) command(ctx context.Context, in Instr, params []byte, timeout time.Duration, minResults int) ([]byte, error) {
	m := s.m
	op := in.String()
	payload := append(make([]byte, 0, 1+len(params)), byte(in))
	payload = append(payload, params...)
	for attempt := 0; ; attempt++ {
		select {
		case <-m.quit:
			return nil, fmt.Errorf("zfm: %s: %w", op, ErrClosed)
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("zfm: %s: %w", op, err)
		}
		if m.dirty {
			// Whatever is left of a failed exchange (a late reply, the rest of a transfer) must not
			// pass for the answer to this command.
			if err := m.port.Flush(); err != nil {
				return nil, lineErr(op+": flush", err)
			}
			m.dec.Reset()
			m.decDropped.Store(m.dec.Stats().Dropped())
			m.dirty = false
		}
		if err := s.send(op, PIDCommand, payload); err != nil {
			return nil, err
		}
		m.commands.Add(1)
		p, err := s.receive(ctx, op, timeout, isAck)
		if err != nil {
			return nil, err
		}
		code := Code(p.Payload[0])
		if code == CodePacket && attempt < maxResends {
			m.dirty = true
			m.resent.Add(1)
			m.log.Debug("zfm: module received the command corrupt, sending it again", "op", op, "attempt", attempt+1)
			continue
		}
		if code != CodeOK {
			return nil, &CodeError{Op: op, Code: code}
		}
		res := p.Payload[1:]
		if len(res) < minResults {
			m.dirty = true
			return nil, fmt.Errorf("zfm: %s: %d result bytes, want %d: %w", op, len(res), minResults, ErrBadReply)
		}
		return res, nil
	}
}

// probeFailed reports whether err from a model-specific instruction suggests that the module does
// not know it: an "unsupported" or unknown confirmation code, a packet error, or silence.
func probeFailed(err error) bool {
	return errors.Is(err, ErrUnsupported) || errors.Is(err, ErrModule) || errors.Is(err, ErrPacket) ||
		errors.Is(err, ErrTimeout) || errors.Is(err, ErrBadReply)
}
