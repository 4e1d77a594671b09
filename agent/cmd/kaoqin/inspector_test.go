package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/testkit"
)

// The inspector's verbs against a running daemon: a one-time code, the class-hour report and the
// sign-in sheet, the bundle (made through the daemon, checked offline, refused after an edit),
// and, with the daemon stopped, the CSV export with names and the inspector accounts.
func TestInspectorVerbs(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfgPath, []byte("device = \"box-1\"\ninstitution = \"0001\"\nstate_dir = \"state\"\nsocket = \"kaoqin.sock\"\nlisten = \"127.0.0.1:0\"\n\n[uplink]\ncentral_key = \"central.pub\"\n"), 0o644)
	if r := cli(t, "keygen", "--out", filepath.Join(dir, "state", "keys")); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	rs := demo.Roster(time.Now(), 4, 1)
	session := rs.Sessions[0].ID
	rosterFile := signedBundle(t, dir, "box-1", rs)
	if r := cli(t, "roster", "import", "--config", cfgPath, rosterFile); r.code != 0 {
		t.Fatalf("roster import: %+v", r)
	}
	daemon, logs := runDaemon(t, cfgPath)
	if r := cliEnv(t, []string{"KAOQIN_SECRET=" + demo.TeacherSecret}, "signin", "--config", cfgPath, "--trainee", "T002", "--operator", demo.Teacher, "--reason", "reader broken"); r.code != 0 {
		t.Fatalf("signin: %+v", r)
	}

	r := cli(t, "inspector", "code", "--config", cfgPath)
	if r.code != 0 || !strings.Contains(r.stdout, "一次性口令 one-time code: ") {
		t.Fatalf("inspector code: %+v", r)
	}
	r = cli(t, "report", "hours", "--config", cfgPath)
	if r.code != 0 || !strings.Contains(r.stdout, "学员02") || !strings.Contains(r.stdout, "P-ELEC") || !strings.Contains(r.stdout, "规定") {
		t.Fatalf("report hours: %+v", r)
	}
	r = cli(t, "report", "sheet", "--config", cfgPath, "--session", session, "--lang", "en")
	if r.code != 0 || !strings.Contains(r.stdout, "sign-in sheet "+session) || !strings.Contains(r.stdout, "expected 3") || !strings.Contains(r.stdout, "manual entry") {
		t.Fatalf("report sheet: %+v", r)
	}
	full := demo.IDNumber(2)
	if strings.Contains(r.stdout, full) {
		t.Errorf("report sheet shows a full ID number:\n%s", r.stdout)
	}
	r = cli(t, "report", "sheet", "--config", cfgPath, "--session", session, "--csv")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "\ufeff") || !strings.Contains(r.stdout, "签到表") {
		t.Fatalf("report sheet --csv: %+v", r)
	}
	if r := cli(t, "report", "sheet", "--config", cfgPath, "--session", "nope"); r.code != 2 {
		t.Errorf("report sheet of an unknown session: exit %d, want 2: %+v", r.code, r)
	}

	bundle := filepath.Join(dir, "visit.zip")
	if r := cli(t, "export", "--config", cfgPath, "--bundle", bundle); r.code != 0 || !strings.Contains(r.stdout, "kaoqin verify --bundle") {
		t.Fatalf("export --bundle: %+v", r)
	}
	pub := filepath.Join(dir, "state", "keys", "device.pub")
	if r := cli(t, "verify", "--bundle", bundle, "--pubkey", pub); r.code != 0 || !strings.Contains(r.stdout, "完好") {
		t.Fatalf("verify --bundle: %+v", r)
	}
	edited := filepath.Join(dir, "edited.zip")
	testkit.EditZip(t, bundle, edited, "events.csv", func(b []byte) []byte { return bytes.Replace(b, []byte("学员02"), []byte("学员09"), 1) })
	if r := cli(t, "verify", "--bundle", edited, "--pubkey", pub, "--lang", "en"); r.code != 1 || !strings.Contains(r.stdout, "events.csv") || !strings.Contains(r.stderr, "NOT INTACT") {
		t.Fatalf("verify --bundle of an edited bundle: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, logs.String())
	}
	csvPath := filepath.Join(dir, "out.csv")
	if r := cli(t, "export", "--config", cfgPath, "--out", csvPath); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	csv, _ := os.ReadFile(csvPath)
	if !bytes.HasPrefix(csv, []byte("\ufeff")) || !bytes.Contains(csv, []byte("学员02")) || !bytes.Contains(csv, []byte("姓名 name")) {
		t.Errorf("export --format csv: want a BOM, the Chinese header and names:\n%s", csv)
	}

	cmd := exec.Command(kaoqin, "inspector", "hash")
	cmd.Stdin = strings.NewReader("a long password\n")
	hash, err := cmd.Output()
	if err != nil || !bytes.HasPrefix(hash, []byte("$argon2id$v=19$")) {
		t.Fatalf("inspector hash: %v %q", err, hash)
	}
	accts := filepath.Join(dir, "accounts.json")
	os.WriteFile(accts, []byte(`[{"name":"zhang","role":"inspector","hash":"`+strings.TrimSpace(string(hash))+`"}]`), 0o600)
	if r := cli(t, "inspector", "accounts", "--config", cfgPath, accts); r.code != 0 || !strings.Contains(r.stdout, "1 inspector accounts set") {
		t.Fatalf("inspector accounts: %+v", r)
	}
	os.WriteFile(accts, []byte(`[{"name":"li","role":"inspector","hash":"plaintext"}]`), 0o600)
	if r := cli(t, "inspector", "accounts", "--config", cfgPath, accts); r.code != 2 {
		t.Errorf("inspector accounts with a plain password: exit %d, want 2: %+v", r.code, r)
	}
}
