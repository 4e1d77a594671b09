package zfm

import (
	"encoding/binary"
	"fmt"
)

// SysPara is the module's system parameters, as ReadSysPara returns them (16 bytes).
type SysPara struct {
	Status        uint16 // bit 0 busy, 1 finger matched, 2 password verified, 3 image valid
	SystemID      uint16
	Capacity      int // library pages: read it, it differs by model (162 to 1000)
	SecurityLevel int // 1..5
	Address       uint32
	PacketSize    int // bytes in a data packet: 32, 64, 128 or 256
	BaudN         int // the line runs at BaudN * 9600
}

// sysParaLen is the size of the parameter block.
const sysParaLen = 16

// MaxCapacity is the largest library ReadIndexTable can describe (4 tables of 256 pages).
const MaxCapacity = 1024

// PacketSizeCode converts a data packet size in bytes to the code of register 6 and SysPara
// bytes 12-13 (0 = 32, 1 = 64, 2 = 128, 3 = 256).
func PacketSizeCode(size int) (uint8, bool) {
	switch size {
	case 32:
		return 0, true
	case 64:
		return 1, true
	case 128:
		return 2, true
	case 256:
		return 3, true
	}
	return 0, false
}

// Baud is the line speed the parameters describe.
func (p SysPara) Baud() int { return p.BaudN * 9600 }

// MarshalBinary encodes the 16-byte parameter block.
func (p SysPara) MarshalBinary() ([]byte, error) {
	code, ok := PacketSizeCode(p.PacketSize)
	if !ok {
		return nil, fmt.Errorf("zfm: sys para: packet size %d is not 32, 64, 128 or 256", p.PacketSize)
	}
	if p.Capacity < 0 || p.Capacity > 0xFFFF {
		return nil, fmt.Errorf("zfm: sys para: capacity %d out of range", p.Capacity)
	}
	b := make([]byte, 0, sysParaLen)
	b = binary.BigEndian.AppendUint16(b, p.Status)
	b = binary.BigEndian.AppendUint16(b, p.SystemID)
	b = binary.BigEndian.AppendUint16(b, uint16(p.Capacity))
	b = binary.BigEndian.AppendUint16(b, uint16(p.SecurityLevel))
	b = binary.BigEndian.AppendUint32(b, p.Address)
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	b = binary.BigEndian.AppendUint16(b, uint16(p.BaudN))
	return b, nil
}

// UnmarshalBinary decodes the 16-byte parameter block. It rejects a packet size code above 3 and
// a capacity of 0 or above MaxCapacity.
func (p *SysPara) UnmarshalBinary(b []byte) error {
	if len(b) < sysParaLen {
		return fmt.Errorf("zfm: sys para: %d bytes, want %d: %w", len(b), sysParaLen, ErrBadReply)
	}
	code := binary.BigEndian.Uint16(b[12:14])
	if code > 3 {
		return fmt.Errorf("zfm: sys para: packet size code %d, want 0..3: %w", code, ErrBadReply)
	}
	q := SysPara{
		Status:        binary.BigEndian.Uint16(b[0:2]),
		SystemID:      binary.BigEndian.Uint16(b[2:4]),
		Capacity:      int(binary.BigEndian.Uint16(b[4:6])),
		SecurityLevel: int(binary.BigEndian.Uint16(b[6:8])),
		Address:       binary.BigEndian.Uint32(b[8:12]),
		PacketSize:    32 << code,
		BaudN:         int(binary.BigEndian.Uint16(b[14:16])),
	}
	if q.Capacity == 0 || q.Capacity > MaxCapacity {
		return fmt.Errorf("zfm: sys para: capacity %d, want 1..%d: %w", q.Capacity, MaxCapacity, ErrBadReply)
	}
	*p = q
	return nil
}

// Hit is a search result: the library page that matched and the module's score.
type Hit struct {
	Page  int
	Score int
}

// Index tells which library pages hold a template: Index[page]. Its length is the capacity.
type Index []bool

// Count is the number of pages in use.
func (x Index) Count() int {
	n := 0
	for _, used := range x {
		if used {
			n++
		}
	}
	return n
}

// Free returns the lowest free page.
func (x Index) Free() (int, bool) {
	for page, used := range x {
		if !used {
			return page, true
		}
	}
	return 0, false
}

// Buffer is a character buffer of the module: 1 or 2.
type Buffer uint8

// Character buffers.
const (
	Buffer1 Buffer = 1
	Buffer2 Buffer = 2
)

// AuraControl is the LED ring's mode (R50x).
type AuraControl uint8

// LED modes.
const (
	AuraBreathe AuraControl = 1
	AuraFlash   AuraControl = 2
	AuraOn      AuraControl = 3
	AuraOff     AuraControl = 4
)

// AuraColour is the LED ring's colour (R50x).
type AuraColour uint8

// LED colours.
const (
	AuraRed    AuraColour = 1
	AuraBlue   AuraColour = 2
	AuraPurple AuraColour = 3
)

// Aura is one AuraLedConfig command: mode, speed (0-255, lower is faster), colour, and how many
// times to breathe or flash (0 = forever).
type Aura struct {
	Control AuraControl
	Speed   uint8
	Colour  AuraColour
	Times   uint8
}
