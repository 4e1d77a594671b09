//go:build !cgo

package main

import "github.com/kaoqin/kaoqin/drivers"

func init() {
	drivers.RegisterMissing("camera", "face recognition needs dlib and cgo: build on the box with make build; make cross leaves it out")
}
