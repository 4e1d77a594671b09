//go:build cgo

package main

// The camera source (face recognition through dlib) needs cgo: make build has it.
import _ "github.com/kaoqin/kaoqin/drivers/facecam"
