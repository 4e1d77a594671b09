package face

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// fakeRecognizer answers with the detections registered for a frame's bytes: the test decides
// what dlib would have found, the pipeline does the rest for real.
type fakeRecognizer struct {
	mu     sync.Mutex
	frames map[[32]byte][]Detection
	calls  int
}

var testModel = Model{Name: "test-model", SHA256: strings.Repeat("ab", 32)}

func newFake() *fakeRecognizer { return &fakeRecognizer{frames: map[[32]byte][]Detection{}} }

func (f *fakeRecognizer) set(jpg []byte, ds ...Detection) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames[sha256.Sum256(jpg)] = ds
}

func (f *fakeRecognizer) Faces(jpg []byte) ([]Detection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if _, err := jpeg.DecodeConfig(bytes.NewReader(jpg)); err != nil {
		return nil, fmt.Errorf("fake: %w: %w", ErrBadFrame, err)
	}
	return f.frames[sha256.Sum256(jpg)], nil
}

func (f *fakeRecognizer) Model() Model { return testModel }

// textured makes a colour frame with fine texture (sharp), seeded so each seed differs.
func textured(t testing.TB, w, h int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(rng.IntN(160) + 40)
			img.Set(x, y, color.RGBA{v, uint8(int(v) * 3 / 4), uint8(int(v) / 2), 255})
		}
	}
	return encodeJPEG(t, img)
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// unit is a descriptor along axis i; distance between unit(i)*a and unit(j)*b is sqrt(a²+b²).
func unit(i int, a float32) Descriptor {
	var d Descriptor
	d[i] = a
	return d
}

// at is a descriptor at distance dist from unit(i, 0.5) towards axis j.
func near(i, j int, dist float32) Descriptor {
	d := unit(i, 0.5)
	d[j] = dist
	return d
}

// galleryOf enrols trainees A (axis 0), B (axis 1), C (axis 2), each at 0.5 along its axis.
func galleryOf(t testing.TB) (*Dataset, []drivers.Template) {
	ds := &Dataset{Format: DatasetFormat, Model: testModel}
	for i, id := range []string{"A", "B", "C"} {
		ds.Put(TraineeFaces{Trainee: id, Descriptors: []Enrolled{{D: unit(i, 0.5)}}})
	}
	ts, err := ds.Templates()
	if err != nil {
		t.Fatal(err)
	}
	return ds, ts
}

