package face

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Outcome is the decision on one face.
type Outcome string

// Outcomes. All but Accepted are refusals: the reading has an empty Subject and the distances in
// its Detail.
const (
	Accepted   Outcome = "accepted"
	Unknown    Outcome = "unknown"     // nobody expected is near enough
	Ambiguous  Outcome = "ambiguous"   // near enough, but the runner-up is too close behind
	LowQuality Outcome = "low_quality" // refused by the quality gate before matching
)

// Policy is the operating point. DefaultPolicy's numbers come from the distance distributions in
// docs/face.md, not from the test photos.
type Policy struct {
	// Threshold: the best trainee must be nearer than this.
	Threshold float64
	// Margin: the runner-up must be at least this much further than the best. With no runner-up
	// (one trainee expected) the best must be nearer than Threshold-Margin instead.
	Margin float64
	// K of the last N frames with a face must accept the same trainee before a stream signs them
	// in; a spot check's burst of b frames needs min(K, b).
	K, N int
	// Cooldown: after a trainee's accepted reading, the stream stays silent about them this long;
	// refusals are likewise at most one per Cooldown.
	Cooldown time.Duration
	// The quality gate: faces narrower than MinFacePixels, with a Laplacian variance under
	// MinSharpness or a mean chroma under MinChroma are refused as LowQuality.
	MinFacePixels int
	MinSharpness  float64
	MinChroma     float64
}

// DefaultPolicy is the operating point of docs/face.md.
func DefaultPolicy() Policy {
	return Policy{
		Threshold:     0.38,
		Margin:        0.08,
		K:             3,
		N:             5,
		Cooldown:      10 * time.Minute,
		MinFacePixels: 80,
		MinSharpness:  100,
		MinChroma:     3,
	}
}

// Validate checks the policy's values.
func (p Policy) Validate() error {
	var errs []error
	if !(p.Threshold > 0 && p.Threshold < 2) {
		errs = append(errs, drivers.Field("threshold", "%v is outside (0, 2)", p.Threshold))
	}
	if !(p.Margin >= 0 && p.Margin < p.Threshold) {
		errs = append(errs, drivers.Field("margin", "%v is outside [0, threshold)", p.Margin))
	}
	if p.N < 1 || p.K < 1 || p.K > p.N {
		errs = append(errs, drivers.Field("k", "k=%d of n=%d: want 1 <= k <= n", p.K, p.N))
	}
	if p.Cooldown < 0 {
		errs = append(errs, drivers.Field("cooldown", "is negative"))
	}
	if p.MinFacePixels < 0 {
		errs = append(errs, drivers.Field("min_face_pixels", "is negative"))
	}
	if p.MinSharpness < 0 {
		errs = append(errs, drivers.Field("min_sharpness", "is negative"))
	}
	if p.MinChroma < 0 {
		errs = append(errs, drivers.Field("min_chroma", "is negative"))
	}
	return errors.Join(errs...)
}

// Face is the decision on one face of one frame.
type Face struct {
	Rect    image.Rectangle `json:"-"`
	Box     [4]int          `json:"box"` // x0, y0, x1, y1
	Outcome Outcome         `json:"outcome"`
	Trainee string          `json:"trainee,omitempty"` // when accepted
	Match
	Quality Quality `json:"quality"`
}

// Detail says the decision in one line, distances included, for the ledger and the CLI.
func (f *Face) Detail() string {
	var b strings.Builder
	b.WriteString(string(f.Outcome))
	if f.Outcome == LowQuality {
		fmt.Fprintf(&b, " %s=%.1f", f.Quality.Reason, f.Quality.Score())
	} else {
		fmt.Fprintf(&b, " best=%s d=%s runner-up=%s d=%s of %d", orDash(f.Best), fmtDist(f.BestDist), orDash(f.RunnerUp), fmtDist(f.RunnerDist), f.Candidates)
	}
	fmt.Fprintf(&b, " face=%dpx sharp=%.0f chroma=%.1f", f.Quality.Pixels, f.Quality.Sharpness, f.Quality.Chroma)
	return b.String()
}

