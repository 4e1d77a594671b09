package facecam_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/camera"
	"github.com/kaoqin/kaoqin/drivers/face"
	"github.com/kaoqin/kaoqin/drivers/facecam"
)

// twoFaces is a recognizer that finds the same two faces in every frame (no dlib needed).
type twoFaces struct{}

func (twoFaces) Faces(jpg []byte) ([]face.Detection, error) {
	return []face.Detection{{Rect: image.Rect(10, 10, 110, 110)}, {Rect: image.Rect(130, 20, 230, 120)}}, nil
}
func (twoFaces) Model() face.Model { return face.Model{Name: "test", SHA256: "00"} }

// fullStore refuses every photo, as an evidence store at its budget does.
type fullStore struct{}

func (fullStore) PutEvidence(drivers.EvidenceKind, []byte) (drivers.EvidenceRef, error) {
	return drivers.EvidenceRef{}, errors.New("store: evidence budget reached; new captures refused")
}

// A full evidence store does not cost the spot check its headcount: the readings come without
// photos, and the camera's health says why.
func TestSpotCheckWithTheEvidenceBudgetFull(t *testing.T) {
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 256, 160))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	f, err := os.Create(filepath.Join(dir, "room.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c := facecam.DefaultConfig()
	c.Mode, c.Dir, c.Role, c.FPS, c.Burst = camera.Dir, drivers.Path(dir), camera.Room, 30, 2
	c.Face.Models = "unused"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := face.NewPipeline(twoFaces{}, face.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	src, err := facecam.OpenWith(context.Background(), c, drivers.Env{Name: "room", Evidence: fullStore{}}, p)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rds, err := src.(drivers.Capturer).Capture(context.Background())
	if err != nil {
		t.Fatalf("capture with the evidence store full: %v, want the headcount without photos", err)
	}
	if len(rds) != 2 || len(rds[0].Evidence) != 0 || len(rds[1].Evidence) != 0 {
		t.Fatalf("readings: got %d (evidence %v), want 2 without photos", len(rds), rds)
	}
	if h := src.(drivers.HealthReporter).Health(); h.State != drivers.StateDegraded || h.LastErr == "" {
		t.Errorf("health: got %+v, want degraded with the refusal as its last error", h)
	}
}
