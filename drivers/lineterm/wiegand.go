package lineterm

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Wiegand is the length in bits of the Wiegand frames a converter prints, or NoWiegand.
type Wiegand int

// Wiegand formats.
const (
	NoWiegand Wiegand = 0  // the id group is the device ID as printed
	Wiegand26 Wiegand = 26 // H10301: 8-bit facility code, 16-bit card number
	Wiegand34 Wiegand = 34 // 16-bit facility code, 16-bit card number
)

// ParseWiegand parses "none" (or ""), "26" or "34".
func ParseWiegand(s string) (Wiegand, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return NoWiegand, nil
	case "26":
		return Wiegand26, nil
	case "34":
		return Wiegand34, nil
	}
	return 0, fmt.Errorf("lineterm: wiegand: %q is not one of none, 26, 34", s)
}

// String returns "none", "26" or "34".
func (w Wiegand) String() string {
	if w == NoWiegand {
		return "none"
	}
	return strconv.Itoa(int(w))
}

func (w Wiegand) valid() bool { return w == NoWiegand || w == Wiegand26 || w == Wiegand34 }

// Credential is what a Wiegand frame carries.
type Credential struct {
	Facility uint32
	Card     uint32
}

// String is the device ID of the credential, "facility:card" in decimal, e.g. "12:34567"; it is
// the key of Config.Map for a Wiegand converter.
func (c Credential) String() string {
	return strconv.FormatUint(uint64(c.Facility), 10) + ":" + strconv.FormatUint(uint64(c.Card), 10)
}

// Decode parses the text of a w-bit frame, either as a bit string or in hexadecimal (see the
// package documentation), and checks both parity bits. It fails with ErrFrame, ErrEvenParity or
// ErrOddParity (when both parities are wrong, ErrEvenParity).
func (w Wiegand) Decode(s string) (Credential, error) {
	n := int(w)
	if !w.valid() || w == NoWiegand {
		return Credential{}, fmt.Errorf("%w: no wiegand format configured", ErrFrame)
	}
	frame, ok := parseBits(s, n)
	if !ok {
		frame, ok = parseHex(s, n)
	}
	if !ok {
		return Credential{}, fmt.Errorf("%w: %q is neither %d bits nor at most %d hex digits", ErrFrame, s, n, (n+3)/4)
	}
	half := (n - 2) / 2
	data := frame >> 1 & (1<<(n-2) - 1)
	if (bits.OnesCount64(data>>half)+int(frame>>(n-1)&1))%2 != 0 {
		return Credential{}, fmt.Errorf("%w in %q", ErrEvenParity, s)
	}
	if (bits.OnesCount64(data&(1<<half-1))+int(frame&1))%2 != 1 {
		return Credential{}, fmt.Errorf("%w in %q", ErrOddParity, s)
	}
	return Credential{Facility: uint32(data >> 16), Card: uint32(data & 0xffff)}, nil
}

// Encode returns the w-bit frame carrying c with both parity bits set, the first transmitted bit
// being the most significant (bit w-1).
func (w Wiegand) Encode(c Credential) (uint64, error) {
	n := int(w)
	if !w.valid() || w == NoWiegand {
		return 0, fmt.Errorf("lineterm: wiegand: encode: no wiegand format")
	}
	if fbits := n - 18; c.Facility >= 1<<fbits {
		return 0, fmt.Errorf("lineterm: wiegand: encode: facility %d does not fit in %d bits", c.Facility, fbits)
	}
	if c.Card > 0xffff {
		return 0, fmt.Errorf("lineterm: wiegand: encode: card %d does not fit in 16 bits", c.Card)
	}
	half := (n - 2) / 2
	data := uint64(c.Facility)<<16 | uint64(c.Card)
	frame := data << 1
	if bits.OnesCount64(data>>half)%2 != 0 {
		frame |= 1 << (n - 1)
	}
	if bits.OnesCount64(data&(1<<half-1))%2 == 0 {
		frame |= 1
	}
	return frame, nil
}

// Bits formats a w-bit frame as a string of '0' and '1', first transmitted bit first.
func (w Wiegand) Bits(frame uint64) string {
	b := make([]byte, int(w))
	for i := range b {
		b[i] = '0' + byte(frame>>(len(b)-1-i)&1)
	}
	return string(b)
}

// Hex formats a w-bit frame in upper-case hexadecimal, zero-padded to 7 (26-bit) or 9 (34-bit)
// digits, as converters print it.
func (w Wiegand) Hex(frame uint64) string {
	return fmt.Sprintf("%0*X", (int(w)+3)/4, frame)
}

func parseBits(s string, n int) (uint64, bool) {
	if len(s) != n {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '0':
			v <<= 1
		case '1':
			v = v<<1 | 1
		default:
			return 0, false
		}
	}
	return v, true
}

func parseHex(s string, n int) (uint64, bool) {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if len(s) == 0 || len(s) > (n+3)/4 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	if v>>n != 0 {
		return 0, false
	}
	return v, true
}
