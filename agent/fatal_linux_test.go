package agent_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/testkit"
)

// A commit that fails makes Run return an error wrapping store.ErrFatal, with every source
// stopped, and the ledger file stays intact. The failure is real: RLIMIT_FSIZE makes the kernel
// refuse (EFBIG) every write to the database file beyond its first two pages, as a dead disk
// would refuse them, while scans are queued behind the decision loop.
//
// Not parallel: the limit is the whole process's.
func TestCommitFailureStopsTheDaemon(t *testing.T) {
	h := start(t, options{roster: demoRoster(4)})
	if ev := h.touch(demo.Finger("T001")); ev.Kind != ledger.SignIn {
		t.Fatalf("touch before the failure: got %s, want sign_in", kinds([]ledger.Event{ev}))
	}
	base := h.head()

	// A burst of scans, recorded one fsync at a time: the readings queue up.
	const n = 400
	var burst []byte
	for i := 1; i <= n; i++ {
		burst = fmt.Appendf(burst, "SD2026-F%05d\r\n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go h.qr.Write(ctx, burst) // ends with the emulator when the daemon has stopped reading
	// The queue holds 64 readings; one more waits in the scanner's goroutine, one is being decided.
	full := testkit.WaitFor(t, func() bool {
		s := h.status()
		return s.Sources[qr].Readings >= s.Head-base+64
	}, 10*time.Second)
	if !full {
		t.Logf("the readings never queued up; the disk fails under a manual sign-in instead")
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 2 * 4096
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	if !full {
		_, err := h.client.SignIn(ctx, api.SignInRequest{Trainee: "T002", Operator: "王老师", Secret: demo.TeacherSecret, Reason: "test"})
		if err == nil {
			t.Errorf("manual sign-in on a failed disk: got recorded, want an error")
		}
	}

	var runErr error
	select {
	case runErr = <-h.done:
		h.stopped, h.runErr = true, runErr
	case <-time.After(20 * time.Second):
		restore()
		t.Fatalf("Run: still running 20s after its disk failed, want it returned with store.ErrFatal")
	}
	restore()
	t.Logf("Run returned: %v", runErr)
	if !errors.Is(runErr, store.ErrFatal) {
		t.Fatalf("Run after a failed commit: got %v, want an error wrapping store.ErrFatal", runErr)
	}
	// Run owns its sources: none may still hold a device (or a reading) once it returned.
	if !testkit.WaitFor(t, func() bool { return !strings.Contains(goroutines(), "agent.(*Agent).runSource") }, 3*time.Second) {
		t.Errorf("after Run returned: got source goroutines still running, want none:\n%s", sourceStacks())
	}

	evs, _ := h.ledgerFile() // verifies the chain
	if uint64(len(evs)) < base {
		t.Errorf("ledger file after the failure: got %d events, want at least the %d recorded before", len(evs), base)
	}
}

func goroutines() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// sourceStacks returns the stacks of the goroutines running a source.
func sourceStacks() string {
	var out []string
	for _, g := range strings.Split(goroutines(), "\n\n") {
		if strings.Contains(g, "agent.(*Agent).runSource") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
