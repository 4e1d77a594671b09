// Package face turns camera frames into face readings: it finds the faces in a JPEG frame (through a
// Recognizer, such as drivers/face/dlib), refuses the ones it cannot trust (the quality gate),
// matches the rest against the templates of the trainees expected in the room, and decides
// accepted, unknown, ambiguous or low_quality. A face is accepted only when its distance to the
// best trainee is under a threshold, the runner-up is a margin further away, and (in a stream of
// frames) the same trainee wins k of the last n frames; everything else is a refusal with the
// distances recorded. docs/face.md explains the operating point and where its numbers come from.
//
// Nothing here claims liveness: a printed photo of a trainee held up to the camera is that
// trainee's face to this package.
//
// The package is pure Go; the cgo lives in drivers/face/dlib alone. Pipeline is used both by the
// camera sources and by `kaoqin face identify`, so the command prints the daemon's own decision.
//
// A camera source embeds Config in its [[source]] table and, in Open, makes its pipeline with
// dlib.NewPipeline (one set of models shared by every camera). Then:
//
//   - a door camera makes a Stream (Pipeline.NewStream) and pushes every frame: Push returns the
//     readings the frame completes, usually none; a frame that does not decode is ErrBadFrame, to
//     count and skip;
//   - a room camera's Capture (the spot check) takes a short burst and calls Pipeline.SpotCheck:
//     one reading per face of the fullest frame, the headcount;
//   - SyncTemplates (drivers.TemplateSyncer) is Pipeline.SyncTemplates.
package face

import (
	"errors"
	"image"
	"math"
)

// Descriptor is a face's 128-dimension embedding: two photos of one person should be near each
// other in Euclidean distance, photos of two people far apart.
type Descriptor [128]float32

// Distance is the Euclidean distance between two descriptors.
func Distance(a, b *Descriptor) float64 {
	var s float32
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return math.Sqrt(float64(s))
}

// Detection is one face a Recognizer found in a frame.
type Detection struct {
	Rect       image.Rectangle // in the frame's pixels
	Descriptor Descriptor
}

// Model names the descriptor model a Recognizer uses. Templates made by one model mean nothing to
// another: a box refuses templates whose model is not its own.
type Model struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"` // lower-case hex SHA-256 of the model file
}

// Recognizer finds faces in a JPEG frame and describes each. It must be safe for concurrent use.
type Recognizer interface {
	// Faces returns every face in the JPEG, its rectangle and its descriptor, left to right. A
	// frame that is not a decodable JPEG is an error wrapping ErrBadFrame; no face is no error.
	Faces(jpeg []byte) ([]Detection, error)
	// Model is the descriptor model the recognizer's descriptors come from.
	Model() Model
}

// Errors of the package.
var (
	// ErrBadFrame is a frame that could not be decoded as a JPEG.
	ErrBadFrame = errors.New("face: not a decodable JPEG")
	// ErrModelMismatch is a template made by another descriptor model than the box's.
	ErrModelMismatch = errors.New("face: templates made by another model")
)
