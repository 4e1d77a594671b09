//go:build cgo

package dlib_test

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/kaoqin/kaoqin/drivers/face"
)

// boxBlur blurs img with a (2r+1)-pixel box, twice (close to a Gaussian), as an out-of-focus lens
// or a moving head would.
func boxBlur(img image.Image, r int) *image.RGBA {
	src := image.NewRGBA(img.Bounds())
	draw.Draw(src, src.Bounds(), img, img.Bounds().Min, draw.Src)
	b := src.Bounds()
	for pass := 0; pass < 4; pass++ {
		dst := image.NewRGBA(b)
		horiz := pass%2 == 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				var s [3]int
				n := 0
				for k := -r; k <= r; k++ {
					xx, yy := x, y
					if horiz {
						xx += k
					} else {
						yy += k
					}
					if !(image.Point{xx, yy}.In(b)) {
						continue
					}
					o := src.PixOffset(xx, yy)
					s[0], s[1], s[2] = s[0]+int(src.Pix[o]), s[1]+int(src.Pix[o+1]), s[2]+int(src.Pix[o+2])
					n++
				}
				dst.SetRGBA(x, y, color.RGBA{uint8(s[0] / n), uint8(s[1] / n), uint8(s[2] / n), 255})
			}
		}
		src = dst
	}
	return src
}

// TestBlurGate: the same photo, increasingly blurred. The sharpness score falls with the blur;
// a face blurred past recognition is refused as blurred (when dlib still finds it) instead of
// being matched. The log is the measurement docs/face.md quotes for the floor.
func TestBlurGate(t *testing.T) {
	orig, err := jpeg.Decode(bytes.NewReader(readPhoto(t, "probe/bona2.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	p, err := face.NewPipeline(plain, face.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	var base *face.Descriptor
	last := -1.0
	for _, r := range []int{0, 2, 4, 8, 12} {
		img := image.Image(orig)
		if r > 0 {
			img = boxBlur(orig, r)
		}
		jpg := encode(t, img)
		dets, err := plain.Faces(jpg)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := p.Decide(jpg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(dets) == 0 {
			t.Logf("blur radius %d px (face 179 px): no face found", r)
			continue
		}
		q := fr.Faces[0].Quality
		d := 0.0
		if base == nil {
			base = &dets[0].Descriptor
		} else {
			d = face.Distance(base, &dets[0].Descriptor)
		}
		t.Logf("blur radius %d px (face 179 px): sharpness %.1f, distance to the sharp photo's descriptor %.3f, outcome %s %s", r, q.Sharpness, d, fr.Faces[0].Outcome, q.Reason)
		if last >= 0 && q.Sharpness >= last {
			t.Errorf("radius %d: sharpness %.1f did not fall (was %.1f)", r, q.Sharpness, last)
		}
		last = q.Sharpness
		if r >= 4 && q.Reason != face.Blurred {
			t.Errorf("radius %d: got %q, want the face refused as blurred", r, q.Reason)
		}
		if r == 0 && q.Reason != "" {
			t.Errorf("the sharp photo: got %q, want it to pass the gate", q.Reason)
		}
	}
}

// TestGrayscaleFrame: go-face cannot load a grayscale JPEG; the recognizer converts it, the face
// is still found (and counted), and the gate refuses to identify it.
func TestGrayscaleFrame(t *testing.T) {
	orig, err := jpeg.Decode(bytes.NewReader(readPhoto(t, "probe/bona2.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	g := image.NewGray(orig.Bounds())
	draw.Draw(g, g.Bounds(), orig, orig.Bounds().Min, draw.Src)
	p := classPipeline(t)
	fr, err := p.Decide(encode(t, g), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fr.Faces) != 1 || fr.Faces[0].Outcome != face.LowQuality || fr.Faces[0].Quality.Reason != face.NotColour {
		t.Fatalf("got %+v, want one face refused as not_colour", fr.Faces)
	}
}

// FuzzFaces: whatever bytes reach dlib's JPEG loader give faces or an error, never a crash.
func FuzzFaces(f *testing.F) {
	b, err := os.ReadFile(filepath.Join(testdata, "faces", "probe", "bona2.jpg"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:len(b)/2])
	f.Add(b[:200])
	f.Add([]byte{0xff, 0xd8, 0xff, 0xe0})
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		_, _ = plain.Faces(b)
	})
}
