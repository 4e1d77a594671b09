package lineterm

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// referenceFrame frames data all at once, the slow obvious way, for FuzzFramer to compare with.
func referenceFrame(f Framing, max int, data []byte) (lines []string, discarded int) {
	keep := func(seg []byte) {
		switch {
		case len(seg) > max:
			discarded++
		case len(seg) > 0:
			lines = append(lines, string(seg))
		}
	}
	switch f {
	case STXETX:
		chunks := bytes.Split(data, []byte{stx})
		for i, c := range chunks[1:] { // each chunk follows an STX; bytes before the first are noise
			if end := bytes.IndexByte(c, etx); end >= 0 {
				keep(c[:end])
			} else if i < len(chunks)-2 && len(c) > 0 {
				discarded++ // torn by the next STX
			}
		}
	default:
		delim := map[Framing]string{LF: "\n", CRLF: "\r\n", CR: "\r"}[f]
		segs := bytes.Split(data, []byte(delim))
		for _, s := range segs[:len(segs)-1] { // the last segment is incomplete
			keep(s)
		}
	}
	return lines, discarded
}

func FuzzFramer(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzFramer.
	f.Fuzz(func(t *testing.T, data []byte, framing uint8, maxLine uint8, cut uint16) {
		fr := Framing(framing % 4)
		max := int(maxLine)%64 + 1
		want, wantDiscarded := referenceFrame(fr, max, data)

		whole, wd := NewFramer(fr, max).Feed(data)
		if !slices.Equal(whole, want) || wd != wantDiscarded {
			t.Fatalf("%v max %d, Feed(%q): got %q, %d discarded; want %q, %d discarded", fr, max, data, whole, wd, want, wantDiscarded)
		}
		c := 0
		if len(data) > 0 {
			c = int(cut) % (len(data) + 1)
		}
		lines, d := feed(NewFramer(fr, max), string(data[:c]), string(data[c:]))
		if !slices.Equal(lines, want) || d != wantDiscarded {
			t.Fatalf("%v max %d, cut at %d of %q: got %q, %d discarded; want %q, %d discarded", fr, max, c, data, lines, d, want, wantDiscarded)
		}
		bytewise := NewFramer(fr, max)
		lines, d = nil, 0
		for i := range data {
			l, n := bytewise.Feed(data[i : i+1])
			lines, d = append(lines, l...), d+n
		}
		if !slices.Equal(lines, want) || d != wantDiscarded {
			t.Fatalf("%v max %d, byte by byte %q: got %q, %d discarded; want %q, %d discarded", fr, max, data, lines, d, want, wantDiscarded)
		}
		for _, l := range whole {
			if len(l) == 0 || len(l) > max {
				t.Fatalf("%v max %d: line %q has length %d, want 1..%d", fr, max, l, len(l), max)
			}
			bad := map[Framing]string{LF: "\n", CRLF: "\r\n", CR: "\r", STXETX: "\x02"}[fr]
			if bytes.Contains([]byte(l), []byte(bad)) || (fr == STXETX && bytes.IndexByte([]byte(l), etx) >= 0) {
				t.Fatalf("%v: line %q contains a delimiter", fr, l)
			}
		}
	})
}

func FuzzWiegand(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzWiegand.
	f.Fuzz(func(t *testing.T, text string, long bool, facility, card uint32, flip uint8) {
		w := Wiegand26
		if long {
			w = Wiegand34
		}
		n := int(w)

		// Whatever the text, Decode fails cleanly or returns a credential whose frame is the text.
		c, err := w.Decode(text)
		if err != nil {
			if !errors.Is(err, ErrFrame) && !errors.Is(err, ErrEvenParity) && !errors.Is(err, ErrOddParity) {
				t.Fatalf("%v.Decode(%q): got %v, want ErrFrame or a parity error", w, text, err)
			}
		} else {
			frame, err := w.Encode(c)
			if err != nil {
				t.Fatalf("%v.Encode(Decode(%q) = %v): %v", w, text, c, err)
			}
			v, ok := parseBits(text, n)
			if !ok {
				v, ok = parseHex(text, n)
			}
			if !ok || v != frame {
				t.Fatalf("%v.Decode(%q) = %v, which encodes to %x; want the frame %x of the text", w, text, c, frame, v)
			}
		}

		// Any credential that fits survives encoding in both forms, and any single flipped bit is
		// caught by the parity check covering it.
		c = Credential{Facility: facility % (1 << (n - 18)), Card: card & 0xffff}
		frame, err := w.Encode(c)
		if err != nil {
			t.Fatalf("%v.Encode(%v): %v", w, c, err)
		}
		for _, s := range []string{w.Hex(frame), w.Bits(frame)} {
			if got, err := w.Decode(s); err != nil || got != c {
				t.Fatalf("%v.Decode(%q): got %v, %v; want %v", w, s, got, err, c)
			}
		}
		k := int(flip) % n // bit k from the least significant; bit n-1 is transmitted first
		want := ErrOddParity
		if k > (n-2)/2 {
			want = ErrEvenParity
		}
		if got, err := w.Decode(w.Bits(frame ^ 1<<k)); !errors.Is(err, want) {
			t.Fatalf("%v.Decode(%v with bit %d flipped): got %v, %v; want %v", w, c, k, got, err, want)
		}
	})
}
