package face

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/kaoqin/kaoqin/drivers"
)

// DatasetFormat is the format tag of a face-template dataset file.
const DatasetFormat = "kaoqin-face-templates/1"

// Dataset is the face-template file that `kaoqin face enroll` writes and the central system signs
// and sends to the boxes: for each trainee, one descriptor per enrolment photo, made by Model.
//
//	{"format": "kaoqin-face-templates/1",
//	 "model": {"name": "dlib_face_recognition_resnet_model_v1", "sha256": "5553..."},
//	 "trainees": [{"trainee": "T001", "descriptors": [{"d": "<base64 of 128 little-endian float32>",
//	               "photo": "<sha256 of the photo>", "jitter": 20}]}]}
type Dataset struct {
	Format   string         `json:"format"`
	Model    Model          `json:"model"`
	Trainees []TraineeFaces `json:"trainees"`
}

// TraineeFaces is one trainee's enrolment.
type TraineeFaces struct {
	Trainee     string     `json:"trainee"`
	Descriptors []Enrolled `json:"descriptors"`
}

// Enrolled is one descriptor of an enrolment photo.
type Enrolled struct {
	D      Descriptor `json:"d"`
	Photo  string     `json:"photo,omitempty"` // hex SHA-256 of the photo it was made from
	Jitter int        `json:"jitter,omitempty"`
}

// MarshalText writes a descriptor as base64 of 128 little-endian float32 (512 bytes).
func (d Descriptor) MarshalText() ([]byte, error) {
	return []byte(base64.StdEncoding.EncodeToString(d.bytes())), nil
}

// UnmarshalText reads a descriptor written by MarshalText.
func (d *Descriptor) UnmarshalText(b []byte) error {
	raw, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("face: descriptor: %w", err)
	}
	return d.setBytes(raw)
}

func (d *Descriptor) bytes() []byte {
	b := make([]byte, 4*len(d))
	for i, v := range d {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func (d *Descriptor) setBytes(raw []byte) error {
	if len(raw) != 4*len(d) {
		return fmt.Errorf("face: descriptor: %d bytes, want %d", len(raw), 4*len(d))
	}
	for i := range d {
		v := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 10 {
			return fmt.Errorf("face: descriptor: component %d is %v, not a descriptor's value", i, v)
		}
		d[i] = v
	}
	return nil
}

// ParseDataset decodes and checks a dataset file: its format, a model named, every trainee
// named once with at least one descriptor. It does not compare the model with the box's: Gallery
// does.
func ParseDataset(b []byte) (*Dataset, error) {
	var ds Dataset
	if err := json.Unmarshal(b, &ds); err != nil {
		return nil, fmt.Errorf("face: templates: %w", err)
	}
	if ds.Format != DatasetFormat {
		return nil, fmt.Errorf("face: templates: format %q, want %q", ds.Format, DatasetFormat)
	}
	if ds.Model.Name == "" || !isHexSHA256(ds.Model.SHA256) {
		return nil, fmt.Errorf("face: templates: the model's name and sha256 are required (got %q, %q)", ds.Model.Name, ds.Model.SHA256)
	}
	seen := map[string]bool{}
	for i, t := range ds.Trainees {
		if t.Trainee == "" {
			return nil, fmt.Errorf("face: templates: trainee %d has no ID", i)
		}
		if seen[t.Trainee] {
			return nil, fmt.Errorf("face: templates: trainee %q appears twice", t.Trainee)
		}
		seen[t.Trainee] = true
		if len(t.Descriptors) == 0 {
			return nil, fmt.Errorf("face: templates: trainee %q has no descriptor", t.Trainee)
		}
	}
	return &ds, nil
}

// Put adds a trainee's enrolment, replacing any earlier one of the same trainee.
func (ds *Dataset) Put(t TraineeFaces) {
	i := slices.IndexFunc(ds.Trainees, func(x TraineeFaces) bool { return x.Trainee == t.Trainee })
	if i >= 0 {
		ds.Trainees[i] = t
		return
	}
	ds.Trainees = append(ds.Trainees, t)
}

// Marshal encodes the dataset as indented JSON.
func (ds *Dataset) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(ds, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Templates turns the dataset into the roster's templates (what the central system sends and the
// agent hands to SyncTemplates): one drivers.Template of kind FaceTemplate per descriptor, whose
// Data carries the model's SHA-256 with the descriptor (EncodeTemplate).
func (ds *Dataset) Templates() ([]drivers.Template, error) {
	sum, err := hex.DecodeString(ds.Model.SHA256)
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("face: templates: model sha256 %q is not 64 hex digits", ds.Model.SHA256)
	}
	var out []drivers.Template
	for _, t := range ds.Trainees {
		for _, e := range t.Descriptors {
			out = append(out, drivers.Template{Trainee: t.Trainee, Kind: drivers.FaceTemplate, Data: EncodeTemplate([32]byte(sum), &e.D)})
		}
	}
	return out, nil
}

// templateMagic starts a face template's Data.
const templateMagic = "KQF1"

// TemplateSize is the length of a face template's Data: "KQF1", the model's SHA-256, the
// descriptor as 128 little-endian float32.
const TemplateSize = len(templateMagic) + 32 + 512

// EncodeTemplate makes a face template's Data: the model's SHA-256 travels with every descriptor,
// so a box refuses a descriptor that another model made.
func EncodeTemplate(model [32]byte, d *Descriptor) []byte {
	b := make([]byte, 0, TemplateSize)
	b = append(b, templateMagic...)
	b = append(b, model[:]...)
	return append(b, d.bytes()...)
}

// DecodeTemplate reads a face template's Data made by EncodeTemplate.
func DecodeTemplate(data []byte) (model [32]byte, d Descriptor, err error) {
	if len(data) != TemplateSize || string(data[:len(templateMagic)]) != templateMagic {
		return model, d, fmt.Errorf("face: template: %d bytes, want %d starting %q", len(data), TemplateSize, templateMagic)
	}
	copy(model[:], data[len(templateMagic):])
	err = d.setBytes(data[len(templateMagic)+32:])
	return model, d, err
}

func isHexSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && s == strings.ToLower(s)
}