// Score is the reading's score: 1 - best distance (0 when nobody was compared).
func (f *Face) Score() float64 {
	if math.IsInf(f.BestDist, 0) {
		return 0
	}
	return 1 - f.BestDist
}

// MarginDist is the gap from the best to the runner-up (0 when either is missing).
func (f *Face) MarginDist() float64 {
	if math.IsInf(f.RunnerDist, 0) || math.IsInf(f.BestDist, 0) {
		return 0
	}
	return f.RunnerDist - f.BestDist
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtDist(d float64) string {
	if math.IsInf(d, 0) {
		return "-"
	}
	return fmt.Sprintf("%.3f", d)
}

// Frame is one frame's decisions, one per face found.
type Frame struct {
	Faces []Face
	jpeg  []byte
	img   image.Image // the decoded frame, for the gate and the crops
	dets  []Detection

	frameRef *drivers.EvidenceRef // the frame, once stored
}

// Pipeline decides faces: detect (Recognizer), gate, match against the gallery, decide. It holds
// the gallery and is safe for concurrent use; the stream state (k of n, cooldown) lives in Stream.
type Pipeline struct {
	rec    Recognizer
	policy Policy

	mu      sync.RWMutex
	gallery *Gallery
}

// NewPipeline makes a pipeline with an empty gallery.
func NewPipeline(rec Recognizer, p Policy) (*Pipeline, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("face: policy: %w", err)
	}
	return &Pipeline{rec: rec, policy: p, gallery: newGallery(rec.Model(), nil)}, nil
}

// Policy is the pipeline's operating point.
func (p *Pipeline) Policy() Policy { return p.policy }

// Model is the recognizer's descriptor model.
func (p *Pipeline) Model() Model { return p.rec.Model() }

// SetGallery replaces the gallery.
func (p *Pipeline) SetGallery(g *Gallery) {
	p.mu.Lock()
	p.gallery = g
	p.mu.Unlock()
}

// SyncTemplates implements drivers.TemplateSyncer: the gallery becomes ts's face templates. A
// template made by another model refuses the whole set and keeps the old gallery.
func (p *Pipeline) SyncTemplates(ctx context.Context, ts []drivers.Template) (string, error) {
	g, err := NewGallery(p.rec.Model(), ts)
	if err != nil {
		return "", err
	}
	p.SetGallery(g)
	return fmt.Sprintf("face: %d trainees with face templates (%s)", g.Len(), p.rec.Model().Name), nil
}

var _ drivers.TemplateSyncer = (*Pipeline)(nil)

// Decide finds, gates and matches every face of a JPEG frame against expected (nil: the whole
// gallery) and decides each on its own: exactly the per-frame decision of the daemon, which
// `kaoqin face identify` prints. A frame that does not decode is an error wrapping ErrBadFrame.
func (p *Pipeline) Decide(jpg []byte, expected []string) (*Frame, error) {
	fr, err := p.detect(jpg, nil)
	if err != nil {
		return nil, err
	}
	p.decideAll(fr, expected)
	return fr, nil
}

// detect runs the recognizer on jpg. The quality gate needs the frame's pixels, so unless img is
// already decoded the frame is decoded in Go at the same time, on another core: dlib's detector
// runs on one core, and the decode then costs the frame no time.
func (p *Pipeline) detect(jpg []byte, img image.Image) (*Frame, error) {
	type decoded struct {
		img image.Image
		err error
	}
	var ch chan decoded
	if img == nil {
		ch = make(chan decoded, 1)
		go func() {
			m, err := jpeg.Decode(bytes.NewReader(jpg))
			ch <- decoded{m, err}
		}()
	}
	dets, err := p.rec.Faces(jpg)
	if ch != nil {
		d := <-ch
		img = d.img
		if err == nil && d.err != nil {
			err = fmt.Errorf("face: %w: %w", ErrBadFrame, d.err)
		}
	}
	if err != nil {
		return nil, err
	}
	fr := &Frame{jpeg: jpg, img: img}
	for i := range dets {
		fr.Faces = append(fr.Faces, Face{Rect: dets[i].Rect})
	}
	fr.dets = dets
	return fr, nil
}

