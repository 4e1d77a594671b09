package face

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// thumbW and thumbH are the size of the luma thumbnail the change detector compares.
const thumbW, thumbH = 32, 24

// DefaultChangeFloor is the mean absolute luma difference (0-255) between two frames' thumbnails
// under which a frame counts as unchanged: above sensor noise, below a person stepping in.
const DefaultChangeFloor = 3.0

// Stream decides a door camera's frames one after another: it signs a trainee in only when the
// same trainee is accepted in K of the last N frames, then keeps quiet about them for the
// cooldown. While the scene is still and empty, frames that did not change since the last one
// looked at are not searched for faces at all (a cheap thumbnail difference). One goroutine owns
// a Stream.
type Stream struct {
	p      *Pipeline
	env    drivers.Env
	intent drivers.Intent
	// ChangeFloor overrides DefaultChangeFloor; negative searches every frame.
	ChangeFloor float64

	thumb       []float64  // of the last frame searched
	lastFaces   int        // faces in the last frame searched
	window      [][]string // per frame searched: the accepted trainees; nil when it had no face
	seen        int        // frames with a face in the window
	cooldown    map[string]time.Time
	lastRefusal time.Time

	// Counters, for the source's Health.
	Frames, Skipped, Searched uint64
}

// NewStream makes a stream of frames from one camera; env gives the evidence store and the
// expected trainees, intent is stamped on the readings (a door camera: drivers.Auto or SignIn).
func (p *Pipeline) NewStream(env drivers.Env, intent drivers.Intent) *Stream {
	return &Stream{p: p, env: env, intent: intent, ChangeFloor: DefaultChangeFloor, cooldown: map[string]time.Time{}}
}

// Push decides one frame taken at at and returns the readings it completes: an accepted
// trainee's sign-in (K of N), or one refusal when a face stayed unrecognised for K of N frames.
// Most frames return none. A frame that does not decode is an error wrapping ErrBadFrame: the
// caller counts and skips it. Evidence is written before Push returns; an evidence store that
// refuses (its budget is full) is an error, and the reading is made again from a later frame.
// Push does not block beyond the time dlib takes on the frame (about 0.1-0.5 s).
func (s *Stream) Push(ctx context.Context, jpg []byte, at time.Time) ([]drivers.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.Frames++
	var img image.Image
	if s.ChangeFloor >= 0 && s.lastFaces == 0 {
		// The doorway was empty: look whether anything changed before searching for faces.
		m, err := jpeg.Decode(bytes.NewReader(jpg))
		if err != nil {
			return nil, fmt.Errorf("face: %w: %w", ErrBadFrame, err)
		}
		th := thumbnail(m)
		if s.thumb != nil && meanAbsDiff(th, s.thumb) < s.ChangeFloor {
			s.Skipped++
			return nil, nil
		}
		s.thumb, img = th, m
	}
	s.Searched++
	var expected []string
	if s.env.Expected != nil {
		expected = s.env.Expected(at)
		if expected == nil {
			expected = []string{}
		}
	}
	fr, err := s.p.detect(jpg, img)
	if err != nil {
		return nil, err
	}
	if img == nil && s.ChangeFloor >= 0 {
		s.thumb = thumbnail(fr.img)
	}
	s.p.decideAll(fr, expected)
	s.lastFaces = len(fr.Faces)

	var acc []string
	for _, f := range fr.Faces {
		if f.Outcome == Accepted {
			acc = append(acc, f.Trainee)
		}
	}
	n := s.p.policy.N
	if len(s.window) == n {
		if s.window[0] != nil {
			s.seen--
		}
		s.window = s.window[1:]
	}
	if len(fr.Faces) > 0 {
		s.seen++
		if acc == nil {
			acc = []string{} // a face, nobody accepted
		}
	}
	s.window = append(s.window, acc)

	var out []drivers.Reading
	for i := range fr.Faces {
		f := &fr.Faces[i]
		if f.Outcome != Accepted {
			continue
		}
		votes := s.votes(f.Trainee)
		if votes < s.p.policy.K {
			continue
		}
		if t, ok := s.cooldown[f.Trainee]; ok && at.Sub(t) < s.p.policy.Cooldown {
			continue
		}
		ev, err := fr.evidence(s.env.Evidence, f)
		if err != nil {
			return nil, err
		}
		s.cooldown[f.Trainee] = at
		out = append(out, fr.reading(f, at, s.intent, ev, fmt.Sprintf(" votes=%d/%d", votes, len(s.window))))
	}
	if len(out) == 0 && len(fr.Faces) > 0 && s.seen >= s.p.policy.K && s.noneAccepted() &&
		(s.lastRefusal.IsZero() || at.Sub(s.lastRefusal) >= s.p.policy.Cooldown) {
		f := &fr.Faces[0]
		ev, err := fr.evidence(s.env.Evidence, f)
		if err != nil {
			return nil, err
		}
		s.lastRefusal = at
		out = append(out, fr.reading(f, at, s.intent, ev, fmt.Sprintf(" votes=0/%d", len(s.window))))
	}
	return out, nil
}

