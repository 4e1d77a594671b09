package agent_test

// The drivers the binary selects (agent/cmd/kaoqin/drivers.go), so that the tests load the same
// configs the daemon does.
import (
	_ "github.com/kaoqin/kaoqin/drivers/facecam"
	_ "github.com/kaoqin/kaoqin/drivers/hikisapi"
	_ "github.com/kaoqin/kaoqin/drivers/lineterm"
	_ "github.com/kaoqin/kaoqin/drivers/zfm"
	_ "github.com/kaoqin/kaoqin/drivers/zkpush"
)
