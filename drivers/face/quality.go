package face

import (
	"image"
	"image/color"
	"math"
)

// Reason is why the quality gate refused a face.
type Reason string

// Reasons of the quality gate, recorded with the refusal and its score.
const (
	TooSmall  Reason = "too_small"  // narrower than the detector can be trusted at (score: pixels)
	Blurred   Reason = "blurred"    // Laplacian variance under the floor (score: the variance)
	NotColour Reason = "not_colour" // a grayscale or infrared frame (score: mean chroma)
)

// Quality is what the gate measured on one face.
type Quality struct {
	Pixels    int     `json:"pixels"`    // the face rectangle's smaller side
	Sharpness float64 `json:"sharpness"` // variance of the Laplacian of the face's luma, resampled to 64x64
	Chroma    float64 `json:"chroma"`    // mean |Cb-128|+|Cr-128| over the face; 0 on grayscale
	Reason    Reason  `json:"reason,omitempty"`
}

// Score is the measurement the reason refers to.
func (q Quality) Score() float64 {
	switch q.Reason {
	case TooSmall:
		return float64(q.Pixels)
	case Blurred:
		return q.Sharpness
	case NotColour:
		return q.Chroma
	}
	return 0
}

// gateSize is the side of the square the face's luma is resampled to before the Laplacian, so
// the sharpness score does not depend on how large the face is in the frame.
const gateSize = 64

// measure runs the quality gate on one face of a decoded frame.
func measure(img image.Image, r image.Rectangle, p *Policy) Quality {
	r = r.Intersect(img.Bounds())
	q := Quality{Pixels: min(r.Dx(), r.Dy())}
	if q.Pixels <= 0 {
		q.Reason = TooSmall
		return q
	}
	luma := make([]float64, gateSize*gateSize)
	var chroma float64
	switch m := img.(type) {
	case *image.YCbCr:
		for y := 0; y < gateSize; y++ {
			sy := r.Min.Y + (2*y+1)*r.Dy()/(2*gateSize)
			for x := 0; x < gateSize; x++ {
				sx := r.Min.X + (2*x+1)*r.Dx()/(2*gateSize)
				luma[y*gateSize+x] = float64(m.Y[m.YOffset(sx, sy)])
				ci := m.COffset(sx, sy)
				chroma += math.Abs(float64(m.Cb[ci])-128) + math.Abs(float64(m.Cr[ci])-128)
			}
		}
		chroma /= gateSize * gateSize
	case *image.Gray:
		for y := 0; y < gateSize; y++ {
			sy := r.Min.Y + (2*y+1)*r.Dy()/(2*gateSize)
			for x := 0; x < gateSize; x++ {
				sx := r.Min.X + (2*x+1)*r.Dx()/(2*gateSize)
				luma[y*gateSize+x] = float64(m.Pix[m.PixOffset(sx, sy)])
			}
		}
	default:
		for y := 0; y < gateSize; y++ {
			sy := r.Min.Y + (2*y+1)*r.Dy()/(2*gateSize)
			for x := 0; x < gateSize; x++ {
				sx := r.Min.X + (2*x+1)*r.Dx()/(2*gateSize)
				c := color.YCbCrModel.Convert(img.At(sx, sy)).(color.YCbCr)
				luma[y*gateSize+x] = float64(c.Y)
				chroma += math.Abs(float64(c.Cb)-128) + math.Abs(float64(c.Cr)-128)
			}
		}
		chroma /= gateSize * gateSize
	}
	q.Chroma = chroma
	q.Sharpness = laplacianVariance(luma, gateSize)
	switch {
	case q.Pixels < p.MinFacePixels:
		q.Reason = TooSmall
	case q.Chroma < p.MinChroma:
		q.Reason = NotColour
	case q.Sharpness < p.MinSharpness:
		q.Reason = Blurred
	}
	return q
}

// laplacianVariance is the variance of the 4-neighbour Laplacian over the interior of an n x n
// luma square: low when the face has no edges (out of focus, motion-blurred).
func laplacianVariance(p []float64, n int) float64 {
	var sum, sq float64
	cnt := 0
	for y := 1; y < n-1; y++ {
		for x := 1; x < n-1; x++ {
			i := y*n + x
			l := p[i-1] + p[i+1] + p[i-n] + p[i+n] - 4*p[i]
			sum += l
			sq += l * l
			cnt++
		}
	}
	m := sum / float64(cnt)
	return sq/float64(cnt) - m*m
}