func testPipeline(t testing.TB, rec Recognizer) *Pipeline {
	p, err := NewPipeline(rec, DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	_, ts := galleryOf(t)
	if _, err := p.SyncTemplates(context.Background(), ts); err != nil {
		t.Fatal(err)
	}
	return p
}

var faceRect = image.Rect(40, 40, 160, 160)

func TestDecideOutcomes(t *testing.T) {
	rec := newFake()
	p := testPipeline(t, rec)
	// Distances: A is at 0.5 on axis 0; B at 0.5 on axis 1; |A-B| = 0.707.
	shifted := unit(0, 0.5)
	shifted[5] = 0.2 // 0.2 from A, sqrt(0.25+0.25+0.04)=0.73 from B and C
	between := Descriptor{}
	between[0], between[1] = 0.25, 0.25 // 0.354 from both A and B
	far := unit(7, 0.5)                 // 0.707 from everyone
	for _, c := range []struct {
		name     string
		d        Descriptor
		expected []string
		want     Outcome
		trainee  string
	}{
		{"near A, far from the rest", shifted, nil, Accepted, "A"},
		{"between A and B", between, nil, Ambiguous, ""},
		{"nobody near", far, nil, Unknown, ""},
		{"A not expected in this room", shifted, []string{"B", "C"}, Unknown, ""},
		{"nobody expected", shifted, []string{}, Unknown, ""},
		{"only A expected, 0.2 < threshold-margin", shifted, []string{"A"}, Accepted, "A"},
		{"only A expected, 0.33: under the threshold, not under threshold-margin", near(0, 5, 0.33), []string{"A"}, Ambiguous, ""},
		{"A listed twice is one candidate", shifted, []string{"A", "A"}, Accepted, "A"},
	} {
		jpg := textured(t, 200, 200, 1)
		rec.set(jpg, Detection{Rect: faceRect, Descriptor: c.d})
		fr, err := p.Decide(jpg, c.expected)
		if err != nil {
			t.Fatal(err)
		}
		f := fr.Faces[0]
		if f.Outcome != c.want || f.Trainee != c.trainee {
			t.Errorf("%s: got %s %q (%s), want %s %q", c.name, f.Outcome, f.Trainee, f.Detail(), c.want, c.trainee)
		}
	}
}

// Two faces of one frame accepted as one trainee: both refused, the frame cannot say which.
func TestOneTraineeOneFace(t *testing.T) {
	rec := newFake()
	p := testPipeline(t, rec)
	jpg := textured(t, 400, 200, 2)
	d := unit(0, 0.5)
	rec.set(jpg, Detection{Rect: faceRect, Descriptor: d}, Detection{Rect: faceRect.Add(image.Pt(200, 0)), Descriptor: d})
	fr, err := p.Decide(jpg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range fr.Faces {
		if f.Outcome != Ambiguous {
			t.Errorf("face %d: got %s, want ambiguous", i, f.Outcome)
		}
	}
}

func TestQualityGate(t *testing.T) {
	rec := newFake()
	p := testPipeline(t, rec)
	d := unit(0, 0.5)

	sharp := textured(t, 200, 200, 3)
	rec.set(sharp, Detection{Rect: image.Rect(10, 10, 70, 70), Descriptor: d})
	if f := decideOne(t, p, sharp); f.Outcome != LowQuality || f.Quality.Reason != TooSmall || f.Quality.Score() != 60 {
		t.Errorf("a 60-pixel face: got %s %s %.0f, want low_quality too_small 60", f.Outcome, f.Quality.Reason, f.Quality.Score())
	}

	gray := image.NewGray(image.Rect(0, 0, 200, 200))
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(rng.IntN(200))
	}
	g := encodeJPEG(t, gray)
	rec.set(g, Detection{Rect: faceRect, Descriptor: d})
	if f := decideOne(t, p, g); f.Outcome != LowQuality || f.Quality.Reason != NotColour {
		t.Errorf("a grayscale frame: got %s %s, want low_quality not_colour", f.Outcome, f.Quality.Reason)
	}

	// An infrared camera's frame: three components, but no colour in them.
	ir := image.NewRGBA(image.Rect(0, 0, 200, 200))
	for i := 0; i < len(ir.Pix); i += 4 {
		v := uint8(rng.IntN(200))
		ir.Pix[i], ir.Pix[i+1], ir.Pix[i+2], ir.Pix[i+3] = v, v, v, 255
	}
	irj := encodeJPEG(t, ir)
	rec.set(irj, Detection{Rect: faceRect, Descriptor: d})
	if f := decideOne(t, p, irj); f.Outcome != LowQuality || f.Quality.Reason != NotColour {
		t.Errorf("an infrared frame: got %s %s (chroma %.1f), want low_quality not_colour", f.Outcome, f.Quality.Reason, f.Quality.Chroma)
	}

	// A smooth gradient: colour, large, but no edge at all.
	flat := image.NewRGBA(image.Rect(0, 0, 200, 200))
	for y := 0; y < 200; y++ {
		for x := 0; x < 200; x++ {
			flat.Set(x, y, color.RGBA{uint8(120 + x/10), 90, 60, 255})
		}
	}
	fj := encodeJPEG(t, flat)
	rec.set(fj, Detection{Rect: faceRect, Descriptor: d})
	if f := decideOne(t, p, fj); f.Outcome != LowQuality || f.Quality.Reason != Blurred {
		t.Errorf("a featureless face: got %s %s (sharpness %.1f), want low_quality blurred", f.Outcome, f.Quality.Reason, f.Quality.Sharpness)
	}
	rec.set(sharp, Detection{Rect: faceRect, Descriptor: d})
	if f := decideOne(t, p, sharp); f.Outcome != Accepted {
		t.Errorf("a sharp colour face: got %s (%s), want accepted", f.Outcome, f.Detail())
	}
}

func decideOne(t *testing.T, p *Pipeline, jpg []byte) Face {
	t.Helper()
	fr, err := p.Decide(jpg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fr.Faces) != 1 {
		t.Fatalf("got %d faces, want 1", len(fr.Faces))
	}
	return fr.Faces[0]
}

// memEvidence is an evidence store in memory, content-addressed like the agent's.
type memEvidence struct {
	mu     sync.Mutex
	puts   map[string][]byte
	frames int // frames put, counting repeats
	fail   error
}

func (m *memEvidence) PutEvidence(kind drivers.EvidenceKind, b []byte) (drivers.EvidenceRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return drivers.EvidenceRef{}, m.fail
	}
	if _, err := jpeg.DecodeConfig(bytes.NewReader(b)); err != nil {
		return drivers.EvidenceRef{}, fmt.Errorf("evidence is not a JPEG: %w", err)
	}
	if kind == drivers.Frame {
		m.frames++
	}
	s := sha256.Sum256(b)
	h := hex.EncodeToString(s[:])
	if m.puts == nil {
		m.puts = map[string][]byte{}
	}
	m.puts[h] = b
	return drivers.EvidenceRef{SHA256: h, Kind: kind, Size: int64(len(b))}, nil
}

