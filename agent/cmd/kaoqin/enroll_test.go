package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

// kaoqin enroll finger against the emulated module, through the running daemon: the person is
// asked to place, lift and place again; the template the module made is recorded as an enrolment
// event, and is the emulator's template of that finger.
func TestEnrollFingerThroughTheDaemon(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "zfm0")
	module := emu.New(emu.Config{})
	if err := module.Start(link); err != nil {
		t.Fatal(err)
	}
	defer module.Close()

	cfgPath := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfgPath, []byte(`device = "box-1"
institution = "0001"
state_dir = "state"
socket = "kaoqin.sock"
[[source]]
name = "door-finger"
kind = "zfm"
path = "zfm0"
[uplink]
central_key = "central.pub"
`), 0o644)
	if r := cli(t, "keygen", "--out", filepath.Join(dir, "state", "keys")); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	if r := cli(t, "roster", "import", "--config", cfgPath, signedBundle(t, dir, "box-1", demo.Roster(time.Now(), 3, 1))); r.code != 0 {
		t.Fatalf("roster import: %+v", r)
	}

	daemon, logs := runDaemon(t, cfgPath)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The module holds the roster's three templates once the daemon has synced it.
	deadline := time.Now().Add(20 * time.Second)
	for len(module.Library()) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("module library after start: %d templates, want the roster's 3", len(module.Library()))
		}
		time.Sleep(50 * time.Millisecond)
	}

	finger := "T003/left-index"
	// A wrong ID number typed: refused, nothing captured.
	if r := cliEnv(t, []string{"KAOQIN_SECRET=" + demo.RegistrarSecret}, "enroll", "finger", "--config", cfgPath, "--operator", demo.Registrar,
		"--trainee", "T003", "--id-number", demo.IDNumber(2), "--finger", "left-index"); r.code != 1 || !strings.Contains(r.stderr, "identity_check_failed") {
		t.Fatalf("enrol with another's ID number: exit %d %q; want exit 1, identity_check_failed", r.code, r.stderr)
	}
	enroll := exec.CommandContext(ctx, kaoqin, "enroll", "finger", "--config", cfgPath, "--operator", demo.Registrar, "--trainee", "T003",
		"--id-number", demo.IDNumber(3), "--finger", "left-index")
	enroll.Env = append(os.Environ(), "KAOQIN_SECRET="+demo.RegistrarSecret)
	out, _ := enroll.StdoutPipe()
	if err := enroll.Start(); err != nil {
		t.Fatal(err)
	}
	var asked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		asked = append(asked, line)
		switch {
		case strings.HasPrefix(line, "place"):
			module.Place(finger)
		case strings.HasPrefix(line, "lift"):
			module.Lift()
		}
	}
	if err := enroll.Wait(); err != nil {
		t.Fatalf("enroll: %v after %q", err, asked)
	}
	module.Lift()
	last := asked[len(asked)-1]
	if !strings.Contains(last, "enrolled T003 (left-index)") || !strings.Contains(strings.Join(asked, "|"), "place the same finger again") {
		t.Fatalf("enroll output %q", asked)
	}

	daemon.Process.Signal(os.Interrupt)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon: %v\n%s", err, logs.String())
	}
	st, err := store.OpenReadOnly(filepath.Join(dir, "state", "kaoqin.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got *ledger.Event
	st.Scan(1, func(seq uint64, r ledger.Record) error {
		if e, err := r.Event(); err == nil && e.Kind == ledger.Enrollment {
			got = &e
		}
		return nil
	})
	if got == nil {
		t.Fatal("no enrolment event in the ledger")
	}
	if f, ok := emu.FingerOf(got.Data); got.Trainee != "T003" || got.Detail != "left-index" || !ok || f != finger {
		t.Errorf("enrolment event: trainee %s detail %s, template of %q (%v); want T003, left-index, the template of %s", got.Trainee, got.Detail, f, ok, finger)
	}
}
