package emu

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
)

// The image an R30x or AS608 module uploads (UpImage): 256 pixels wide, 288 high, 4 bits a pixel
// (0 black .. 15 white), two pixels a byte, the left one in the high nibble, rows top to bottom.
const (
	ImageWidth  = 256
	ImageHeight = 288
	ImageSize   = ImageWidth * ImageHeight / 2 // 36,864 bytes
)

// Image returns the image the emulator's sensor captures of a finger: deterministic, ImageSize
// bytes, concentric ridges on an oval pad, placed and spaced by the finger ID, on white. An empty
// finger ID gives the white image of an empty sensor. It stands in for a real image in transfers
// and displays; nothing in the emulator reads it back.
func Image(fingerID string) []byte {
	img := make([]byte, ImageSize)
	for i := range img {
		img[i] = 0xFF
	}
	if fingerID == "" {
		return img
	}
	seed := sha256.Sum256([]byte("kaoqin-emu-image:" + fingerID))
	cx := 96 + int(seed[0])%64   // centre of the whorl
	cy := 112 + int(seed[1])%64  //
	period := 7 + int(seed[2])%4 // ridge spacing in pixels
	phase := int(binary.BigEndian.Uint16(seed[3:5]))
	const padX, padY = 110, 130 // half axes of the pad, centred in the image
	for y := range ImageHeight {
		for x := range ImageWidth {
			px, py := x-ImageWidth/2, y-ImageHeight/2
			if px*px*padY*padY+py*py*padX*padX > padX*padX*padY*padY {
				continue // off the pad: white
			}
			dx, dy := x-cx, y-cy
			// Integer operands and an exactly rounded square root: the same bytes on every platform.
			d := int(math.Sqrt(float64(4*dx*dx + 3*dy*dy)))
			v := byte(0xD) // valley
			if (d/2+phase)%period < period/2 {
				v = 0x3 // ridge
			}
			i := (y*ImageWidth + x) / 2
			if x%2 == 0 {
				img[i] = img[i]&0x0F | v<<4
			} else {
				img[i] = img[i]&0xF0 | v
			}
		}
	}
	return img
}
