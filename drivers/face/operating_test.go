package face

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

var plotPath = flag.String("plot", "", "write the distance-distribution plot (PNG) of TestOperatingPoint to this file")

// measuringSet is the descriptor set grouped by person, with the photos that appear under two
// labels (a cross-label pair closer than 0.15, far below any distinct photos of one person) left
// out: they are label noise, not look-alikes.
func measuringSet(t testing.TB) (people []string, by map[string][]Descriptor, dropped int) {
	faces := loadIdols(t)
	dup := map[int]bool{}
	for i := range faces {
		for j := i + 1; j < len(faces); j++ {
			if faces[i].Person != faces[j].Person && Distance(&faces[i].D, &faces[j].D) < 0.15 {
				dup[i], dup[j] = true, true
			}
		}
	}
	by = map[string][]Descriptor{}
	for i, f := range faces {
		if !dup[i] {
			by[f.Person] = append(by[f.Person], f.D)
		}
	}
	for p, ds := range by {
		if len(ds) >= 4 { // one or three to enrol, at least one left to probe with
			people = append(people, p)
		}
	}
	slices.Sort(people)
	return people, by, len(dup)
}

// simResult is a simulated session's outcome counts.
type simResult struct {
	strangers, strangerAccepted int
	genuine, correct, wrong     int
}

func (r simResult) far() float64 { return float64(r.strangerAccepted) / float64(r.strangers) }

// simulate draws sessions of size people enrolled from enrol photos each, and decides with pol:
// a face of somebody not in the session (a stranger) and one unseen photo of every enrolled person
// (genuine). Each face is one frame's decision; k of n is not credited (frames of one person are
// not independent draws).
func simulate(people []string, by map[string][]Descriptor, size, enrol, trials int, pol Policy, seed uint64) simResult {
	rng := rand.New(rand.NewPCG(seed, 7))
	var r simResult
	for range trials {
		perm := rng.Perm(len(people))
		ts := map[string][]Descriptor{}
		probe := map[string]Descriptor{}
		ids := make([]string, 0, size)
		for _, i := range perm[:size] {
			p := people[i]
			ds := by[p]
			o := rng.Perm(len(ds))
			for _, j := range o[:enrol] {
				ts[p] = append(ts[p], ds[j])
			}
			probe[p] = ds[o[enrol+rng.IntN(len(ds)-enrol)]]
			ids = append(ids, p)
		}
		g := newGallery(Model{}, ts)
		decide := func(d *Descriptor) (string, bool) {
			m := g.Match(d, nil)
			switch {
			case m.BestDist >= pol.Threshold:
				return "", false
			case m.RunnerUp == "" && m.BestDist >= pol.Threshold-pol.Margin:
				return "", false
			case m.RunnerUp != "" && m.RunnerDist-m.BestDist < pol.Margin:
				return "", false
			}
			return m.Best, true
		}
		for _, i := range perm[size:] {
			ds := by[people[i]]
			r.strangers++
			if _, ok := decide(&ds[rng.IntN(len(ds))]); ok {
				r.strangerAccepted++
			}
		}
		for _, p := range ids {
			d := probe[p]
			r.genuine++
			if who, ok := decide(&d); ok && who == p {
				r.correct++
			} else if ok {
				r.wrong++
			}
		}
	}
	return r
}

// TestOperatingPoint measures the same-person and different-person distance distributions of the
// descriptor set and checks that DefaultPolicy keeps the false-accept rate it is designed for
// (docs/face.md): at most 1% of strangers' faces accepted as somebody, per frame decision, in a
// 30- and a 100-person session enrolled from one photo each. It logs the figures the doc quotes;
// with -plot FILE it draws the distributions.
func TestOperatingPoint(t *testing.T) {
	people, by, dropped := measuringSet(t)
	var same, diff []float64
	all := make([]Descriptor, 0, 1220)
	owner := []string{}
	for _, p := range people {
		for _, d := range by[p] {
			all = append(all, d)
			owner = append(owner, p)
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			d := Distance(&all[i], &all[j])
			if owner[i] == owner[j] {
				same = append(same, d)
			} else {
				diff = append(diff, d)
			}
		}
	}
	slices.Sort(same)
	slices.Sort(diff)
	pol := DefaultPolicy()
	below := func(xs []float64, v float64) float64 {
		i, _ := slices.BinarySearch(xs, v)
		return float64(i) / float64(len(xs))
	}
	t.Logf("%d people, %d descriptors (%d dropped as one photo under two labels)", len(people), len(all), dropped)
	t.Logf("same person: %d pairs, median %.3f, 5%% %.3f, 95%% %.3f", len(same), same[len(same)/2], same[len(same)/20], same[len(same)*19/20])
	t.Logf("different people: %d pairs, median %.3f, 1%% %.3f, 5%% %.3f", len(diff), diff[len(diff)/2], diff[len(diff)/100], diff[len(diff)/20])
	for _, th := range []float64{0.30, 0.34, pol.Threshold, 0.40, 0.45, 0.6} {
		t.Logf("threshold %.2f: same-person pairs under it %.1f%%, different-person pairs under it (false accepts per comparison) %.2f%%",
			th, 100*below(same, th), 100*below(diff, th))
	}
	const budget = 0.01
	for _, size := range []int{30, 100} {
		for _, enrol := range []int{1, 3} {
			r := simulate(people, by, size, enrol, 300, pol, uint64(size*10+enrol))
			bare := simulate(people, by, size, enrol, 300, Policy{Threshold: pol.Threshold, Margin: 0}, uint64(size*10+enrol))
			t.Logf("session of %d, %d enrolment photo(s): strangers accepted %.2f%% of %d (threshold alone: %.1f%%); genuine faces accepted correctly %.1f%%, as somebody else %.2f%% of %d",
				size, enrol, 100*r.far(), r.strangers, 100*bare.far(), 100*float64(r.correct)/float64(r.genuine), 100*float64(r.wrong)/float64(r.genuine), r.genuine)
			if enrol == 1 && r.far() > budget {
				t.Errorf("session of %d: got a stranger false-accept rate of %.2f%%, want at most %.0f%% (the rate docs/face.md designs for)", size, 100*r.far(), 100*budget)
			}
		}
	}
	if *plotPath != "" {
		if err := writePlot(*plotPath, same, diff, pol); err != nil {
			t.Fatal(err)
		}
	}
}

