package camera

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// chunky returns reads of random sizes from 1 to 4,000 bytes.
type chunky struct {
	r   io.Reader
	rng *rand.Rand
}

func (c *chunky) Read(p []byte) (int, error) {
	n := 1 + c.rng.IntN(4000)
	return c.r.Read(p[:min(n, len(p))])
}

func splitAll(t testing.TB, r io.Reader, max int) ([][]byte, *Splitter) {
	t.Helper()
	sp := NewSplitter(r, max)
	var out [][]byte
	for {
		b, err := sp.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Next: got %v, want io.EOF at the end", err)
			}
			return out, sp
		}
		out = append(out, b)
	}
}

func sameFrames(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d frames, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: frame %d: got %d bytes, want the %d bytes put in", what, i, len(got[i]), len(want[i]))
		}
	}
}

// TestSplitterRealFrames splits ffmpeg's JPEG frames, with noise between them, whatever the read
// sizes.
func TestSplitterRealFrames(t *testing.T) {
	frames := readAll(t, fixtures(t).colour)
	var stream bytes.Buffer
	stream.WriteString("--boundary\r\nContent-Type: image/jpeg\r\n\r\n\xff\xff\x00")
	for _, f := range frames {
		stream.Write(f)
		stream.WriteString("\r\n--boundary\r\n\xd9\xff")
	}
	for _, c := range []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(stream.Bytes()) }},
		{"bytewise", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream.Bytes())) }},
		{"chunks", func() io.Reader { return &chunky{bytes.NewReader(stream.Bytes()), rand.New(rand.NewPCG(1, 2))} }},
	} {
		got, sp := splitAll(t, c.r(), 0)
		sameFrames(t, c.name, got, frames)
		if sp.Corrupt() != 0 {
			t.Errorf("%s: got %d corrupt, want 0", c.name, sp.Corrupt())
		}
	}
}

// withThumbnail puts an EXIF-like APP1 segment holding a whole small JPEG into frame, after SOI.
func withThumbnail(frame, thumb []byte) []byte {
	payload := append([]byte("Exif\x00\x00"), thumb...)
	seg := []byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	out := append([]byte{0xFF, 0xD8}, seg...)
	out = append(out, payload...)
	return append(out, frame[2:]...)
}

func TestSplitterThumbnailInside(t *testing.T) {
	frames := readAll(t, fixtures(t).colour[:3])
	thumb := frames[2][:min(len(frames[2]), 60000)]
	thumb = append(thumb[:len(thumb):len(thumb)], 0xFF, 0xD9)
	big := withThumbnail(frames[0], thumb)
	if _, _, v, err := inspect(big, DefaultMinChroma); v != frameOK {
		t.Fatalf("the frame with a thumbnail does not decode: %v", err)
	}
	got, sp := splitAll(t, bytes.NewReader(append(big, frames[1]...)), 0)
	sameFrames(t, "thumbnail", got, [][]byte{big, frames[1]})
	if sp.Corrupt() != 0 {
		t.Errorf("got %d corrupt, want 0", sp.Corrupt())
	}
}