// A door camera signs a trainee in on the K-th of N frames that accept them, with a crop and the
// frame as evidence, then stays quiet about them for the cooldown.
func TestStreamKOfNAndCooldown(t *testing.T) {
	rec := newFake()
	p := testPipeline(t, rec)
	ev := &memEvidence{}
	s := p.NewStream(drivers.Env{Evidence: ev, Expected: func(time.Time) []string { return []string{"A", "B", "C"} }}, drivers.SignIn)
	var frames [][]byte
	for i := range 8 {
		f := textured(t, 200, 200, uint64(100+i))
		rec.set(f, Detection{Rect: faceRect, Descriptor: unit(0, 0.5)})
		frames = append(frames, f)
	}
	at := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	var got []int
	var first drivers.Reading
	for i, f := range frames {
		rs, err := s.Push(context.Background(), f, at.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, i)
			first = r
		}
	}
	if len(got) != 1 || got[0] != p.policy.K-1 {
		t.Fatalf("readings at frames %v, want one at frame %d (K=%d)", got, p.policy.K-1, p.policy.K)
	}
	if first.Subject != "A" || first.Method != drivers.Face || first.Intent != drivers.SignIn || len(first.Evidence) != 2 {
		t.Errorf("got %+v, want A by face, sign-in, a crop and a frame", first)
	}
	if first.Evidence[0].Kind != drivers.Crop || first.Evidence[1].Kind != drivers.Frame || len(ev.puts) != 2 {
		t.Errorf("evidence %+v (%d stored), want a crop then the frame", first.Evidence, len(ev.puts))
	}
	if !strings.Contains(first.Detail, "votes=3/3") || first.Score != 1 {
		t.Errorf("detail %q score %v, want votes=3/3 and score 1", first.Detail, first.Score)
	}
	// After the cooldown the same trainee is signed in again.
	rs, err := s.Push(context.Background(), frames[0], at.Add(p.policy.Cooldown+time.Minute))
	if err != nil || len(rs) != 1 || rs[0].Subject != "A" {
		t.Errorf("after the cooldown: got %+v, %v; want one reading of A", rs, err)
	}
}

