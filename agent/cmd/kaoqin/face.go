//go:build cgo

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/kaoqin/kaoqin/drivers/face"
	"github.com/kaoqin/kaoqin/drivers/face/dlib"
)

const faceUsage = `Usage: kaoqin face enroll --trainee ID --out FILE [--jitter N] [--models DIR] PHOTO...
       kaoqin face identify --templates FILE [--expected ID,ID...] [--json] [--models DIR] PHOTO...

enroll computes a descriptor per photo (each must show the trainee alone, sharp, in colour) and
adds the trainee to the face-template file FILE (created if missing; an earlier enrolment of the
same trainee is replaced). identify prints, for each face of each photo, the decision the daemon
makes on one frame: the trainee, or unknown / ambiguous / low_quality, with the best and runner-up
distances.`

// faceModels is where the dlib models are: $KAOQIN_FACE_MODELS, or where `make deps` puts them.
func faceModels() string {
	if d := os.Getenv("KAOQIN_FACE_MODELS"); d != "" {
		return d
	}
	return filepath.Join(".cache", "face-models")
}

func cmdFace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "face", []string{"enroll", "identify"}, faceUsage, stdout)
	if err != nil {
		return err
	}
	if sub == "enroll" {
		return faceEnroll(args[1:], stdout, stderr)
	}
	return faceIdentify(args[1:], stdout, stderr)
}

func faceEnroll(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("face enroll", "face enroll --trainee ID --out FILE [--jitter N] PHOTO...", stderr)
	trainee := fs.String("trainee", "", "trainee ID (required)")
	out := fs.String("out", "", "face-template file to add the trainee to (required)")
	jitter := fs.Int("jitter", 20, "jittered copies averaged per descriptor (more is steadier and slower: about 40 ms each)")
	models := fs.String("models", faceModels(), "folder of the dlib models ($KAOQIN_FACE_MODELS)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *trainee == "" || *out == "" || fs.NArg() == 0 {
		return usagef("face enroll: --trainee, --out and at least one PHOTO are required")
	}
	if *jitter < 0 {
		return usagef("face enroll: --jitter must not be negative")
	}
	photos := make([]face.Photo, 0, fs.NArg())
	for _, name := range fs.Args() {
		b, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("face enroll: %w", err)
		}
		photos = append(photos, face.Photo{Name: name, JPEG: b})
	}
	rec, err := dlib.Open(*models, dlib.Options{Jitter: *jitter})
	if err != nil {
		return err
	}
	defer rec.Close()
	ds := &face.Dataset{Format: face.DatasetFormat, Model: rec.Model()}
	if b, err := os.ReadFile(*out); err == nil {
		if ds, err = face.ParseDataset(b); err != nil {
			return fmt.Errorf("face enroll: %s: %w", *out, err)
		}
		if ds.Model != rec.Model() {
			return fmt.Errorf("face enroll: %s: %w (%s %s, this build uses %s %s)", *out, face.ErrModelMismatch, ds.Model.Name, ds.Model.SHA256, rec.Model().Name, rec.Model().SHA256)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("face enroll: %w", err)
	}
	tf, err := face.Enroll(rec, face.DefaultPolicy(), *trainee, photos, *jitter)
	if err != nil {
		return err
	}
	ds.Put(tf)
	b, err := ds.Marshal()
	if err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("face enroll: %w", err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		return fmt.Errorf("face enroll: %w", err)
	}
	fmt.Fprintf(stdout, "enrolled %s from %d photo(s) into %s (%d trainees, model %s)\n", *trainee, len(tf.Descriptors), *out, len(ds.Trainees), ds.Model.Name)
	return nil
}

// identifiedFace is one face in `face identify --json`; distances are null when there is none.
type identifiedFace struct {
	Photo      string       `json:"photo"`
	Box        [4]int       `json:"box"`
	Outcome    face.Outcome `json:"outcome"`
	Trainee    string       `json:"trainee,omitempty"`
	Best       string       `json:"best,omitempty"`
	BestDist   *float64     `json:"best_distance"`
	RunnerUp   string       `json:"runner_up,omitempty"`
	RunnerDist *float64     `json:"runner_up_distance"`
	Candidates int          `json:"candidates"`
	Quality    face.Quality `json:"quality"`
}

func finite(d float64) *float64 {
	if math.IsInf(d, 0) || math.IsNaN(d) {
		return nil
	}
	return &d
}

func faceIdentify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("face identify", "face identify --templates FILE [--expected ID,...] [--json] PHOTO...", stderr)
	templates := fs.String("templates", "", "face-template file (required)")
	expected := fs.String("expected", "", "comma-separated trainees expected in the room (default: everyone in the file)")
	asJSON := fs.Bool("json", false, "print JSON, one array of faces")
	models := fs.String("models", faceModels(), "folder of the dlib models ($KAOQIN_FACE_MODELS)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *templates == "" || fs.NArg() == 0 {
		return usagef("face identify: --templates and at least one PHOTO are required")
	}
	b, err := os.ReadFile(*templates)
	if err != nil {
		return fmt.Errorf("face identify: %w", err)
	}
	ds, err := face.ParseDataset(b)
	if err != nil {
		return fmt.Errorf("face identify: %s: %w", *templates, err)
	}
	rec, err := dlib.Open(*models, dlib.Options{})
	if err != nil {
		return err
	}
	defer rec.Close()
	g, err := face.GalleryFromDataset(rec.Model(), ds)
	if err != nil {
		return fmt.Errorf("face identify: %s: %w", *templates, err)
	}
	p, err := face.NewPipeline(rec, face.DefaultPolicy())
	if err != nil {
		return err
	}
	p.SetGallery(g)
	var exp []string
	if *expected != "" {
		exp = strings.Split(*expected, ",")
	}
	all := []identifiedFace{}
	var failed []error
	for _, name := range fs.Args() {
		jpg, err := os.ReadFile(name)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		fr, err := p.Decide(jpg, exp)
		if err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if len(fr.Faces) == 0 && !*asJSON {
			fmt.Fprintf(stdout, "%s: no face found\n", name)
		}
		for i, f := range fr.Faces {
			all = append(all, identifiedFace{Photo: name, Box: f.Box, Outcome: f.Outcome, Trainee: f.Trainee, Best: f.Best,
				BestDist: finite(f.BestDist), RunnerUp: f.RunnerUp, RunnerDist: finite(f.RunnerDist), Candidates: f.Candidates, Quality: f.Quality})
			if !*asJSON {
				who := string(f.Outcome)
				if f.Outcome == face.Accepted {
					who = f.Trainee
				}
				fmt.Fprintf(stdout, "%s face %d %v: %s (%s)\n", name, i+1, f.Box, who, f.Detail())
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("face identify: %w", errors.Join(failed...))
	}
	return nil
}