func TestSplitterDropsBadFrames(t *testing.T) {
	frames := readAll(t, fixtures(t).colour[:3])
	half := frames[0][:len(frames[0])/2]
	cases := []struct {
		name        string
		in          []byte
		max         int
		want        [][]byte
		wantCorrupt uint64
	}{
		{"truncated by the next frame", cat(half, frames[1]), 0, [][]byte{frames[1]}, 1},
		{"truncated at the end", cat(frames[1], half), 0, [][]byte{frames[1]}, 1},
		{"too large", cat(frames[0], frames[1]), len(frames[1]) + 1, [][]byte{frames[1]}, 1},
		{"broken segment", cat([]byte{0xFF, 0xD8, 0x12, 0x34}, frames[2]), 0, [][]byte{frames[2]}, 1},
		{"zero length segment", cat([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00}, frames[2]), 0, [][]byte{frames[2]}, 1},
		{"noise only", []byte("\x00\xff\xd9 no image here \xff"), 0, nil, 0},
	}
	if len(frames[0]) <= len(frames[1]) {
		t.Fatalf("fixture: frame 0 (%d bytes) must be larger than frame 1 (%d)", len(frames[0]), len(frames[1]))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, sp := splitAll(t, iotest.HalfReader(bytes.NewReader(c.in)), c.max)
			sameFrames(t, c.name, got, c.want)
			if sp.Corrupt() != c.wantCorrupt {
				t.Errorf("got %d corrupt, want %d", sp.Corrupt(), c.wantCorrupt)
			}
		})
	}
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// tinyJPEG is a whole 8x8 grey baseline JPEG (made by ffmpeg), the fuzz seeds' frame.
var tinyJPEG = []byte(
	"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00\xff\xfe\x00\x10Lavc" +
		"59.37.100\x00\xff\xdb\x00C\x00\x08\x0a\x0a\x0b\x0a\x0b\x0d\x0d\x0d\x0d\x0d\x0d\x10\x0f" +
		"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x12\x12\x12\x15\x15\x15\x12\x12\x12\x10\x10" +
		"\x12\x12\x14\x14\x15\x15\x17\x17\x17\x15\x15\x15\x15\x17\x17\x19\x19\x19\x1e\x1e\x1c\x1c" +
		"##$++3\xff\xc4\x00J\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x01\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x11\x01\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xc0\x00\x11\x08\x00\x08\x00\x08\x03\x01" +
		"\x12\x00\x02\x12\x00\x03\x12\x00\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00?\x00" +
		"\x00\x0f\xff\xd9")

// FuzzSplitter feeds arbitrary bytes: the splitter must not panic, must return only FF D8 .. FF D9
// frames no longer than its maximum, in input order, the same frames whatever the read sizes; and
// a real frame between noise without FF bytes must come out whole.
func FuzzSplitter(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzSplitter.
	f.Add(tinyJPEG, uint16(0), uint8(0))
	f.Add(cat(tinyJPEG, tinyJPEG), uint16(100), uint8(3))
	f.Add(cat([]byte("--b\r\n\r\n"), tinyJPEG[:200], tinyJPEG), uint16(7), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, maxFrame uint16, chunk uint8) {
		max := int(maxFrame)
		if max < 4 {
			max = 1 << 20
		}
		whole, _ := splitAll(t, bytes.NewReader(data), max)
		pos := 0
		for i, fr := range whole {
			if len(fr) < 4 || len(fr) > max || !bytes.HasPrefix(fr, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(fr, []byte{0xFF, 0xD9}) {
				t.Fatalf("frame %d: got % x (%d bytes), want FF D8 .. FF D9 of at most %d bytes", i, fr[:min(8, len(fr))], len(fr), max)
			}
			j := bytes.Index(data[pos:], fr)
			if j < 0 {
				t.Fatalf("frame %d is not in the input after offset %d", i, pos)
			}
			pos += j + len(fr)
		}
		r := io.Reader(bytes.NewReader(data))
		if chunk%2 == 1 {
			r = iotest.OneByteReader(r)
		} else {
			r = &chunky{r, rand.New(rand.NewPCG(uint64(chunk), 1))}
		}
		got, _ := splitAll(t, r, max)
		sameFrames(t, "chunked", got, whole)

		noise := bytes.ReplaceAll(data, []byte{0xFF}, []byte{0x00})
		got, sp := splitAll(t, bytes.NewReader(cat(noise, tinyJPEG, noise, tinyJPEG)), 0)
		sameFrames(t, "between noise", got, [][]byte{tinyJPEG, tinyJPEG})
		if sp.Corrupt() != 0 {
			t.Fatalf("between noise: got %d corrupt, want 0", sp.Corrupt())
		}
	})
}
