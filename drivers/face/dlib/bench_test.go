//go:build cgo

package dlib_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// singleFaceFrames are photos whose face stays wider than 80 pixels at 640 pixels across.
var singleFaceFrames = []string{"probe/bona2.jpg", "probe/chaeyeon3.jpg", "probe/eunseo3.jpg", "unknown/meiqi.jpg", "unknown/joy.jpg"}

// frames640 scales each photo to 640 pixels across (area average), as a camera would deliver it.
func frames640(b *testing.B) [][]byte {
	b.Helper()
	var out [][]byte
	for _, rel := range singleFaceFrames {
		img, err := jpeg.Decode(bytes.NewReader(readPhoto(b, rel)))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, encode(b, scale(img, 640)))
	}
	return out
}

func scale(img image.Image, w int) *image.RGBA {
	sb := img.Bounds()
	h := sb.Dy() * w / sb.Dx()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		y0, y1 := sb.Min.Y+y*sb.Dy()/h, sb.Min.Y+(y+1)*sb.Dy()/h
		for x := 0; x < w; x++ {
			x0, x1 := sb.Min.X+x*sb.Dx()/w, sb.Min.X+(x+1)*sb.Dx()/w
			var r, g, bl, n uint32
			for yy := y0; yy < max(y1, y0+1); yy++ {
				for xx := x0; xx < max(x1, x0+1); xx++ {
					cr, cg, cb, _ := img.At(xx, yy).RGBA()
					r, g, bl, n = r+cr, g+cg, bl+cb, n+1
				}
			}
			dst.Set(x, y, color.RGBA{uint8(r / n >> 8), uint8(g / n >> 8), uint8(bl / n >> 8), 255})
		}
	}
	return dst
}

func encode(b testing.TB, img image.Image) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkPipelineFPS: frames per second through the whole pipeline (detect, gate, match, decide,
// evidence for what it emits) on 640-pixel single-face frames, beside a bare loop calling go-face
// on the same frames, interleaved frame by frame so both see the same machine. Target ratio >= 0.95.
func BenchmarkPipelineFPS(b *testing.B) {
	frames := frames640(b)
	p := classPipeline(b)
	s := p.NewStream(drivers.Env{}, drivers.Auto)
	s.ChangeFloor = -1 // every frame is searched, as the bare loop does
	var bare, pipe time.Duration
	var bareCPU, pipeCPU float64
	at := time.Unix(0, 0)
	for i := 0; b.Loop(); i++ {
		jpg := frames[i%len(frames)]
		t0, c0 := time.Now(), cpuSeconds()
		if _, err := plain.Faces(jpg); err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), cpuSeconds()
		at = at.Add(200 * time.Millisecond)
		if _, err := s.Push(context.Background(), jpg, at); err != nil {
			b.Fatal(err)
		}
		pipe += time.Since(t1)
		pipeCPU += cpuSeconds() - c1
		bare += t1.Sub(t0)
		bareCPU += c1 - c0
	}
	n := float64(b.N)
	b.ReportMetric(n/pipe.Seconds(), "pipeline-fps")
	b.ReportMetric(n/bare.Seconds(), "bare-fps")
	b.ReportMetric(bare.Seconds()/pipe.Seconds(), "ratio")
	// CPU seconds per frame, which a shared machine's load disturbs less than wall time.
	b.ReportMetric(pipeCPU/n*1000, "pipeline-cpu-ms")
	b.ReportMetric(bareCPU/n*1000, "bare-cpu-ms")
	b.ReportMetric(bareCPU/pipeCPU, "cpu-ratio")
}

// BenchmarkSpotCheck: one spot check of group/pristin.jpg at full resolution (all ten faces found)
// through Pipeline.SpotCheck, with evidence written to memory, beside the bare go-face call that
// detects and describes every face. Target ratio (spot check / bare) <= 1.1.
func BenchmarkSpotCheck(b *testing.B) {
	jpg := readPhoto(b, "group/pristin.jpg")
	p := classPipeline(b)
	env := drivers.Env{Evidence: memStore{}}
	var bare, spot time.Duration
	var bareCPU, spotCPU float64
	for b.Loop() {
		t0, c0 := time.Now(), cpuSeconds()
		fs, err := plain.Faces(jpg)
		if err != nil || len(fs) != 10 {
			b.Fatalf("got %d faces, %v; want 10", len(fs), err)
		}
		t1, c1 := time.Now(), cpuSeconds()
		rs, err := p.SpotCheck(context.Background(), env, [][]byte{jpg}, time.Now())
		if err != nil || len(rs) != 10 {
			b.Fatalf("got %d readings, %v; want 10", len(rs), err)
		}
		spot += time.Since(t1)
		spotCPU += cpuSeconds() - c1
		bare += t1.Sub(t0)
		bareCPU += c1 - c0
	}
	n := float64(b.N)
	b.ReportMetric(spot.Seconds()/n*1000, "spotcheck-ms")
	b.ReportMetric(bare.Seconds()/n*1000, "bare-ms")
	b.ReportMetric(spot.Seconds()/bare.Seconds(), "ratio")
	b.ReportMetric(spotCPU/n*1000, "spotcheck-cpu-ms")
	b.ReportMetric(bareCPU/n*1000, "bare-cpu-ms")
	b.ReportMetric(spotCPU/bareCPU, "cpu-ratio")
}