// writePlot draws the two distributions as histograms (bins of 0.01 from 0 to 1, each normalised to
// its own total) with the threshold and threshold-margin marked, using only image/png.
func writePlot(path string, same, diff []float64, pol Policy) error {
	const w, h, left, bottom, top, bins = 900, 420, 50, 40, 20, 100
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	hist := func(xs []float64) []float64 {
		hs := make([]float64, bins)
		for _, x := range xs {
			if b := int(x * bins); b >= 0 && b < bins {
				hs[b]++
			}
		}
		for i := range hs {
			hs[i] /= float64(len(xs))
		}
		return hs
	}
	hs, hd := hist(same), hist(diff)
	peak := slices.Max(append(slices.Clone(hs), hd...))
	plotW, plotH := w-left-20, h-bottom-top
	xOf := func(v float64) int { return left + int(v*float64(plotW)) }
	yOf := func(f float64) int { return h - bottom - int(f/peak*float64(plotH)) }
	fill := func(x0, y0, x1, y1 int, c color.RGBA) {
		for y := max(0, y0); y < min(h, y1); y++ {
			for x := max(0, x0); x < min(w, x1); x++ {
				o := img.PixOffset(x, y)
				// blend, so overlapping bars show both colours
				img.Pix[o] = uint8((int(img.Pix[o]) + int(c.R)) / 2)
				img.Pix[o+1] = uint8((int(img.Pix[o+1]) + int(c.G)) / 2)
				img.Pix[o+2] = uint8((int(img.Pix[o+2]) + int(c.B)) / 2)
			}
		}
	}
	blue, red, black, green := color.RGBA{30, 90, 200, 255}, color.RGBA{210, 50, 40, 255}, color.RGBA{0, 0, 0, 255}, color.RGBA{0, 150, 60, 255}
	for i := 0; i < bins; i++ {
		x0, x1 := xOf(float64(i)/bins), xOf(float64(i+1)/bins)
		fill(x0, yOf(hs[i]), x1, h-bottom, blue)
		fill(x0, yOf(hd[i]), x1, h-bottom, red)
	}
	// axes and ticks every 0.1
	fill(left, h-bottom, w-20, h-bottom+1, black)
	fill(left-1, top, left, h-bottom, black)
	for i := 0; i <= 10; i++ {
		x := xOf(float64(i) / 10)
		fill(x, h-bottom, x+1, h-bottom+8, black)
		drawDigits(img, x-6, h-bottom+12, fmt.Sprintf("%.1f", float64(i)/10))
	}
	// the threshold (solid) and threshold-margin (dashed)
	fill(xOf(pol.Threshold), top, xOf(pol.Threshold)+2, h-bottom, green)
	for y := top; y < h-bottom; y += 8 {
		fill(xOf(pol.Threshold-pol.Margin), y, xOf(pol.Threshold-pol.Margin)+2, y+4, green)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// drawDigits writes a decimal like "0.4" in a 3x5 pixel font, doubled.
func drawDigits(img *image.RGBA, x, y int, s string) {
	font := map[rune][5]string{
		'0': {"111", "101", "101", "101", "111"}, '1': {"010", "110", "010", "010", "111"},
		'2': {"111", "001", "111", "100", "111"}, '3': {"111", "001", "111", "001", "111"},
		'4': {"101", "101", "111", "001", "001"}, '5': {"111", "100", "111", "001", "111"},
		'6': {"111", "100", "111", "101", "111"}, '7': {"111", "001", "001", "001", "001"},
		'8': {"111", "101", "111", "101", "111"}, '9': {"111", "101", "111", "001", "111"},
		'.': {"000", "000", "000", "000", "010"},
	}
	for _, r := range s {
		g, ok := font[r]
		if !ok {
			continue
		}
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if g[row][col] == '1' {
					for dy := 0; dy < 2; dy++ {
						for dx := 0; dx < 2; dx++ {
							img.Set(x+2*col+dx, y+2*row+dy, color.Black)
						}
					}
				}
			}
		}
		x += 8
	}
}
