package camera

import (
	"bytes"
	"io"
)

// JPEG markers the splitter acts on (ITU-T T.81, table B.1).
const (
	markSOI = 0xD8 // start of image
	markEOI = 0xD9 // end of image
	markSOS = 0xDA // start of scan: entropy-coded data follows its header
	markTEM = 0x01 // standalone, no length
	markRST = 0xD0 // RST0..RST7 (0xD0..0xD7): standalone, inside entropy-coded data
)

// Splitter cuts a byte stream of concatenated JPEG images (ffmpeg's image2pipe, a camera's MJPEG
// body) into whole images. It follows the marker structure rather than looking for the first FF D9
// after FF D8: segment lengths are skipped (so a thumbnail's markers inside an APP1 segment do not
// end the frame early) and entropy-coded data is scanned for real markers only (FF 00 stuffing and
// RSTn are data). Bytes between images are skipped; an image cut short by a new start-of-image
// marker, broken segment structure or the stream's end, or longer than the maximum, is dropped and
// counted; the splitter then resynchronises on the next FF D8. It never fails on its input: the
// only errors it returns are the reader's.
type Splitter struct {
	r   io.Reader
	max int

	buf       []byte // buf[off:n] holds unread bytes; buf[off] is a frame's first byte when inFrame
	off, n    int
	inFrame   bool
	pos       int  // how far into buf[off:n] the current frame has been parsed
	entropy   bool // pos is inside entropy-coded data (after an SOS header)
	err       error
	skipped   uint64
	corrupt   uint64
	readChunk int
}

// NewSplitter reads JPEG images from r. An image longer than max bytes is dropped; max <= 0 means
// 8 MiB.
func NewSplitter(r io.Reader, max int) *Splitter {
	if max <= 0 {
		max = 8 << 20
	}
	return &Splitter{r: r, max: max, readChunk: 64 << 10}
}

// Skipped is the number of bytes found outside any image (noise, multipart headers), plus those of
// dropped images.
func (s *Splitter) Skipped() uint64 { return s.skipped }

// Corrupt is the number of images dropped: truncated, malformed or too large.
func (s *Splitter) Corrupt() uint64 { return s.corrupt }

// Next returns the next whole image, from FF D8 to FF D9 inclusive, in a slice of its own. It
// blocks in the reader; at the end of the stream it returns the reader's error (io.EOF), counting
// an unfinished image as corrupt.
func (s *Splitter) Next() ([]byte, error) {
	for {
		if frame := s.scan(); frame != nil {
			return frame, nil
		}
		if s.err != nil {
			if s.inFrame {
				s.corrupt++
				s.skipped += uint64(s.n - s.off)
				s.inFrame, s.n, s.off = false, 0, 0
			}
			return nil, s.err
		}
		s.fill()
	}
}

// fill reads once from r into the free end of buf, growing it while it holds a frame in progress.
func (s *Splitter) fill() {
	if s.off > 0 { // move the unread bytes to the front, once per read rather than per frame
		s.n = copy(s.buf, s.buf[s.off:s.n])
		s.off = 0
	}
	if len(s.buf)-s.n < s.readChunk/2 {
		nb := make([]byte, max(2*len(s.buf), s.n+s.readChunk))
		copy(nb, s.buf[:s.n])
		s.buf = nb
	}
	m, err := s.r.Read(s.buf[s.n:])
	s.n += m
	if err != nil {
		s.err = err
	} else if m == 0 {
		s.err = io.ErrNoProgress
	}
}

// drop consumes the first k unread bytes.
func (s *Splitter) drop(k int) {
	s.off += k
	if s.off == s.n {
		s.off, s.n = 0, 0
	}
}

// abandon drops the frame in progress as corrupt and looks for the next SOI after its first byte.
func (s *Splitter) abandon(at int) {
	s.corrupt++
	s.skipped += uint64(at)
	s.drop(at)
	s.inFrame = false
}

// scan parses as much of buf[:n] as it can, returning a complete frame or nil for "need more".
func (s *Splitter) scan() []byte {
	for {
		if !s.inFrame {
			d := s.buf[s.off:s.n]
			i := bytes.Index(d, []byte{0xFF, markSOI})
			if i < 0 {
				keep := 0
				if len(d) > 0 && d[len(d)-1] == 0xFF {
					keep = 1
				}
				s.skipped += uint64(len(d) - keep)
				s.drop(len(d) - keep)
				return nil
			}
			s.skipped += uint64(i)
			s.drop(i)
			s.inFrame, s.pos, s.entropy = true, 2, false
		}
		d := s.buf[s.off:s.n]
		end, state := s.parse(d)
		switch state {
		case parseMore:
			if s.pos > s.max {
				s.abandon(min(s.pos, len(d)))
				continue
			}
			return nil
		case parseDone:
			if end > s.max {
				s.abandon(end)
				continue
			}
			frame := bytes.Clone(d[:end]) // no zeroing before the copy
			s.drop(end)
			s.inFrame = false
			return frame
		case parseBroken:
			// The frame is cut short at end (a new SOI, or structure that cannot be JPEG): drop
			// what came before and resynchronise from there.
			s.abandon(max(end, 1))
		}
	}
}

type parseState int

const (
	parseMore   parseState = iota // need more bytes
	parseDone                     // a whole frame: d[:end]
	parseBroken                   // not a valid frame; resynchronise at end
)

// parse walks the frame's markers from s.pos, remembering where it stopped.
func (s *Splitter) parse(d []byte) (int, parseState) {
	for {
		if s.entropy {
			if s.pos >= len(d) {
				return 0, parseMore
			}
			j := bytes.IndexByte(d[s.pos:], 0xFF)
			if j < 0 {
				s.pos = len(d)
				return 0, parseMore
			}
			j += s.pos
			if j+1 >= len(d) {
				s.pos = j
				return 0, parseMore
			}
			switch m := d[j+1]; {
			case m == 0x00 || (m >= markRST && m <= markRST+7):
				s.pos = j + 2
			case m == 0xFF:
				s.pos = j + 1 // fill byte before a marker
			default:
				s.pos, s.entropy = j, false // a marker ends the scan
			}
			continue
		}
		p := s.pos
		if p+1 >= len(d) {
			return 0, parseMore
		}
		if d[p] != 0xFF {
			return p, parseBroken
		}
		m := d[p+1]
		switch {
		case m == 0xFF:
			s.pos = p + 1 // fill
		case m == markEOI:
			return p + 2, parseDone
		case m == markSOI:
			return p, parseBroken // truncated: a new image starts here
		case m == markTEM || (m >= markRST && m <= markRST+7):
			s.pos = p + 2
		case m == 0x00:
			return p, parseBroken
		default:
			if p+3 >= len(d) {
				return 0, parseMore
			}
			l := int(d[p+2])<<8 | int(d[p+3])
			if l < 2 {
				return p, parseBroken
			}
			s.pos = p + 2 + l
			if m == markSOS {
				s.entropy = true
			}
			if s.pos > len(d) {
				return 0, parseMore
			}
		}
	}
}