// BenchmarkDoorStatic: a door camera watching an empty doorway (a still scene with sensor noise)
// at 5 frames a second for one minute: CPU seconds with the change detector (faces searched
// only in frames that changed) beside searching every frame, reported as a share of one core
// over the minute. Target < 5%.
func BenchmarkDoorStatic(b *testing.B) {
	const fps, seconds = 5, 60
	frames := doorway(b, 8)
	p := classPipeline(b)
	var gated, every float64
	for b.Loop() {
		s := p.NewStream(drivers.Env{}, drivers.Auto)
		at := time.Unix(0, 0)
		c0 := cpuSeconds()
		for i := 0; i < fps*seconds; i++ {
			at = at.Add(time.Second / fps)
			if _, err := s.Push(context.Background(), frames[i%len(frames)], at); err != nil {
				b.Fatal(err)
			}
		}
		c1 := cpuSeconds()
		for i := 0; i < fps*seconds; i++ {
			if _, err := plain.Faces(frames[i%len(frames)]); err != nil {
				b.Fatal(err)
			}
		}
		c2 := cpuSeconds()
		gated += c1 - c0
		every += c2 - c1
		if s.Searched > 1 {
			b.Fatalf("searched %d of %d still frames, want 1", s.Searched, s.Frames)
		}
	}
	n := float64(b.N)
	b.ReportMetric(gated/n/seconds*100, "%core-gated")
	b.ReportMetric(every/n/seconds*100, "%core-every-frame")
	b.ReportMetric(gated/every, "ratio")
}

// doorway makes n 640x480 frames of one still scene (a lit wall, a door frame) differing only by
// sensor noise of a few grey levels.
func doorway(b *testing.B, n int) [][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	var out [][]byte
	for k := 0; k < n; k++ {
		img := image.NewRGBA(image.Rect(0, 0, 640, 480))
		for y := 0; y < 480; y++ {
			for x := 0; x < 640; x++ {
				v := 150 + x/16 - y/20
				if x > 220 && x < 420 && y > 60 {
					v = 90 + y/12 // the doorway
				}
				v += rng.IntN(7) - 3
				img.Set(x, y, color.RGBA{uint8(v), uint8(v - 8), uint8(v - 20), 255})
			}
		}
		out = append(out, encode(b, img))
	}
	return out
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// memStore is an evidence store in memory, for benchmarks.
type memStore struct{}

func (memStore) PutEvidence(kind drivers.EvidenceKind, b []byte) (drivers.EvidenceRef, error) {
	return drivers.EvidenceRef{Kind: kind, Size: int64(len(b))}, nil
}

// BenchmarkEnrolDescriptor: one enrolment descriptor (jitter 10: ten passes of the ResNet) on a
// photo cropped around its face, in process CPU time and wall time. The network's convolutions
// are BLAS matrix products, so this is the benchmark that tells ATLAS from OpenBLAS: run it once
// as is and once with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/atlas (docs/BENCHMARKS.md).
func BenchmarkEnrolDescriptor(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(readPhoto(b, "probe/bona2.jpg")))
	if err != nil {
		b.Fatal(err)
	}
	crop := img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(image.Rect(150, 270, 460, 580))
	jpg := encode(b, crop)
	var cpu float64
	var wall time.Duration
	for b.Loop() {
		t0, c0 := time.Now(), cpuSeconds()
		fs, err := jittered.Faces(jpg)
		if err != nil || len(fs) != 1 {
			b.Fatalf("got %d faces, %v; want 1", len(fs), err)
		}
		cpu += cpuSeconds() - c0
		wall += time.Since(t0)
	}
	b.ReportMetric(cpu/float64(b.N)*1000, "cpu-ms")
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms")
}
