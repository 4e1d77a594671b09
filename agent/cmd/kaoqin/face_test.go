//go:build cgo

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers/face"
	"github.com/kaoqin/kaoqin/drivers/face/dlib"
)

// faceDirs finds the dlib models (where make deps puts them) and the shared photo set.
func faceDirs(t *testing.T) (models, photos string) {
	t.Helper()
	models, err := testkit.FaceModels()
	if err == nil {
		photos, err = testkit.Testdata()
	}
	if err != nil {
		t.Fatal(err)
	}
	return models, filepath.Join(photos, "faces")
}

// kaoqin face enroll builds a dataset; identify prints exactly what the daemon's pipeline decides
// on the same photos.
func TestFaceEnrollIdentify(t *testing.T) {
	models, photos := faceDirs(t)
	t.Setenv("KAOQIN_FACE_MODELS", models)
	out := filepath.Join(t.TempDir(), "faces.json")
	for _, e := range [][2]string{{"bona", "enroll/bona.jpg"}, {"chaeyeon", "enroll/chaeyeon.jpg"}, {"jimin", "enroll/jimin.jpg"}} {
		r := cli(t, "face", "enroll", "--trainee", e[0], "--out", out, "--jitter", "2", filepath.Join(photos, e[1]))
		if r.code != 0 || !strings.Contains(r.stdout, "enrolled "+e[0]) {
			t.Fatalf("enroll %s: exit %d, %q %q; want exit 0", e[0], r.code, r.stdout, r.stderr)
		}
	}
	r := cli(t, "face", "enroll", "--trainee", "eunseo", "--out", out, filepath.Join(photos, "enroll/eunseo.jpg"))
	if r.code != 1 || !strings.Contains(r.stderr, "eunseo.jpg: no face found") {
		t.Errorf("enroll eunseo.jpg: exit %d, %q; want exit 1 saying no face was found", r.code, r.stderr)
	}
	probes := []string{filepath.Join(photos, "probe/chaeyeon3.jpg"), filepath.Join(photos, "probe/jimin6.jpg"), filepath.Join(photos, "unknown/joy.jpg")}
	r = cli(t, append([]string{"face", "identify", "--json", "--templates", out}, probes...)...)
	if r.code != 0 {
		t.Fatalf("identify: exit %d, %q", r.code, r.stderr)
	}
	var got []identifiedFace
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("identify --json: %v in %q", err, r.stdout)
	}

	// The daemon's side: the same dataset through face.Pipeline in this process.
	rec, err := dlib.Open(models, dlib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := face.ParseDataset(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Trainees) != 3 {
		t.Fatalf("dataset has %d trainees, want 3 (the failed enrolment adds none)", len(ds.Trainees))
	}
	g, err := face.GalleryFromDataset(rec.Model(), ds)
	if err != nil {
		t.Fatal(err)
	}
	p, err := face.NewPipeline(rec, face.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	p.SetGallery(g)
	i := 0
	for _, name := range probes {
		jpg, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := p.Decide(jpg, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fr.Faces {
			if i >= len(got) {
				t.Fatalf("identify printed %d faces, the pipeline found more", len(got))
			}
			c := got[i]
			i++
			if c.Photo != name || c.Outcome != f.Outcome || c.Trainee != f.Trainee || c.Best != f.Best || c.BestDist == nil || math.Abs(*c.BestDist-f.BestDist) > 1e-9 {
				t.Errorf("%s: identify says %s %q best %s %v, the pipeline %s %q best %s %.4f", name, c.Outcome, c.Trainee, c.Best, c.BestDist, f.Outcome, f.Trainee, f.Best, f.BestDist)
			}
		}
	}
	if i != len(got) {
		t.Errorf("identify printed %d faces, the pipeline found %d", len(got), i)
	}
}
