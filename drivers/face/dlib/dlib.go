//go:build cgo

package dlib

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	goface "github.com/Kagami/go-face"

	"github.com/kaoqin/kaoqin/drivers/face"
)

// The files Open needs in the model folder, with their pinned SHA-256 (the same sums as
// fetch-models.sh). go-face loads all three, though only the first two are used here.
var modelFiles = []struct{ name, sum string }{
	{"shape_predictor_5_face_landmarks.dat", "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"},
	{"dlib_face_recognition_resnet_model_v1.dat", "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"},
	{"mmod_human_face_detector.dat", "be467b1a76f482693de3b0f6a1ff91d092319be71523d4d4b0628f6a53fcb87a"},
}

// Model is the descriptor model this package's recognizer uses.
var Model = face.Model{Name: "dlib_face_recognition_resnet_model_v1", SHA256: modelFiles[1].sum}

// ErrModels is a model file that is missing or not the pinned one.
var ErrModels = errors.New("dlib: face models missing or wrong (run `make deps`, which fetches them with drivers/face/dlib/fetch-models.sh)")

// Options configure a Recognizer.
type Options struct {
	// Jitter is how many randomly jittered copies of each face the descriptor is averaged over:
	// 0 for frames (one pass), 10-100 for enrolment (each copy costs one more network pass).
	Jitter int
}

// Recognizer finds and describes faces with dlib. It is safe for concurrent use (go-face locks
// the detector and the network itself). Close it to free dlib's memory.
type Recognizer struct {
	rec *goface.Recognizer
}

var _ face.Recognizer = (*Recognizer)(nil)

// Open checks the three model files in dir against their pinned SHA-256 and loads them (about
// 0.5 s and 100 MB). A missing or wrong file is an error wrapping ErrModels that says which.
func Open(dir string, o Options) (*Recognizer, error) {
	if err := CheckModels(dir); err != nil {
		return nil, err
	}
	if o.Jitter < 0 {
		return nil, fmt.Errorf("dlib: jitter %d is negative", o.Jitter)
	}
	// 150 pixels and 0.25 padding are go-face's defaults, which the model was trained with.
	rec, err := goface.NewRecognizerWithConfig(dir, 150, 0.25, o.Jitter)
	if err != nil {
		return nil, fmt.Errorf("dlib: load models from %s: %w: %w", dir, ErrModels, err)
	}
	return &Recognizer{rec: rec}, nil
}

// CheckModels reports whether dir holds the three model files with their pinned SHA-256.
func CheckModels(dir string) error {
	var errs []error
	for _, m := range modelFiles {
		p := filepath.Join(dir, m.name)
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("dlib: %s: %w", p, err))
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("dlib: read %s: %w", p, err))
			continue
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != m.sum {
			errs = append(errs, fmt.Errorf("dlib: %s has SHA-256 %s, want %s", p, got, m.sum))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w\n%w", ErrModels, errors.Join(errs...))
	}
	return nil
}

// Faces implements face.Recognizer: every face in the JPEG, left to right. A grayscale or CMYK
// JPEG (which go-face cannot load) is converted to colour first, costing a decode and an encode.
func (r *Recognizer) Faces(jpg []byte) ([]face.Detection, error) {
	fs, err := r.rec.Recognize(jpg)
	var le goface.ImageLoadError
	if errors.As(err, &le) && strings.Contains(string(le), "unsupported pixel size") {
		var cerr error
		if jpg, cerr = toColour(jpg); cerr != nil {
			return nil, fmt.Errorf("dlib: %w: %w", face.ErrBadFrame, cerr)
		}
		fs, err = r.rec.Recognize(jpg)
	}
	if err != nil {
		if errors.As(err, &le) {
			return nil, fmt.Errorf("dlib: %w: %w", face.ErrBadFrame, err)
		}
		return nil, fmt.Errorf("dlib: recognize: %w", err)
	}
	out := make([]face.Detection, len(fs))
	for i, f := range fs {
		out[i] = face.Detection{Rect: f.Rectangle, Descriptor: face.Descriptor(f.Descriptor)}
	}
	return out, nil
}

// Model implements face.Recognizer.
func (r *Recognizer) Model() face.Model { return Model }

// Close frees dlib's memory; the recognizer must not be used after.
func (r *Recognizer) Close() error {
	r.rec.Close()
	return nil
}

// toColour re-encodes a JPEG of any colour model as a three-component (YCbCr) JPEG.
func toColour(jpg []byte) ([]byte, error) {
	img, err := jpeg.Decode(bytes.NewReader(jpg))
	if err != nil {
		return nil, err
	}
	rgba := image.NewRGBA(img.Bounds())
	draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: 95}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var shared = struct {
	sync.Mutex
	recs map[string]*Recognizer
}{recs: map[string]*Recognizer{}}

// Shared returns the process's one frame recognizer (no jitter) for the models in dir, opening it
// on first use: the models take about 100 MB, and every camera of the box can share them (the
// recognizer is safe for concurrent use). It is never closed.
func Shared(dir string) (*Recognizer, error) {
	shared.Lock()
	defer shared.Unlock()
	if r, ok := shared.recs[dir]; ok {
		return r, nil
	}
	r, err := Open(dir, Options{})
	if err != nil {
		return nil, err
	}
	shared.recs[dir] = r
	return r, nil
}

// NewPipeline opens (or shares) the recognizer for cfg's models and makes a pipeline with cfg's
// operating point: what a camera source calls from its Open.
func NewPipeline(cfg *face.Config) (*face.Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := Shared(string(cfg.Models))
	if err != nil {
		return nil, err
	}
	return face.NewPipeline(r, cfg.Policy())
}
