//go:build !cgo

package dlib

import (
	"errors"

	"github.com/kaoqin/kaoqin/drivers/face"
)

// ErrNoDlib is what a build without cgo answers: it has no face recognition.
var ErrNoDlib = errors.New("dlib: this build has no face recognition (built without cgo, as the ARM builds of make cross are); build with cgo on the box (make build)")

// NewPipeline in a build without cgo: always ErrNoDlib, so that a camera source can import this
// package in every build and fail at Open with a sentence that says why.
func NewPipeline(cfg *face.Config) (*face.Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, ErrNoDlib
}
