package lineterm

// Framer cuts a byte stream into lines. It is streaming: bytes may be fed in any chunks, a line
// split across reads comes out whole. It never fails: bytes outside STX/ETX frames are ignored,
// empty lines are skipped, and a line longer than the maximum is discarded up to its delimiter and
// counted. A Framer is not safe for concurrent use.
type Framer struct {
	framing Framing
	max     int
	line    []byte
	skip    bool // discarding an overlong line up to the next delimiter
	cr      bool // CRLF: the last byte was a CR that may start the delimiter
	in      bool // STXETX: inside a frame
}

// NewFramer returns a Framer for framing that keeps lines of at most maxLine bytes (without the
// delimiter); maxLine below 1 means DefaultMaxLine.
func NewFramer(framing Framing, maxLine int) *Framer {
	if maxLine < 1 {
		maxLine = DefaultMaxLine
	}
	return &Framer{framing: framing, max: maxLine, line: make([]byte, 0, min(maxLine, 512))}
}

// Feed consumes p and returns the non-empty lines it completed, in order and without their
// delimiters, and how many lines it discarded: overlong lines and, under STX/ETX, frames cut short
// by the next STX. Bytes of a line not yet complete are kept for the next Feed.
func (f *Framer) Feed(p []byte) (lines []string, discarded int) {
	for _, b := range p {
		switch f.framing {
		case CRLF:
			if f.cr {
				f.cr = false
				if b == '\n' {
					lines, discarded = f.end(lines, discarded)
					continue
				}
				f.add('\r')
			}
			if b == '\r' {
				f.cr = true
				continue
			}
			f.add(b)
		case CR, LF:
			if (f.framing == CR && b == '\r') || (f.framing == LF && b == '\n') {
				lines, discarded = f.end(lines, discarded)
				continue
			}
			f.add(b)
		case STXETX:
			switch {
			case b == stx:
				if f.in && (len(f.line) > 0 || f.skip) {
					discarded++
				}
				f.line, f.skip, f.in = f.line[:0], false, true
			case b == etx:
				if f.in {
					lines, discarded = f.end(lines, discarded)
				}
				f.in = false
			case f.in:
				f.add(b)
			}
		}
	}
	return lines, discarded
}

func (f *Framer) add(b byte) {
	if f.skip {
		return
	}
	if len(f.line) >= f.max {
		f.line, f.skip = f.line[:0], true
		return
	}
	f.line = append(f.line, b)
}

func (f *Framer) end(lines []string, discarded int) ([]string, int) {
	switch {
	case f.skip:
		discarded++
	case len(f.line) > 0:
		lines = append(lines, string(f.line))
	}
	f.line, f.skip = f.line[:0], false
	return lines, discarded
}