func (s *Stream) votes(trainee string) int {
	n := 0
	for _, w := range s.window {
		for _, t := range w {
			if t == trainee {
				n++
				break
			}
		}
	}
	return n
}

func (s *Stream) noneAccepted() bool {
	for _, w := range s.window {
		if len(w) > 0 {
			return false
		}
	}
	return true
}

// SpotCheck decides a room camera's short burst: the frame with the most faces gives the
// headcount (one reading per face, identified or not: an empty Subject is a refusal), and a face
// is identified only when its trainee is accepted in min(K, frames) of the burst's frames.
// Frames that do not decode are skipped; a burst with none that decodes is an error. Readings
// have Intent Sighting and each carries its crop and the frame.
func (p *Pipeline) SpotCheck(ctx context.Context, env drivers.Env, frames [][]byte, at time.Time) ([]drivers.Reading, error) {
	var expected []string
	if env.Expected != nil {
		expected = env.Expected(at)
		if expected == nil {
			expected = []string{}
		}
	}
	var (
		ref     *Frame
		decided int
		votes   = map[string]int{}
		lastErr error
	)
	for _, jpg := range frames {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fr, err := p.Decide(jpg, expected)
		if err != nil {
			lastErr = err
			continue
		}
		decided++
		seen := map[string]bool{}
		for _, f := range fr.Faces {
			if f.Outcome == Accepted && !seen[f.Trainee] {
				seen[f.Trainee] = true
				votes[f.Trainee]++
			}
		}
		if ref == nil || len(fr.Faces) > len(ref.Faces) {
			ref = fr
		}
	}
	if decided == 0 {
		if lastErr == nil {
			lastErr = fmt.Errorf("face: spot check: no frame")
		}
		return nil, fmt.Errorf("face: spot check: no frame of %d decoded: %w", len(frames), lastErr)
	}
	need := min(p.policy.K, decided)
	out := make([]drivers.Reading, 0, len(ref.Faces))
	for i := range ref.Faces {
		f := ref.Faces[i]
		v := fmt.Sprintf(" votes=%d/%d", votes[f.Trainee], decided)
		if f.Outcome == Accepted && votes[f.Trainee] < need {
			f.Outcome, f.Trainee = Ambiguous, ""
			v += fmt.Sprintf(" want %d", need)
		}
		ev, err := ref.evidence(env.Evidence, &f)
		if err != nil {
			return nil, err
		}
		out = append(out, ref.reading(&f, at, drivers.Sighting, ev, v))
	}
	return out, nil
}

// thumbnail averages the frame's luma into thumbW x thumbH cells.
func thumbnail(img image.Image) []float64 {
	b := img.Bounds()
	t := make([]float64, thumbW*thumbH)
	cnt := make([]float64, thumbW*thumbH)
	step := max(1, min(b.Dx()/(thumbW*4), b.Dy()/(thumbH*4))) // about 4x4 samples a cell
	sample := func(x, y int) float64 {
		switch m := img.(type) {
		case *image.YCbCr:
			return float64(m.Y[m.YOffset(x, y)])
		case *image.Gray:
			return float64(m.Pix[m.PixOffset(x, y)])
		}
		r, g, bl, _ := img.At(x, y).RGBA()
		return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
	}
	for y := b.Min.Y; y < b.Max.Y; y += step {
		cy := (y - b.Min.Y) * thumbH / b.Dy()
		for x := b.Min.X; x < b.Max.X; x += step {
			c := cy*thumbW + (x-b.Min.X)*thumbW/b.Dx()
			t[c] += sample(x, y)
			cnt[c]++
		}
	}
	for i := range t {
		if cnt[i] > 0 {
			t[i] /= cnt[i]
		}
	}
	return t
}

func meanAbsDiff(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += math.Abs(a[i] - b[i])
	}
	return s / float64(len(a))
}
