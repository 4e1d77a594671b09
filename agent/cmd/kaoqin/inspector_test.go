package main

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	daemon := exec.CommandContext(ctx, kaoqin, "run", "--config", cfgPath)
	var logs bytes.Buffer
	daemon.Stderr = &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer daemon.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for cli(t, "status", "--config", cfgPath).code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	editZip(t, bundle, edited, "events.csv", func(b []byte) []byte { return bytes.Replace(b, []byte("学员02"), []byte("学员09"), 1) })
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

// editZip copies the zip at from to to, with the file name changed by edit.
func editZip(t *testing.T, from, to, name string, edit func([]byte) []byte) {
	t.Helper()
	zr, err := zip.OpenReader(from)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := zip.NewWriter(out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == name {
			b = edit(b)
		}
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
