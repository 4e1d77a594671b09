package main

// The drivers this binary has: each registers its [[source]] kind (drivers.Register). A driver
// that needs cgo is selected in a file of its own behind a build tag, with a twin that records
// which build has it (drivers.RegisterMissing), so `kaoqin run --check` can say so.
import (
	_ "github.com/kaoqin/kaoqin/drivers/hikisapi"
	_ "github.com/kaoqin/kaoqin/drivers/lineterm"
	_ "github.com/kaoqin/kaoqin/drivers/zfm"
	_ "github.com/kaoqin/kaoqin/drivers/zkpush"
)
