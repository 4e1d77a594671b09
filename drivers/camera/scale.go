package camera

import (
	"bytes"
	"image"
	"image/jpeg"
)

// replayQuality is image/jpeg's quality for frames the replay scales down.
const replayQuality = 90

// shrinkJPEG scales a decoded frame down to width (never up), averaging boxes of source pixels
// plane by plane, and encodes it. ok is false for an image it leaves alone: narrow enough
// already, or of a kind no camera sends (CMYK).
func shrinkJPEG(img image.Image, width int) (b []byte, w, h int, ok bool) {
	r := img.Bounds()
	sw, sh := r.Dx(), r.Dy()
	if width <= 0 || sw <= width || r.Min != (image.Point{}) {
		return nil, 0, 0, false
	}
	dw, dh := width, max(1, (sh*width+sw/2)/sw)
	var out image.Image
	switch m := img.(type) {
	case *image.YCbCr:
		d := image.NewYCbCr(image.Rect(0, 0, dw, dh), image.YCbCrSubsampleRatio420)
		cw, ch := chromaSize(m.SubsampleRatio, sw, sh)
		boxPlane(d.Y, d.YStride, dw, dh, m.Y, m.YStride, sw, sh)
		boxPlane(d.Cb, d.CStride, (dw+1)/2, (dh+1)/2, m.Cb, m.CStride, cw, ch)
		boxPlane(d.Cr, d.CStride, (dw+1)/2, (dh+1)/2, m.Cr, m.CStride, cw, ch)
		out = d
	case *image.Gray:
		d := image.NewGray(image.Rect(0, 0, dw, dh))
		boxPlane(d.Pix, d.Stride, dw, dh, m.Pix, m.Stride, sw, sh)
		out = d
	default:
		return nil, 0, 0, false
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: replayQuality}); err != nil {
		return nil, 0, 0, false
	}
	return buf.Bytes(), dw, dh, true
}

// chromaSize is the size of a w x h image's chroma planes.
func chromaSize(r image.YCbCrSubsampleRatio, w, h int) (int, int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return (w + 1) / 2, h
	case image.YCbCrSubsampleRatio420:
		return (w + 1) / 2, (h + 1) / 2
	case image.YCbCrSubsampleRatio440:
		return w, (h + 1) / 2
	case image.YCbCrSubsampleRatio411:
		return (w + 3) / 4, h
	case image.YCbCrSubsampleRatio410:
		return (w + 3) / 4, (h + 1) / 2
	}
	return w, h
}

// boxPlane fills the dw x dh plane dst with the means of the matching boxes of the sw x sh plane
// src (dw <= sw, dh <= sh).
func boxPlane(dst []byte, dstride, dw, dh int, src []byte, sstride, sw, sh int) {
	for y := 0; y < dh; y++ {
		y0 := y * sh / dh
		y1 := max(y0+1, (y+1)*sh/dh)
		for x := 0; x < dw; x++ {
			x0 := x * sw / dw
			x1 := max(x0+1, (x+1)*sw/dw)
			sum := 0
			for yy := y0; yy < y1; yy++ {
				row := src[yy*sstride:]
				for xx := x0; xx < x1; xx++ {
					sum += int(row[xx])
				}
			}
			dst[y*dstride+x] = uint8(sum / ((y1 - y0) * (x1 - x0)))
		}
	}
}