// A face nobody matches gives one refusal after K frames (empty Subject, distances in the
// detail), then nothing more for the cooldown.
func TestStreamRefusal(t *testing.T) {
	rec := newFake()
	p := testPipeline(t, rec)
	s := p.NewStream(drivers.Env{Evidence: &memEvidence{}}, drivers.Auto)
	at := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	var refusals []drivers.Reading
	for i := range 10 {
		f := textured(t, 200, 200, uint64(200+i))
		rec.set(f, Detection{Rect: faceRect, Descriptor: unit(9, 0.5)})
		rs, err := s.Push(context.Background(), f, at.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		refusals = append(refusals, rs...)
	}
	if len(refusals) != 1 {
		t.Fatalf("got %d refusals, want 1", len(refusals))
	}
	r := refusals[0]
	if r.Subject != "" || !strings.HasPrefix(r.Detail, "unknown best=") || r.Score <= 0 || len(r.Evidence) != 2 {
		t.Errorf("got %+v, want an unidentified reading with the distances and evidence", r)
	}
}

// A still, empty doorway is searched once; a change is searched again.
func TestStreamSkipsStillFrames(t *testing.T) {
	rec := newFake()
	p := testPipeline(t, rec)
	s := p.NewStream(drivers.Env{}, drivers.Auto)
	still := textured(t, 320, 240, 7)
	for i := range 20 {
		if _, err := s.Push(context.Background(), still, time.Unix(int64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Searched != 1 || s.Skipped != 19 || rec.calls != 1 {
		t.Errorf("20 still frames: searched %d, skipped %d, recognizer called %d; want 1, 19, 1", s.Searched, s.Skipped, rec.calls)
	}
	if _, err := s.Push(context.Background(), textured(t, 320, 240, 8), time.Unix(30, 0)); err != nil {
		t.Fatal(err)
	}
	if s.Searched != 2 {
		t.Errorf("a changed frame: searched %d, want 2", s.Searched)
	}
	if _, err := s.Push(context.Background(), []byte("not a jpeg"), time.Unix(31, 0)); !errors.Is(err, ErrBadFrame) {
		t.Errorf("a corrupt frame: got %v, want ErrBadFrame", err)
	}
}

// A spot check counts every face of the fullest frame and names a trainee only when K frames of
// the burst agree.
func TestSpotCheck(t *testing.T) {
	rec := newFake()
	p := testPipeline(t, rec)
	ev := &memEvidence{}
	var burst [][]byte
	for i := range 3 {
		f := textured(t, 400, 200, uint64(300+i))
		dets := []Detection{{Rect: faceRect, Descriptor: unit(0, 0.5)}}
		if i == 0 { // B is accepted in one frame only; the face is there in all three
			dets = append(dets, Detection{Rect: faceRect.Add(image.Pt(200, 0)), Descriptor: unit(1, 0.5)})
		} else if i == 1 {
			dets = append(dets, Detection{Rect: faceRect.Add(image.Pt(200, 0)), Descriptor: unit(9, 0.5)})
		}
		rec.set(f, dets...)
		burst = append(burst, f)
	}
	burst = append(burst, []byte("corrupt"))
	rs, err := p.SpotCheck(context.Background(), drivers.Env{Evidence: ev}, burst, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d readings, want a headcount of 2", len(rs))
	}
	if rs[0].Subject != "A" || rs[0].Intent != drivers.Sighting || len(rs[0].Evidence) != 2 {
		t.Errorf("first face: got %+v, want A sighted with evidence", rs[0])
	}
	if rs[1].Subject != "" || !strings.Contains(rs[1].Detail, "votes=1/3 want 3") {
		t.Errorf("second face: got %q %q, want unidentified, accepted in 1 of 3 frames", rs[1].Subject, rs[1].Detail)
	}
	if ev.frames != 1 || rs[0].Evidence[1] != rs[1].Evidence[1] {
		t.Errorf("the frame was put %d times, want once for both faces", ev.frames)
	}
	if _, err := p.SpotCheck(context.Background(), drivers.Env{}, [][]byte{[]byte("x")}, time.Unix(0, 0)); !errors.Is(err, ErrBadFrame) {
		t.Errorf("a burst of corrupt frames: got %v, want ErrBadFrame", err)
	}
	ev.fail = errors.New("evidence budget full")
	if _, err := p.SpotCheck(context.Background(), drivers.Env{Evidence: ev}, burst[:1], time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), "budget full") {
		t.Errorf("a full evidence store: got %v, want its error", err)
	}
}

// Templates made by another model are refused as a whole, and the old gallery stays.
func TestSyncTemplatesModel(t *testing.T) {
	p := testPipeline(t, newFake())
	ds, _ := galleryOf(t)
	other := *ds
	other.Model.SHA256 = strings.Repeat("cd", 32)
	ts, err := other.Templates()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SyncTemplates(context.Background(), ts); !errors.Is(err, ErrModelMismatch) {
		t.Errorf("got %v, want ErrModelMismatch", err)
	}
	if p.gallery.Len() != 3 {
		t.Errorf("gallery has %d trainees after a refused sync, want the old 3", p.gallery.Len())
	}
	ts = append(ts[:0], drivers.Template{Trainee: "F", Kind: drivers.FingerTemplate, Data: []byte{1, 2}})
	if rep, err := p.SyncTemplates(context.Background(), ts); err != nil || p.gallery.Len() != 0 || !strings.Contains(rep, "0 trainees") {
		t.Errorf("fingerprint templates only: got %q, %v, %d trainees; want an empty face gallery", rep, err, p.gallery.Len())
	}
	if _, err := GalleryFromDataset(testModel, &other); !errors.Is(err, ErrModelMismatch) {
		t.Errorf("a dataset of another model: got %v, want ErrModelMismatch", err)
	}
}

func TestDatasetRoundTrip(t *testing.T) {
	ds, _ := galleryOf(t)
	b, err := ds.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseDataset(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Trainees) != 3 || back.Trainees[1].Descriptors[0].D != unit(1, 0.5) || back.Model != testModel {
		t.Errorf("got %+v, want the dataset back", back)
	}
	for _, bad := range []string{
		`{}`,
		`{"format":"kaoqin-face-templates/1","model":{"name":"m","sha256":"xyz"},"trainees":[]}`,
		`{"format":"kaoqin-face-templates/1","model":{"name":"m","sha256":"` + testModel.SHA256 + `"},"trainees":[{"trainee":"A","descriptors":[]}]}`,
		`{"format":"kaoqin-face-templates/1","model":{"name":"m","sha256":"` + testModel.SHA256 + `"},"trainees":[{"trainee":"A","descriptors":[{"d":"AAAA"}]}]}`,
	} {
		if _, err := ParseDataset([]byte(bad)); err == nil {
			t.Errorf("ParseDataset(%s): got no error, want one", bad)
		}
	}
	var nan Descriptor
	nan[3] = float32(math.NaN())
	if _, _, err := DecodeTemplate(EncodeTemplate([32]byte{}, &nan)); err == nil {
		t.Error("a NaN descriptor: got no error, want one")
	}
}

func FuzzParseDataset(f *testing.F) {
	ds, _ := galleryOf(f)
	b, _ := ds.Marshal()
	f.Add(b)
	f.Add([]byte(`{"format":"kaoqin-face-templates/1"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ParseDataset(b)
		if err != nil {
			return
		}
		if _, err := ds.Templates(); err != nil {
			t.Fatalf("a parsed dataset's templates: %v", err)
		}
		if _, err := GalleryFromDataset(ds.Model, ds); err != nil {
			t.Fatalf("a parsed dataset's gallery: %v", err)
		}
	})
}

func FuzzDecodeTemplate(f *testing.F) {
	d := unit(3, 0.25)
	f.Add(EncodeTemplate([32]byte{1}, &d))
	f.Add([]byte("KQF1"))
	f.Add(make([]byte, TemplateSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, d, err := DecodeTemplate(b)
		if err != nil {
			return
		}
		if again := EncodeTemplate(m, &d); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded template differs from the input")
		}
	})
}

// FuzzFrame: whatever bytes a camera sends, the pipeline returns a decision or an error, never a
// panic; the fake recognizer reports one face wherever the bytes decode.
func FuzzFrame(f *testing.F) {
	f.Add(textured(f, 64, 48, 1))
	f.Add([]byte{0xff, 0xd8, 0xff})
	f.Add([]byte{})
	p, err := NewPipeline(anyFace{}, DefaultPolicy())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := p.Decide(b, nil)
		if err == nil && len(fr.Faces) != 1 {
			t.Fatalf("got %d faces, want 1", len(fr.Faces))
		}
		s := p.NewStream(drivers.Env{Evidence: &memEvidence{}}, drivers.Auto)
		_, _ = s.Push(context.Background(), b, time.Unix(0, 0))
	})
}

// anyFace finds one face, the whole frame and beyond, in every decodable JPEG.
type anyFace struct{}

func (anyFace) Faces(jpg []byte) ([]Detection, error) {
	if _, err := jpeg.DecodeConfig(bytes.NewReader(jpg)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	return []Detection{{Rect: image.Rect(-10, -10, 5000, 5000)}}, nil
}

func (anyFace) Model() Model { return testModel }

func TestConfig(t *testing.T) {
	c := Config{}
	var keys []string
	for _, fe := range drivers.FieldErrors(c.Validate()) {
		keys = append(keys, fe.Key)
	}
	if strings.Join(keys, ",") != "models" {
		t.Errorf("an empty config: got errors on %v, want on models only", keys)
	}
	c = Config{Models: "m", K: 6, Margin: 0.5, MinChroma: -1}
	keys = nil
	for _, fe := range drivers.FieldErrors(c.Validate()) {
		keys = append(keys, fe.Key)
	}
	if strings.Join(keys, ",") != "margin,k,min_chroma" {
		t.Errorf("got errors on %v, want margin, k, min_chroma", keys)
	}
	c = Config{Models: "m", Threshold: 0.35, Cooldown: drivers.Duration(time.Minute)}
	if p := c.Policy(); p.Threshold != 0.35 || p.Margin != DefaultPolicy().Margin || p.Cooldown != time.Minute || p.K != 3 {
		t.Errorf("got %+v, want the defaults with threshold 0.35 and a one-minute cooldown", p)
	}
}