// decideAll gates, matches and decides every face found in fr.
func (p *Pipeline) decideAll(fr *Frame, expected []string) {
	p.mu.RLock()
	g := p.gallery
	p.mu.RUnlock()
	for i := range fr.dets {
		fr.Faces[i] = p.decideOne(fr.img, &fr.dets[i], g, expected)
	}
	oneEach(fr.Faces)
}

// oneEach refuses, as ambiguous, every face of a frame accepted as a trainee whom another face
// of the same frame was accepted as too: one of them is wrong, and the frame cannot say which.
func oneEach(fs []Face) {
	n := map[string]int{}
	for _, f := range fs {
		if f.Outcome == Accepted {
			n[f.Trainee]++
		}
	}
	for i := range fs {
		if fs[i].Outcome == Accepted && n[fs[i].Trainee] > 1 {
			fs[i].Outcome, fs[i].Trainee = Ambiguous, ""
		}
	}
}

func (p *Pipeline) decideOne(img image.Image, d *Detection, g *Gallery, expected []string) Face {
	f := Face{Rect: d.Rect, Box: [4]int{d.Rect.Min.X, d.Rect.Min.Y, d.Rect.Max.X, d.Rect.Max.Y}}
	f.Quality = measure(img, d.Rect, &p.policy)
	f.BestDist, f.RunnerDist = math.Inf(1), math.Inf(1)
	if f.Quality.Reason != "" {
		f.Outcome = LowQuality
		return f
	}
	f.Match = g.Match(&d.Descriptor, expected)
	pol := &p.policy
	switch {
	case f.Best == "" || f.BestDist >= pol.Threshold:
		f.Outcome = Unknown
	case f.RunnerUp == "" && f.BestDist >= pol.Threshold-pol.Margin:
		f.Outcome = Ambiguous // nobody to compare with: the stricter bar is not met
	case f.RunnerUp != "" && f.RunnerDist-f.BestDist < pol.Margin:
		f.Outcome = Ambiguous
	default:
		f.Outcome = Accepted
		f.Trainee = f.Best
	}
	return f
}

// crop cuts the face with a quarter of its size around it and encodes it as a JPEG.
func (fr *Frame) crop(r image.Rectangle) ([]byte, error) {
	if fr.img == nil {
		return nil, errors.New("face: crop: no decoded frame")
	}
	pad := max(r.Dx(), r.Dy()) / 4
	r = image.Rect(r.Min.X-pad, r.Min.Y-pad, r.Max.X+pad, r.Max.Y+pad).Intersect(fr.img.Bounds())
	sub, ok := fr.img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok || r.Empty() {
		return nil, errors.New("face: crop: empty")
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, sub.SubImage(r), &jpeg.Options{Quality: 90}); err != nil {
		return nil, fmt.Errorf("face: crop: %w", err)
	}
	return buf.Bytes(), nil
}

// evidence stores the face's crop and the frame; nil store keeps none. The frame is stored once
// however many faces of it are reported.
func (fr *Frame) evidence(store drivers.EvidenceStore, f *Face) ([]drivers.EvidenceRef, error) {
	if store == nil {
		return nil, nil
	}
	c, err := fr.crop(f.Rect)
	if err != nil {
		return nil, err
	}
	cr, err := store.PutEvidence(drivers.Crop, c)
	if err != nil {
		return nil, fmt.Errorf("face: evidence: %w", err)
	}
	if fr.frameRef == nil {
		ref, err := store.PutEvidence(drivers.Frame, fr.jpeg)
		if err != nil {
			return nil, fmt.Errorf("face: evidence: %w", err)
		}
		fr.frameRef = &ref
	}
	return []drivers.EvidenceRef{cr, *fr.frameRef}, nil
}

// reading makes the reading of one face decision.
func (fr *Frame) reading(f *Face, at time.Time, intent drivers.Intent, ev []drivers.EvidenceRef, votes string) drivers.Reading {
	r := drivers.Reading{
		Method:   drivers.Face,
		Subject:  f.Trainee,
		Score:    f.Score(),
		Margin:   f.MarginDist(),
		At:       at,
		Intent:   intent,
		Evidence: ev,
		Detail:   f.Detail() + votes,
	}
	return r
}
