package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// signedBundle makes the central key in dir (once) and the bundle of r for device, the way an
// administrator does it: kaoqin keygen --name central, kaoqin ingest publish --out. It returns
// the bundle's path; the central public key is dir/central.pub.
func signedBundle(t *testing.T, dir, device string, r *roster.Roster) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "central.key")); err != nil {
		if res := cli(t, "keygen", "--out", dir, "--name", "central"); res.code != 0 {
			t.Fatalf("keygen central: %+v", res)
		}
	}
	b, _ := json.Marshal(r)
	src := filepath.Join(dir, "roster.json")
	os.WriteFile(src, b, 0o644)
	out := filepath.Join(dir, "roster.bundle")
	if res := cli(t, "ingest", "publish", "--dataset", "roster", "--central-key", filepath.Join(dir, "central.key"),
		"--out", out, "--device", device, src); res.code != 0 || !strings.Contains(res.stdout, "signed bundle") {
		t.Fatalf("ingest publish --out: %+v", res)
	}
	return out
}

// cliEnv runs kaoqin with more environment (an operator's secret).
func cliEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(kaoqin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stdout: o.String(), stderr: e.String()}
}

const boxConfig = "device = \"box-1\"\ninstitution = \"0001\"\nstate_dir = \"state\"\nsocket = \"kaoqin.sock\"\n"

// The attacks on a box whose daemon is stopped, from the command line: every one refused with
// exit 1 and a reason, and recorded in the ledger.
func TestOfflineAttacksFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfgPath, []byte(boxConfig+"[uplink]\ncentral_key = \"central.pub\"\n"), 0o644)
	if r := cli(t, "keygen", "--out", filepath.Join(dir, "state", "keys")); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	if r := cli(t, "keygen", "--out", dir, "--name", "central"); r.code != 0 {
		t.Fatalf("keygen central: %+v", r)
	}
	now := time.Now()
	plain := filepath.Join(dir, "plain.json")
	b, _ := json.Marshal(demo.Roster(now, 3, 1))
	os.WriteFile(plain, b, 0o644)
	// The unsigned import.
	if r := cli(t, "roster", "import", "--config", cfgPath, plain); r.code != 1 || !strings.Contains(r.stderr, "dataset_unsigned") {
		t.Fatalf("unsigned import: exit %d %q; want exit 1, dataset_unsigned", r.code, r.stderr)
	}
	// A roster that is nothing but a huge version, signed by the central key.
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)
	os.WriteFile(filepath.Join(dir, "nothing.json"), []byte(`{"version":9999999999}`), 0o644)
	if r := cli(t, "ingest", "publish", "--dataset", "roster", "--central-key", filepath.Join(dir, "central.key"),
		"--out", filepath.Join(empty, "b"), "--device", "box-1", filepath.Join(dir, "nothing.json")); r.code != 0 {
		t.Fatalf("publish --out of the empty roster: %+v", r)
	}
	if r := cli(t, "roster", "import", "--config", cfgPath, filepath.Join(empty, "b")); r.code != 1 || !strings.Contains(r.stderr, "dataset_empties_room") {
		t.Fatalf("empty signed roster: exit %d %q; want exit 1, dataset_empties_room", r.code, r.stderr)
	}
	// The real roster, signed: the first one needs no operator (there are no accounts yet).
	bundle := signedBundle(t, dir, "box-1", demo.Roster(now, 3, 1))
	if r := cli(t, "roster", "import", "--config", cfgPath, bundle); r.code != 0 || !strings.Contains(r.stdout, "roster version 1 active") {
		t.Fatalf("signed import: %+v", r)
	}
	// The next one needs an administrator: none, a wrong PIN, a teacher.
	bundle = signedBundle(t, dir, "box-1", demo.Roster(now, 3, 2))
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, nil, "no_operator"},
		{[]string{"KAOQIN_SECRET=000000"}, []string{"--operator", demo.Admin}, "bad_secret"},
		{[]string{"KAOQIN_SECRET=" + demo.TeacherSecret}, []string{"--operator", demo.Teacher}, "role_lacks_right"},
	} {
		args := append([]string{"roster", "import", "--config", cfgPath}, c.args...)
		if r := cliEnv(t, c.env, append(args, bundle)...); r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("import %v: exit %d %q; want exit 1, %s", c.args, r.code, r.stderr, c.want)
		}
	}
	// The secret typed on standard input works as well as the environment.
	cmd := exec.CommandContext(context.Background(), kaoqin, "roster", "import", "--config", cfgPath, "--operator", demo.Admin, bundle)
	cmd.Stdin = strings.NewReader(demo.AdminSecret + "\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "roster version 2 active") {
		t.Fatalf("import with the secret on stdin: %v %s", err, out)
	}
	// Every attempt is in the ledger.
	r := cli(t, "log", "--config", cfgPath)
	for _, want := range []string{"dataset_unsigned", "dataset_empties_room", "no_operator", "bad_secret", "role_lacks_right", "operator " + demo.Admin} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("log lacks %q:\n%s", want, r.stdout)
		}
	}
	// cert validate: a year far from the box's date is refused with the reason.
	if r := cli(t, "cert", "validate", "37010200019900001A"); r.code != 1 || !strings.Contains(r.stderr, "year 2099") {
		t.Errorf("cert validate of 2099: exit %d %q; want exit 1 naming the year", r.code, r.stderr)
	}
}
