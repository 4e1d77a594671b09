//go:build cgo

package dlib_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kaoqin/kaoqin/drivers/face"
	"github.com/kaoqin/kaoqin/drivers/face/dlib"
)

// enrolled are the trainees of the shared photo set, each enrolled from one photo.
var enrolled = map[string]string{
	"bona": "enroll/bona.jpg", "chaeyeon": "enroll/chaeyeon.jpg", "jimin": "enroll/jimin.jpg",
	"tzuyu": "enroll/tzuyu.jpg", "luda": "enroll/luda.jpg", "eunseo": "enroll/eunseo2.jpg",
}

// probes are other photos of enrolled trainees, with who they show.
var probes = map[string]string{
	"probe/bona2.jpg": "bona", "probe/chaeyeon3.jpg": "chaeyeon", "probe/jimin2.jpg": "jimin",
	"probe/jimin4.jpg": "jimin", "probe/jimin6.jpg": "jimin", "probe/eunseo3.jpg": "eunseo",
}

var unknowns = []string{"unknown/elkie.jpg", "unknown/joy.jpg", "unknown/meiqi.jpg", "unknown/nana.jpg", "unknown/rena.jpg"}

var (
	classOnce sync.Once
	class     *face.Dataset
	classErr  error
)

// classDataset enrols the six trainees once per test binary (with jitter).
func classDataset(t testing.TB) *face.Dataset {
	t.Helper()
	classOnce.Do(func() {
		ds := &face.Dataset{Format: face.DatasetFormat, Model: dlib.Model}
		for id, rel := range enrolled {
			tf, err := face.Enroll(jittered, face.DefaultPolicy(), id, []face.Photo{{Name: rel, JPEG: readPhoto(t, rel)}}, enrolJitter)
			if err != nil {
				classErr = err
				return
			}
			ds.Put(tf)
		}
		class = ds
	})
	if classErr != nil {
		t.Fatalf("enrol the class: %v", classErr)
	}
	return class
}

func classPipeline(t testing.TB) *face.Pipeline {
	t.Helper()
	p, err := face.NewPipeline(plain, face.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	g, err := face.GalleryFromDataset(plain.Model(), classDataset(t))
	if err != nil {
		t.Fatal(err)
	}
	p.SetGallery(g)
	return p
}

// TestNoWrongAccept is the accuracy contract: no probe is ever accepted as another trainee and no
// unknown person is accepted at all, against the whole class as the expected set. It reports how
// many probes are accepted correctly.
func TestNoWrongAccept(t *testing.T) {
	p := classPipeline(t)
	correct := 0
	for rel, who := range probes {
		fr, err := p.Decide(readPhoto(t, rel), nil)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if len(fr.Faces) != 1 {
			t.Fatalf("%s: got %d faces, want 1", rel, len(fr.Faces))
		}
		f := fr.Faces[0]
		t.Logf("%s (%s): %s", rel, who, f.Detail())
		switch {
		case f.Outcome == face.Accepted && f.Trainee != who:
			t.Errorf("%s: accepted as %s, want %s or a refusal", rel, f.Trainee, who)
		case f.Outcome == face.Accepted:
			correct++
		}
	}
	for _, rel := range unknowns {
		fr, err := p.Decide(readPhoto(t, rel), nil)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		for _, f := range fr.Faces {
			t.Logf("%s (not enrolled): %s", rel, f.Detail())
			if f.Outcome == face.Accepted {
				t.Errorf("%s: an unknown person accepted as %s, want a refusal", rel, f.Trainee)
			}
		}
	}
	t.Logf("correct accepts: %d of %d probes (no wrong accept)", correct, len(probes))
}

// TestEnrollNoFace: a photo where the detector finds no face fails the enrolment with a sentence
// naming the photo; nothing is enrolled.
func TestEnrollNoFace(t *testing.T) {
	tf, err := face.Enroll(plain, face.DefaultPolicy(), "eunseo", []face.Photo{
		{Name: "enroll/eunseo2.jpg", JPEG: readPhoto(t, "enroll/eunseo2.jpg")},
		{Name: "enroll/eunseo.jpg", JPEG: readPhoto(t, "enroll/eunseo.jpg")},
	}, 0)
	if err == nil || !strings.Contains(err.Error(), "enroll/eunseo.jpg: no face found") {
		t.Fatalf("got %v, want an error saying enroll/eunseo.jpg has no face", err)
	}
	if len(tf.Descriptors) != 0 {
		t.Errorf("got %d descriptors after a failed enrolment, want 0", len(tf.Descriptors))
	}
}

// TestEnrollGroupRefused: a photo with several faces is not an enrolment photo.
func TestEnrollGroupRefused(t *testing.T) {
	_, err := face.Enroll(plain, face.DefaultPolicy(), "x", []face.Photo{{Name: "group/pristin.jpg", JPEG: readPhoto(t, "group/pristin.jpg")}}, 0)
	if err == nil || !strings.Contains(err.Error(), "10 faces found") {
		t.Fatalf("got %v, want an error saying the photo has 10 faces", err)
	}
}

// TestGroupEveryFace: at full resolution (the spot-check resolution) the detector finds all ten
// faces of the group photo, and each is decided on its own: with Rena (a member of the group)
// enrolled from another photo, at most one face is accepted as her and none as anybody else.
func TestGroupEveryFace(t *testing.T) {
	ds := &face.Dataset{Format: face.DatasetFormat, Model: dlib.Model}
	for _, tf := range classDataset(t).Trainees {
		ds.Put(tf)
	}
	rena, err := face.Enroll(jittered, face.DefaultPolicy(), "rena", []face.Photo{{Name: "unknown/rena.jpg", JPEG: readPhoto(t, "unknown/rena.jpg")}}, enrolJitter)
	if err != nil {
		t.Fatal(err)
	}
	ds.Put(rena)
	g, err := face.GalleryFromDataset(plain.Model(), ds)
	if err != nil {
		t.Fatal(err)
	}
	p, err := face.NewPipeline(plain, face.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	p.SetGallery(g)
	fr, err := p.Decide(readPhoto(t, "group/pristin.jpg"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fr.Faces) != 10 {
		t.Fatalf("got %d faces in group/pristin.jpg, want 10", len(fr.Faces))
	}
	asRena := 0
	for i, f := range fr.Faces {
		t.Logf("face %d %v: %s", i, f.Rect, f.Detail())
		if f.Outcome == "" {
			t.Errorf("face %d: no decision", i)
		}
		if f.Outcome == face.Accepted {
			if f.Trainee != "rena" {
				t.Errorf("face %d accepted as %s, who is not in the photo", i, f.Trainee)
			}
			asRena++
		}
	}
	if asRena > 1 {
		t.Errorf("got %d faces accepted as rena, want at most 1", asRena)
	}
}

// TestModelChecks: a missing model folder fails with the way to get the models; templates made by
// another model are refused.
func TestModelChecks(t *testing.T) {
	_, err := dlib.Open(t.TempDir(), dlib.Options{})
	if !errors.Is(err, dlib.ErrModels) || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("got %v, want ErrModels saying to run make deps", err)
	}
	ds := *classDataset(t)
	ds.Model.SHA256 = strings.Repeat("ab", 32)
	if _, err := face.GalleryFromDataset(plain.Model(), &ds); !errors.Is(err, face.ErrModelMismatch) {
		t.Errorf("got %v, want ErrModelMismatch", err)
	}
}
