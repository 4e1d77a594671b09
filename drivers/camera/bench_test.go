package camera

import (
	"bytes"
	"image/jpeg"
	"io"
	"testing"
	"time"
)

// benchStream is 200 of ffmpeg's 320x240 frames back to back, as image2pipe writes them.
func benchStream(b *testing.B) []byte {
	frames := readAll(b, fixtures(b).colour)
	var s bytes.Buffer
	for i := 0; i < 200; i++ {
		s.Write(frames[i%len(frames)])
	}
	return s.Bytes()
}

// bareIndex is the baseline: cut the same stream at each FF D8 ... first FF D9 with bytes.Index,
// no structure, no copies (what a naive splitter does, and wrong for frames with a thumbnail).
func bareIndex(s []byte) int {
	n := 0
	for {
		i := bytes.Index(s, []byte{0xFF, 0xD8})
		if i < 0 {
			return n
		}
		j := bytes.Index(s[i+2:], []byte{0xFF, 0xD9})
		if j < 0 {
			return n
		}
		n++
		s = s[i+2+j+2:]
	}
}

// naiveSplit is the same contract done the naive way: read the stream in 64 KiB chunks, cut at each
// FF D8 ... first FF D9 with bytes.Index, hand out a copy of each frame.
func naiveSplit(r io.Reader) int {
	n := 0
	buf := make([]byte, 0, 256<<10)
	chunk := make([]byte, 64<<10)
	for {
		m, err := r.Read(chunk)
		buf = append(buf, chunk[:m]...)
		for {
			i := bytes.Index(buf, []byte{0xFF, 0xD8})
			if i < 0 {
				buf = buf[:0]
				break
			}
			j := bytes.Index(buf[i+2:], []byte{0xFF, 0xD9})
			if j < 0 {
				buf = buf[:copy(buf, buf[i:])]
				break
			}
			sink = bytes.Clone(buf[i : i+2+j+2])
			n++
			buf = buf[i+2+j+2:]
		}
		if err != nil {
			return n
		}
	}
}

var sink []byte

// baseline times f over about 300 ms (testing.Benchmark cannot run inside a benchmark) and
// returns its nanoseconds per call.
func baseline(f func()) float64 {
	n := 0
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
		f()
		n++
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// BenchmarkSplitter reads the stream through the Splitter (following the markers, copying each
// frame out) and reports its throughput beside the bare bytes.Index scan of the same bytes,
// measured in the same run: x_bare is the splitter's time over the bare scan's (which reads and
// copies nothing), x_naive over that of naiveSplit (the same reads and copies, no structure).
func BenchmarkSplitter(b *testing.B) {
	s := benchStream(b)
	want := bareIndex(s)
	bareNs := baseline(func() { bareIndex(s) })
	naiveNs := baseline(func() {
		if n := naiveSplit(bytes.NewReader(s)); n != want {
			b.Fatalf("naive: got %d frames, want %d", n, want)
		}
	})
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sp := NewSplitter(bytes.NewReader(s), 0)
		n := 0
		for {
			if _, err := sp.Next(); err == io.EOF {
				break
			}
			n++
		}
		if n != want {
			b.Fatalf("got %d frames, want %d", n, want)
		}
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(len(s))/bareNs*1e3, "bare_MB/s")
	b.ReportMetric(ns/bareNs, "x_bare")
	b.ReportMetric(ns/naiveNs, "x_naive")
}

// BenchmarkInspect is the colour check of one 320x240 frame (a full decode and the chroma fit)
// beside the header-only check (min_chroma = 0) in the same run: x_header is the ratio.
func BenchmarkInspect(b *testing.B) {
	frame := readAll(b, fixtures(b).colour[:1])[0]
	hdrNs := baseline(func() {
		if _, err := jpeg.DecodeConfig(bytes.NewReader(frame)); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, v, err := inspect(frame, DefaultMinChroma); v != frameOK {
			b.Fatalf("got verdict %d (%v), want ok", v, err)
		}
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(hdrNs, "header_ns/op")
	b.ReportMetric(ns/hdrNs, "x_header")
}
