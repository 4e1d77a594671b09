package zfm

import (
	"encoding/binary"
	"io"
)

// Decoder turns a byte stream into packets. It is fed with Write (or Decode reads for it) and
// hands out complete packets with Next. Everything that is not a well-formed packet for its address
// is dropped and counted, never returned: bytes before a header (the stray 0x55 of a powering-up
// R50x, line noise), and frames with an unknown packet id, another address, a length outside
// 1..MaxPayload or a bad checksum. After a rejected frame the decoder resumes its search two bytes
// later, so a good packet that follows a truncated one is still found.
//
// Its decisions depend only on the bytes, not on how they were split into writes. A Decoder is not
// safe for concurrent use.
type Decoder struct {
	addr     uint32
	buf      []byte // the live bytes are buf[start:]
	start    int
	skipping bool // inside a run of skipped bytes or after a rejected frame
	stats    DecoderStats
	onBadSum func(PID)
}

// DecoderStats counts what a Decoder accepted and dropped.
type DecoderStats struct {
	Packets      uint64 // packets accepted
	GarbageRuns  uint64 // runs of bytes skipped while looking for a header
	GarbageBytes uint64 // bytes in those runs
	UnknownPID   uint64 // frames with a packet id that is not 01, 02, 07 or 08
	WrongAddress uint64 // frames for another address
	BadLength    uint64 // frames whose length field is outside 3..MaxPayload+2
	BadChecksum  uint64 // frames whose checksum does not add up
}

// Dropped is the number of drop events: garbage runs and rejected frames.
func (s DecoderStats) Dropped() uint64 {
	return s.GarbageRuns + s.UnknownPID + s.WrongAddress + s.BadLength + s.BadChecksum
}

// NewDecoder returns a decoder that accepts packets for address (DefaultAddress for a module that
// was never given another).
func NewDecoder(address uint32) *Decoder {
	return &Decoder{addr: address, buf: make([]byte, 0, 2*maxPacket)}
}

// Write appends b to the stream. It never fails. Call Next until it reports false after each
// Write: the decoder holds at most one incomplete packet between calls only if its packets are
// taken out.
func (d *Decoder) Write(b []byte) (int, error) {
	if d.start > 0 {
		n := copy(d.buf, d.buf[d.start:])
		d.buf, d.start = d.buf[:n], 0
	}
	d.buf = append(d.buf, b...)
	return len(b), nil
}

// Next returns the next complete packet in the stream, if there is one. The payload is a copy.
func (d *Decoder) Next() (Packet, bool) {
	for {
		b := d.buf[d.start:]
		i := headerIndex(b)
		if i < 0 {
			keep := 0
			if n := len(b); n > 0 && b[n-1] == headerHi {
				keep = 1 // may be the first half of a header
			}
			d.skip(len(b) - keep)
			return Packet{}, false
		}
		d.skip(i)
		b = b[i:]
		if len(b) < 7 {
			return Packet{}, false
		}
		if addr := binary.BigEndian.Uint32(b[2:6]); addr != d.addr {
			d.reject(&d.stats.WrongAddress)
			continue
		}
		pid := PID(b[6])
		if !pid.Valid() {
			d.reject(&d.stats.UnknownPID)
			continue
		}
		if len(b) < headerLen {
			return Packet{}, false
		}
		length := binary.BigEndian.Uint16(b[7:9])
		if length < 3 || length > MaxPayload+2 {
			d.reject(&d.stats.BadLength)
			continue
		}
		total := headerLen + int(length)
		if len(b) < total {
			return Packet{}, false
		}
		payload := b[headerLen : total-2]
		if binary.BigEndian.Uint16(b[total-2:total]) != checksum(pid, length, payload) {
			d.reject(&d.stats.BadChecksum)
			if d.onBadSum != nil {
				d.onBadSum(pid)
			}
			continue
		}
		p := Packet{Address: d.addr, PID: pid, Payload: append([]byte(nil), payload...)}
		d.consume(total)
		d.skipping = false
		d.stats.Packets++
		return p, true
	}
}

// Decode reads from r until a packet is complete and returns it. A read error is returned once
// the packets decoded before it are taken. A reader that returns (0, nil) forever keeps Decode
// waiting.
func (d *Decoder) Decode(r io.Reader) (Packet, error) {
	var chunk [512]byte
	for {
		if p, ok := d.Next(); ok {
			return p, nil
		}
		n, err := r.Read(chunk[:])
		d.Write(chunk[:n])
		if err != nil {
			if p, ok := d.Next(); ok {
				return p, nil
			}
			return Packet{}, err
		}
	}
}

// OnBadChecksum makes Next call fn, in stream order, with the packet id of every whole frame for
// its address that it drops for a bad checksum. A module answers a command that reached it
// corrupt with confirmation code 0x01 (CodePacket); the emulator uses this to do the same. The
// packet id itself may be what was corrupted.
func (d *Decoder) OnBadChecksum(fn func(PID)) { d.onBadSum = fn }

// Stats returns the counters so far.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// Buffered is the number of bytes held back waiting for the rest of a packet.
func (d *Decoder) Buffered() int { return len(d.buf) - d.start }

// Reset discards the buffered bytes, counting them as garbage, and returns how many there were.
// A driver calls it before a command when the previous exchange went wrong.
func (d *Decoder) Reset() int {
	n := d.Buffered()
	d.skip(n)
	d.skipping = false
	d.buf, d.start = d.buf[:0], 0
	return n
}

// skip drops n bytes of garbage.
func (d *Decoder) skip(n int) {
	if n <= 0 {
		return
	}
	if !d.skipping {
		d.stats.GarbageRuns++
		d.skipping = true
	}
	d.stats.GarbageBytes += uint64(n)
	d.consume(n)
}

// reject drops the header of a bad frame and counts it; the search resumes after the header.
func (d *Decoder) reject(counter *uint64) {
	*counter++
	d.skipping = true
	d.consume(2)
}

func (d *Decoder) consume(n int) {
	d.start += n
	if d.start == len(d.buf) {
		d.buf, d.start = d.buf[:0], 0
	}
}

// headerIndex returns the offset of the first EF 01 in b, or -1.
func headerIndex(b []byte) int {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == headerHi && b[i+1] == headerLo {
			return i
		}
	}
	return -1
}
