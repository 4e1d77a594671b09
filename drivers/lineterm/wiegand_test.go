package lineterm

import (
	"errors"
	"strings"
	"testing"
)

// Frames worked out by hand from the format (see the package documentation):
//
//	26-bit, facility 12 = 00001100, card 34567 = 1000011100000111
//	first 12 data bits 000011001000 have 3 ones -> even parity bit 1
//	last 12 data bits  011100000111 have 6 ones -> odd parity bit 1
var wiegandVectors = []struct {
	w    Wiegand
	c    Credential
	bits string
	hex  string
}{
	{Wiegand26, Credential{12, 34567}, "10000110010000111000001111", "2190E0F"},
	{Wiegand26, Credential{0, 0}, "00000000000000000000000001", "0000001"},
	{Wiegand26, Credential{255, 65535}, "01111111111111111111111111", "1FFFFFF"},
	{Wiegand34, Credential{1234, 34567}, "1000001001101001010000111000001110", "209A50E0E"},
	{Wiegand34, Credential{65535, 65535}, "0111111111111111111111111111111111", "1FFFFFFFF"},
}

func TestWiegandVectors(t *testing.T) {
	for _, v := range wiegandVectors {
		frame, err := v.w.Encode(v.c)
		if err != nil {
			t.Fatalf("%v.Encode(%v): %v", v.w, v.c, err)
		}
		if got := v.w.Bits(frame); got != v.bits {
			t.Errorf("%v.Bits(Encode(%v)): got %s, want %s", v.w, v.c, got, v.bits)
		}
		if got := v.w.Hex(frame); got != v.hex {
			t.Errorf("%v.Hex(Encode(%v)): got %s, want %s", v.w, v.c, got, v.hex)
		}
		for _, s := range []string{v.bits, v.hex, strings.ToLower(v.hex), "0x" + v.hex, "0X" + strings.TrimLeft(v.hex, "0")} {
			got, err := v.w.Decode(s)
			if err != nil || got != v.c {
				t.Errorf("%v.Decode(%q): got %v, %v; want %v, nil", v.w, s, got, err, v.c)
			}
		}
	}
}

func TestWiegandParity(t *testing.T) {
	for _, v := range wiegandVectors {
		n := int(v.w)
		for i := 0; i < n; i++ { // i counts from the first transmitted bit
			flipped := []byte(v.bits)
			flipped[i] ^= 1 // '0' <-> '1'
			want := ErrEvenParity
			if i > (n-2)/2 {
				want = ErrOddParity
			}
			_, err := v.w.Decode(string(flipped))
			if !errors.Is(err, want) {
				t.Errorf("%v.Decode(%s, bit %d flipped): got %v, want %v", v.w, flipped, i+1, err, want)
			}
		}
	}
}

func TestWiegandMalformed(t *testing.T) {
	for _, tt := range []struct {
		w Wiegand
		s string
	}{
		{Wiegand26, ""},
		{Wiegand26, "0x"},
		{Wiegand26, "1000011001000011100000111"},   // 25 bits
		{Wiegand26, "100001100100001110000011110"}, // 27 bits
		{Wiegand26, "1000011001000011100000111a"},  // 26 characters, not bits, too long for hex
		{Wiegand26, "4000000"},                     // bit 27 set
		{Wiegand26, "02190E0F"},                    // 8 digits
		{Wiegand26, "2190E0G"},
		{Wiegand26, " 2190E0F"},
		{Wiegand26, "-190E0F"},
		{Wiegand34, "400000000"},
		{Wiegand34, "1000001001101001010000111000001110 "},
		{NoWiegand, "2190E0F"},
		{Wiegand(30), "2190E0F"},
	} {
		if c, err := tt.w.Decode(tt.s); !errors.Is(err, ErrFrame) {
			t.Errorf("%v.Decode(%q): got %v, %v; want ErrFrame", tt.w, tt.s, c, err)
		}
	}
}

func TestWiegandEncodeRange(t *testing.T) {
	for _, tt := range []struct {
		w Wiegand
		c Credential
	}{
		{Wiegand26, Credential{256, 1}},
		{Wiegand26, Credential{1, 65536}},
		{Wiegand34, Credential{65536, 1}},
		{Wiegand34, Credential{1, 65536}},
		{NoWiegand, Credential{1, 1}},
	} {
		if f, err := tt.w.Encode(tt.c); err == nil {
			t.Errorf("%v.Encode(%v): got %x, nil; want an error", tt.w, tt.c, f)
		}
	}
}

func TestParseWiegand(t *testing.T) {
	for in, want := range map[string]Wiegand{"": NoWiegand, "none": NoWiegand, "26": Wiegand26, " 34": Wiegand34} {
		if got, err := ParseWiegand(in); err != nil || got != want {
			t.Errorf("ParseWiegand(%q): got %v, %v; want %v, nil", in, got, err, want)
		}
	}
	for _, in := range []string{"37", "w26", "0"} {
		if _, err := ParseWiegand(in); err == nil {
			t.Errorf("ParseWiegand(%q): got no error, want one", in)
		}
	}
	if got, want := (Credential{12, 34567}).String(), "12:34567"; got != want {
		t.Errorf("Credential.String(): got %q, want %q", got, want)
	}
}
