package face

import (
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/kaoqin/kaoqin/drivers"
)

// Gallery holds one template per trainee: the mean of the trainee's enrolment descriptors. It is
// immutable once made; a new roster makes a new gallery.
type Gallery struct {
	model Model
	ids   []string       // sorted
	index map[string]int // trainee -> position in ids
	vecs  []float32      // len(ids)*128, the means, contiguous for a fast scan
	count []int          // descriptors averaged per trainee

	// last caches the positions of the last expected list, which a camera passes again and again
	// during a session: resolving 10,000 IDs through the map costs more than matching against them.
	last atomic.Pointer[resolved]
}

type resolved struct {
	ids []string // a copy of the expected list
	pos []int32
}

// NewGallery makes a gallery from the roster's templates. Templates of another kind are ignored;
// a face template made by another model than model, or whose bytes are not a template, is an
// error (the whole roster is refused: a box never matches half a gallery silently).
func NewGallery(model Model, ts []drivers.Template) (*Gallery, error) {
	sum, err := hex.DecodeString(model.SHA256)
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("face: gallery: model sha256 %q is not 64 hex digits", model.SHA256)
	}
	by := map[string][]Descriptor{}
	for i, t := range ts {
		if t.Kind != drivers.FaceTemplate {
			continue
		}
		m, d, err := DecodeTemplate(t.Data)
		if err != nil {
			return nil, fmt.Errorf("face: gallery: template %d of trainee %q: %w", i, t.Trainee, err)
		}
		if m != [32]byte(sum) {
			return nil, fmt.Errorf("face: gallery: template %d of trainee %q: %w (made by a model with sha256 %x, this box runs %s %s)",
				i, t.Trainee, ErrModelMismatch, m, model.Name, model.SHA256)
		}
		if t.Trainee == "" {
			return nil, fmt.Errorf("face: gallery: template %d has no trainee", i)
		}
		by[t.Trainee] = append(by[t.Trainee], d)
	}
	return newGallery(model, by), nil
}

// GalleryFromDataset makes a gallery from a dataset file, refusing one made by another model.
func GalleryFromDataset(model Model, ds *Dataset) (*Gallery, error) {
	if ds.Model != model {
		return nil, fmt.Errorf("face: gallery: %w: the templates were made by %s %s, this box runs %s %s",
			ErrModelMismatch, ds.Model.Name, ds.Model.SHA256, model.Name, model.SHA256)
	}
	by := map[string][]Descriptor{}
	for _, t := range ds.Trainees {
		for _, e := range t.Descriptors {
			by[t.Trainee] = append(by[t.Trainee], e.D)
		}
	}
	return newGallery(model, by), nil
}

func newGallery(model Model, by map[string][]Descriptor) *Gallery {
	g := &Gallery{model: model, index: make(map[string]int, len(by))}
	for id := range by {
		g.ids = append(g.ids, id)
	}
	slices.Sort(g.ids)
	g.vecs = make([]float32, 0, len(g.ids)*128)
	for i, id := range g.ids {
		g.index[id] = i
		var m [128]float32
		for _, d := range by[id] {
			for k := range m {
				m[k] += d[k]
			}
		}
		for k := range m {
			m[k] /= float32(len(by[id]))
		}
		g.vecs = append(g.vecs, m[:]...)
		g.count = append(g.count, len(by[id]))
	}
	return g
}

// Len is the number of trainees in the gallery.
func (g *Gallery) Len() int { return len(g.ids) }

// Has reports whether the trainee has a template.
func (g *Gallery) Has(trainee string) bool { _, ok := g.index[trainee]; return ok }

// Match is the nearest trainees to one face.
type Match struct {
	Best       string  `json:"best,omitempty"`
	BestDist   float64 `json:"best_distance"`
	RunnerUp   string  `json:"runner_up,omitempty"`
	RunnerDist float64 `json:"runner_up_distance"` // +Inf (written as -1 in JSON by callers) when there is none
	Candidates int     `json:"candidates"`         // templates compared
}

// Match finds the nearest and second-nearest trainee to d among expected (nil: the whole gallery;
// trainees without a template are skipped). With no candidate, Best is empty and both distances
// are +Inf.
func (g *Gallery) Match(d *Descriptor, expected []string) Match {
	best, second := math.MaxFloat32, math.MaxFloat32
	bi, si := -1, -1
	consider := func(i int) {
		if i == bi || i == si {
			return // a trainee listed twice
		}
		dist := sqDist(d, g.vecs[i*128:i*128+128], second)
		if dist < best {
			second, si = best, bi
			best, bi = dist, i
		} else if dist < second {
			second, si = dist, i
		}
	}
	n := 0
	if expected == nil {
		for i := range g.ids {
			consider(i)
		}
		n = len(g.ids)
	} else {
		pos := g.resolve(expected)
		for _, i := range pos {
			consider(int(i))
		}
		n = len(pos)
	}
	m := Match{BestDist: math.Inf(1), RunnerDist: math.Inf(1), Candidates: n}
	if bi >= 0 {
		m.Best, m.BestDist = g.ids[bi], math.Sqrt(best)
	}
	if si >= 0 {
		m.RunnerUp, m.RunnerDist = g.ids[si], math.Sqrt(second)
	}
	return m
}

// resolve turns expected trainee IDs into gallery positions, skipping those without a template;
// the same slice passed again is resolved from the cache.
func (g *Gallery) resolve(expected []string) []int32 {
	if len(expected) == 0 {
		return nil
	}
	if r := g.last.Load(); r != nil && slices.Equal(r.ids, expected) {
		return r.pos // equal strings sharing their bytes compare at the cost of a pointer check
	}
	pos := make([]int32, 0, len(expected))
	for _, id := range expected {
		if i, ok := g.index[id]; ok {
			pos = append(pos, int32(i))
		}
	}
	g.last.Store(&resolved{ids: slices.Clone(expected), pos: pos})
	return pos
}

// sqDist is the squared distance from d to v, abandoned (returning a value >= bound) as soon as
// the partial sum passes bound: only the two nearest matter.
func sqDist(d *Descriptor, v []float32, bound float64) float64 {
	v = v[:128]
	var s float32
	for k := 0; k < 128; k += 32 {
		var s0, s1, s2, s3 float32
		for j := k; j < k+32; j += 4 {
			x0, x1, x2, x3 := d[j]-v[j], d[j+1]-v[j+1], d[j+2]-v[j+2], d[j+3]-v[j+3]
			s0 += x0 * x0
			s1 += x1 * x1
			s2 += x2 * x2
			s3 += x3 * x3
		}
		s += s0 + s1 + s2 + s3
		if float64(s) >= bound {
			return float64(s)
		}
	}
	return float64(s)
}
