//go:build cgo

package facecam_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/camera"
	"github.com/kaoqin/kaoqin/drivers/face"
	"github.com/kaoqin/kaoqin/drivers/face/dlib"
	"github.com/kaoqin/kaoqin/drivers/facecam"
)

// The camera source with the real dlib on the shared photo set, replayed from a folder (mode dir)
// of links to the shared photos.

// enrolled are the class: six trainees, each enrolled from one shared photo. None of them is in
// group/pristin.jpg.
var enrolled = map[string]string{
	"bona": "enroll/bona.jpg", "chaeyeon": "enroll/chaeyeon.jpg", "jimin": "enroll/jimin.jpg",
	"tzuyu": "enroll/tzuyu.jpg", "luda": "enroll/luda.jpg", "eunseo": "enroll/eunseo2.jpg",
}

var (
	models, testdata string
	classOnce        sync.Once
	class            []drivers.Template
	classErr         error
)

func TestMain(m *testing.M) {
	var err error
	if models, err = testkit.FaceModels(); err == nil {
		testdata, err = testkit.Testdata()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// photos makes a folder of links to shared photos (the photos are never copied).
func photos(t *testing.T, rels ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, rel := range rels {
		src := filepath.Join(testdata, "faces", rel)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("%s: %v (the shared photo set; set KAOQIN_TESTDATA)", rel, err)
		}
		if err := os.Symlink(src, filepath.Join(dir, fmt.Sprintf("%02d.jpg", i))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// templates enrols the class once per test binary, as the roster carries it.
func templates(t *testing.T) []drivers.Template {
	t.Helper()
	classOnce.Do(func() {
		rec, err := dlib.Shared(models)
		if err != nil {
			classErr = err
			return
		}
		ds := &face.Dataset{Format: face.DatasetFormat, Model: dlib.Model}
		for id, rel := range enrolled {
			b, err := os.ReadFile(filepath.Join(testdata, "faces", rel))
			if err != nil {
				classErr = err
				return
			}
			tf, err := face.Enroll(rec, face.DefaultPolicy(), id, []face.Photo{{Name: rel, JPEG: b}}, 0)
			if err != nil {
				classErr = fmt.Errorf("%s: %w", rel, err)
				return
			}
			ds.Put(tf)
		}
		class, classErr = ds.Templates()
	})
	if classErr != nil {
		t.Fatalf("enrol the class: %v", classErr)
	}
	return class
}

// memStore is an evidence store in memory that checks what it is given.
type memStore struct {
	mu     sync.Mutex
	photos map[string][]byte
}

func (m *memStore) PutEvidence(kind drivers.EvidenceKind, b []byte) (drivers.EvidenceRef, error) {
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return drivers.EvidenceRef{}, fmt.Errorf("memstore: %s is not a JPEG", kind)
	}
	sum := sha256.Sum256(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.photos == nil {
		m.photos = map[string][]byte{}
	}
	m.photos[hex.EncodeToString(sum[:])] = b
	return drivers.EvidenceRef{SHA256: hex.EncodeToString(sum[:]), Kind: kind, Size: int64(len(b))}, nil
}

func config(t *testing.T, dir string, role camera.Role) *facecam.Config {
	t.Helper()
	c := facecam.DefaultConfig()
	c.Mode, c.Dir, c.Role, c.FPS = camera.Dir, drivers.Path(dir), role, 30
	c.Face.Models = drivers.Path(models)
	c.Burst = 2
	if err := c.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

// A room camera's spot check on the group photo: every one of the ten faces is counted, each
// reading carries its crop and the shared frame, and nobody of the class (none of them is in the
// photo) is named.
func TestRoomSpotCheck(t *testing.T) {
	store := &memStore{}
	ctx := context.Background()
	src, err := config(t, photos(t, "group/pristin.jpg"), camera.Room).Open(ctx, drivers.Env{Name: "room", Evidence: store})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if rep, err := src.(drivers.TemplateSyncer).SyncTemplates(ctx, templates(t)); err != nil || !strings.Contains(rep, "6 trainees") {
		t.Fatalf("template sync: got %q, %v, want 6 trainees", rep, err)
	}
	c, ok := src.(drivers.Capturer)
	if !ok {
		t.Fatalf("a room camera's source %T is no drivers.Capturer", src)
	}
	rds, err := c.Capture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rds) != 10 {
		t.Fatalf("headcount: got %d readings, want the 10 faces of group/pristin.jpg", len(rds))
	}
	frames := map[string]bool{}
	for i, rd := range rds {
		if rd.Subject != "" {
			t.Errorf("face %d: identified as %s, who is not in the photo (%s)", i, rd.Subject, rd.Detail)
		}
		if rd.Intent != drivers.Sighting || rd.Method != drivers.Face || rd.At.IsZero() {
			t.Errorf("face %d: got intent %q method %q at %v, want a dated face sighting", i, rd.Intent, rd.Method, rd.At)
		}
		if len(rd.Evidence) != 2 || rd.Evidence[0].Kind != drivers.Crop || rd.Evidence[1].Kind != drivers.Frame {
			t.Fatalf("face %d: evidence %+v, want its crop and the frame", i, rd.Evidence)
		}
		frames[rd.Evidence[1].SHA256] = true
	}
	if len(frames) != 1 || len(store.photos) != 11 {
		t.Errorf("evidence: got %d frames named, %d photos stored, want 1 frame and 10 crops", len(frames), len(store.photos))
	}
	h := src.(drivers.HealthReporter).Health()
	if h.Info["spot_checks"] != "1" || h.Info["role"] != "room" {
		t.Errorf("health: got %+v, want one spot check of a room camera", h)
	}

	// A room camera signs nobody in: Next only waits.
	nctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if rd, err := src.Next(nctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("room Next: got %+v, %v, want nothing until ctx ends", rd, err)
	}
}

// A door camera pushes frames through the stream: an enrolled trainee's face (the enrolment photo
// itself, at the door) seen in k of n frames is one reading naming them; a stranger's face is one
// refusal, naming nobody.
func TestDoorStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct{ photo, want string }{{"enroll/bona.jpg", "bona"}, {"unknown/joy.jpg", ""}} {
		store := &memStore{}
		src, err := config(t, photos(t, tc.photo), camera.Door).Open(ctx, drivers.Env{Name: "door", Evidence: store})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := src.(drivers.Capturer); ok {
			t.Errorf("a door camera's source %T takes spot checks: its frames are the door stream's", src)
		}
		if _, err := src.(drivers.TemplateSyncer).SyncTemplates(ctx, templates(t)); err != nil {
			t.Fatal(err)
		}
		rd, err := src.Next(ctx)
		src.Close()
		if err != nil {
			t.Fatalf("%s: Next: %v", tc.photo, err)
		}
		if rd.Subject != tc.want {
			t.Errorf("%s: got %q (%s), want %q", tc.photo, rd.Subject, rd.Detail, tc.want)
		}
		if len(rd.Evidence) != 2 || rd.Intent != drivers.Auto {
			t.Errorf("%s: got evidence %d intent %q, want crop and frame, intent auto", tc.photo, len(rd.Evidence), rd.Intent)
		}
		t.Logf("%s: %s %s", tc.photo, rd.Subject, rd.Detail)
	}
}

// The config: the camera's keys, the face table's (as face.KEY) and the burst, every problem at once.
func TestConfigProblems(t *testing.T) {
	c := facecam.DefaultConfig()
	c.Burst = 0
	c.Face.Threshold = 5
	var keys []string
	for _, fe := range drivers.FieldErrors(c.Validate()) {
		keys = append(keys, fe.Key)
	}
	got := strings.Join(keys, " ")
	for _, want := range []string{"mode", "face.models", "face.threshold", "burst"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("problems: got keys %q, want %s among them", got, want)
		}
	}
}
