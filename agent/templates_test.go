package agent_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/face"
)

// A trainee's face descriptors in the roster reach the cameras as face templates that carry the
// model's SHA-256, so a camera refuses descriptors of another model.
func TestTemplatesCarryFaces(t *testing.T) {
	r := demo.Roster(time.Now(), 3, 1)
	desc := make([]byte, 512)
	for i := 0; i < 128; i++ {
		v := math.Float32bits(float32(i) / 1000)
		desc[4*i], desc[4*i+1], desc[4*i+2], desc[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	sum := strings.Repeat("5a", 32)
	r.Trainees[1].Faces = []roster.Face{{Model: "dlib_face_recognition_resnet_model_v1", ModelSHA256: sum, Descriptor: desc}}
	x, err := roster.Build(r, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var faces []drivers.Template
	for _, tpl := range agent.Templates(x) {
		if tpl.Kind == drivers.FaceTemplate {
			faces = append(faces, tpl)
		}
	}
	if len(faces) != 1 || faces[0].Trainee != r.Trainees[1].ID {
		t.Fatalf("face templates: got %+v, want one of %s", faces, r.Trainees[1].ID)
	}
	model, d, err := face.DecodeTemplate(faces[0].Data)
	if err != nil || model[0] != 0x5a || d[7] != float32(7)/1000 {
		t.Errorf("template: got model %x descriptor[7] %v, %v, want the roster's sum and descriptor", model[:4], d[7], err)
	}
}
