package zfm

import (
	"encoding/binary"
	"fmt"
)

// DefaultAddress is the address every module answers to until SetAdder changes it.
const DefaultAddress uint32 = 0xFFFFFFFF

// MaxPayload is the largest payload a packet can carry: a data packet of the largest packet size
// (256 bytes). Acknowledgements and commands are much shorter.
const MaxPayload = 256

// Packet framing.
const (
	headerHi = 0xEF
	headerLo = 0x01
	// headerLen is header (2) + address (4) + packet id (1) + length (2).
	headerLen = 9
	// maxPacket is the longest packet on the wire.
	maxPacket = headerLen + MaxPayload + 2
)

// PID is a packet identifier: what kind of packet follows.
type PID byte

// Packet identifiers.
const (
	PIDCommand PID = 0x01 // host to module: instruction code and parameters
	PIDData    PID = 0x02 // data packet with more to follow
	PIDAck     PID = 0x07 // module to host: confirmation code and results
	PIDEndData PID = 0x08 // the last data packet of a transfer
)

// Valid reports whether p is one of the four packet identifiers of the protocol.
func (p PID) Valid() bool {
	switch p {
	case PIDCommand, PIDData, PIDAck, PIDEndData:
		return true
	}
	return false
}

func (p PID) String() string {
	switch p {
	case PIDCommand:
		return "command"
	case PIDData:
		return "data"
	case PIDAck:
		return "ack"
	case PIDEndData:
		return "end-data"
	}
	return fmt.Sprintf("pid(0x%02X)", byte(p))
}

// Packet is one frame of the protocol, without its header, length and checksum.
type Packet struct {
	Address uint32
	PID     PID
	// Payload is the instruction code and parameters of a command, the confirmation code and
	// results of an acknowledgement, or a chunk of a transfer.
	Payload []byte
}

// Encode returns the wire bytes of p: header, address, packet id, length, payload and checksum.
// It fails if the packet id is unknown or the payload is empty or longer than MaxPayload.
func Encode(p Packet) ([]byte, error) {
	return AppendEncode(make([]byte, 0, headerLen+len(p.Payload)+2), p)
}

// AppendEncode is Encode appending to dst.
func AppendEncode(dst []byte, p Packet) ([]byte, error) {
	if !p.PID.Valid() {
		return dst, fmt.Errorf("zfm: encode: unknown packet id 0x%02X", byte(p.PID))
	}
	if len(p.Payload) == 0 || len(p.Payload) > MaxPayload {
		return dst, fmt.Errorf("zfm: encode: payload of %d bytes is outside 1..%d", len(p.Payload), MaxPayload)
	}
	length := uint16(len(p.Payload) + 2)
	dst = append(dst, headerHi, headerLo)
	dst = binary.BigEndian.AppendUint32(dst, p.Address)
	dst = append(dst, byte(p.PID))
	dst = binary.BigEndian.AppendUint16(dst, length)
	dst = append(dst, p.Payload...)
	return binary.BigEndian.AppendUint16(dst, checksum(p.PID, length, p.Payload)), nil
}

// checksum is the sum of the packet id, both length bytes and every payload byte, modulo 2^16.
func checksum(pid PID, length uint16, payload []byte) uint16 {
	sum := uint16(pid) + length>>8 + length&0xFF
	for _, b := range payload {
		sum += uint16(b)
	}
	return sum
}
