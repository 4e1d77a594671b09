//go:build kaoqin_testclock

package clock

import "os"

// A binary built with the kaoqin_testclock tag, for the command-line tests only, takes the
// kernel's synchronised state from KAOQIN_TEST_CLOCK ("synced" or "unsynced") when it is set, so a
// test machine whose kernel never says synchronised (a container) runs the daemon as a box with
// NTP would. Release builds have no such switch.
func init() {
	switch os.Getenv("KAOQIN_TEST_CLOCK") {
	case "synced":
		kernelSynced = func() bool { return true }
	case "unsynced":
		kernelSynced = func() bool { return false }
	}
}
