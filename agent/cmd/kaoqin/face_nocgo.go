//go:build !cgo

package main

import (
	"context"
	"errors"
	"flag"
	"io"
)

// cmdFace in a build without cgo: dlib is not in it.
func cmdFace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		_, err := io.WriteString(stdout, "Usage: kaoqin face enroll|identify ...\n\nThis build has no dlib (built without cgo): face enrolment and identification need the cgo build (make build).\n")
		if err != nil {
			return err
		}
		return flag.ErrHelp
	}
	return errors.New("face: this build has no dlib (built without cgo, as the ARM builds of make cross are); use the cgo build (make build)")
}
