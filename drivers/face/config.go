package face

import (
	"errors"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Config is the face part of a camera's [[source]] table, for a camera driver to embed: where the
// models are and the operating point. Zero values mean DefaultPolicy's; docs/face.md says why the
// defaults are what they are, and a changed threshold or margin changes the false-accept rate.
type Config struct {
	Models        drivers.Path     `toml:"models"` // folder of the dlib models (make deps: .cache/face-models)
	Threshold     float64          `toml:"threshold"`
	Margin        float64          `toml:"margin"`
	K             int              `toml:"k"` // K of the last N frames must agree
	N             int              `toml:"n"`
	Cooldown      drivers.Duration `toml:"cooldown"`
	MinFacePixels int              `toml:"min_face_pixels"`
	MinSharpness  float64          `toml:"min_sharpness"`
	MinChroma     float64          `toml:"min_chroma"`
}

// Policy is the operating point the config asks for, DefaultPolicy where a value is unset.
func (c *Config) Policy() Policy {
	p := DefaultPolicy()
	set := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&p.Threshold, c.Threshold)
	set(&p.Margin, c.Margin)
	set(&p.MinSharpness, c.MinSharpness)
	set(&p.MinChroma, c.MinChroma)
	if c.K != 0 {
		p.K = c.K
	}
	if c.N != 0 {
		p.N = c.N
	}
	if c.Cooldown != 0 {
		p.Cooldown = time.Duration(c.Cooldown)
	}
	if c.MinFacePixels != 0 {
		p.MinFacePixels = c.MinFacePixels
	}
	return p
}

// Validate checks the config without opening the models; every problem is a *drivers.FieldError.
func (c *Config) Validate() error {
	var errs []error
	if c.Models == "" {
		errs = append(errs, drivers.Field("models", "the folder of the dlib face models is required (make deps puts them in .cache/face-models)"))
	}
	if err := c.Policy().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
