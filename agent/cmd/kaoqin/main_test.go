package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// kaoqin is the binary under test, built once.
var kaoqin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kaoqin-bin-")
	if err != nil {
		panic(err)
	}
	kaoqin = filepath.Join(dir, "kaoqin")
	// kaoqin_testclock: the daemon takes the kernel's clock state from KAOQIN_TEST_CLOCK (set below),
	// so a test machine whose kernel never says synchronised runs it as a box with NTP would.
	out, err := exec.Command("go", "build", "-race", "-tags", "kaoqin_testclock", "-o", kaoqin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building kaoqin: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Setenv("KAOQIN_TEST_CLOCK", "synced")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(kaoqin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, o.String(), e.String()}
}

func TestUsageAndExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--help"}, 0, "Commands:"},
		{[]string{}, 2, "no command given"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"verify", "--help"}, 0, "-pubkey"},
		{[]string{"version", "--help"}, 0, "Usage: kaoqin version"},
		{[]string{"snapshot", "--help"}, 0, "-out"},
		{[]string{"emulate", "--help"}, 0, "kaoqin emulate roster"},
		{[]string{"ingest", "publish", "--help"}, 0, "-dataset"},
		{[]string{"ingest", "simulate", "--help"}, 0, "-devices"},
		{[]string{"ingest", "simulate", "--devices", "3"}, 2, "--device-keys is required"},
		{[]string{"verify", "--db", "x.db"}, 2, "--pubkey is required"},
		{[]string{"log", "--nonsense"}, 2, "flag provided but not defined"},
		{[]string{"signin", "--trainee", "T001"}, 2, "--trainee and --reason are required"},
		{[]string{"cert", "decode", "370102000126000001A"}, 1, "19 characters"},
		{[]string{"cert", "validate", "37010200012600001D"}, 1, "category"},
		{[]string{"cert", "validate", "37020000012600019A"}, 0, "valid"},
		{[]string{"cert", "validate", "37020000019900019A"}, 1, "year 2099"},
		{[]string{"export", "--format", "xml", "--out", "x"}, 2, "want csv or json"},
	} {
		r := cli(t, c.args...)
		if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.out) {
			t.Errorf("kaoqin %v: exit %d, output %q; want exit %d and %q", c.args, r.code, r.stdout+r.stderr, c.code, c.out)
		}
	}
}

func TestCertDecode(t *testing.T) {
	r := cli(t, "cert", "decode", "37010200012600001B")
	for _, want := range []string{"3701 济南 Jinan", "02 (county level)", "institution 0001", "year        2026", "sequence    00001", "B on-the-job"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cert decode output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestConfigErrorNamesFileLineKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	os.WriteFile(path, []byte("device = \"box-1\"\ninstitution = \"0001\"\n\n[checkin]\nsupress = \"2m\"\n"), 0o644)
	r := cli(t, "run", "--check", "--config", path)
	want := path + ":5: checkin.supress: unknown key"
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, want)
	}
	os.WriteFile(path, []byte("device = \"box-1\"\ninstitution = 1\n"), 0o644)
	r = cli(t, "run", "--check", "--config", path)
	if r.code != 2 || !strings.Contains(r.stderr, path+":2: institution") {
		t.Fatalf("institution as a number: exit %d, stderr %q; want exit 2 naming line 2", r.code, r.stderr)
	}
	// A valid file whose device key is missing passes LoadConfig but not run: --check says so.
	os.WriteFile(path, []byte("device = \"box-1\"\ninstitution = \"0001\"\nstate_dir = \"state\"\nsocket = \"k.sock\"\n"), 0o644)
	r = cli(t, "run", "--check", "--config", path)
	if r.code != 2 || !strings.Contains(r.stderr, "key: ") || !strings.Contains(r.stderr, "kaoqin keygen") {
		t.Fatalf("no device key: exit %d, stderr %q; want exit 2 naming the key and how to make one", r.code, r.stderr)
	}
	// A missing config file is a configuration error too.
	r = cli(t, "run", "--check", "--config", filepath.Join(dir, "nope.toml"))
	if r.code != 2 || !strings.Contains(r.stderr, "nope.toml") {
		t.Fatalf("missing config: exit %d, stderr %q; want exit 2 naming the file", r.code, r.stderr)
	}
}

// kaoqin status works with the daemon stopped: it reads the ledger file.
func TestStatusWithTheDaemonStopped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	os.WriteFile(path, []byte("device = \"box-1\"\ninstitution = \"0001\"\nstate_dir = \"state\"\nsocket = \"k.sock\"\n"), 0o644)
	if r := cli(t, "keygen", "--out", filepath.Join(dir, "state", "keys")); r.code != 0 {
		t.Fatalf("keygen: %d %s", r.code, r.stderr)
	}
	// A write with the daemon stopped creates the ledger (roster import is refused, cert next needs a roster).
	cli(t, "cert", "next", "--config", path, "--institution", "0001", "--category", "A", "--trainee", "T001", "--programme", "P")
	r := cli(t, "status", "--config", path)
	if r.code != 0 || !strings.Contains(r.stdout, "device box-1") || !strings.Contains(r.stdout, "not running") {
		t.Fatalf("status with the daemon stopped: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// kaoqin verify says intact for an untouched ledger, and for one byte flipped anywhere in a
// record on disk names that record's seq and exits 1.
func TestVerifyCatchesAFlippedByteOnDisk(t *testing.T) {
	dir := t.TempDir()
	_, pubPath, err := ledger.GenerateKeyFiles(dir, "device")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ledger.LoadPrivateKey(filepath.Join(dir, "device.key"))
	db := filepath.Join(dir, "kaoqin.db")
	st, err := store.Open(store.Config{Path: db, Device: "box-1", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		e := ledger.Event{Kind: ledger.SignIn, Trainee: fmt.Sprintf("TRAINEE-%03d", i), Time: ledger.Clock{Wall: time.Now()}}
		if _, err := st.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if r := cli(t, "verify", "--db", db, "--pubkey", pubPath); r.code != 0 || !strings.Contains(r.stdout, "intact") || !strings.Contains(r.stdout, "21 events") {
		t.Fatalf("untouched ledger: exit %d, %q %q; want exit 0 and intact, 21 events", r.code, r.stdout, r.stderr)
	}
	// bbolt writes copy-on-write: free pages may still hold old copies of the record, so flip
	// every copy; the live one is among them.
	raw, _ := os.ReadFile(db)
	flipped := 0
	for from := 0; ; {
		at := bytes.Index(raw[from:], []byte("TRAINEE-013"))
		if at < 0 {
			break
		}
		raw[from+at+8] ^= 0x01 // TRAINEE-013 -> TRAINEE-213: seq 14 (the epoch alarm is seq 1)
		flipped++
		from += at + 1
	}
	if flipped == 0 {
		t.Fatal("record not found in the file")
	}
	os.WriteFile(db, raw, 0o600)
	r := cli(t, "verify", "--db", db, "--pubkey", pubPath)
	if r.code != 1 || !strings.Contains(r.stderr, "first bad event is seq 14") {
		t.Fatalf("flipped byte: exit %d, stderr %q; want exit 1 naming seq 14", r.code, r.stderr)
	}
	other := filepath.Join(t.TempDir(), "other")
	_, otherPub, _ := ledger.GenerateKeyFiles(other, "device")
	if r := cli(t, "verify", "--db", db, "--pubkey", otherPub); r.code != 1 {
		t.Fatalf("wrong key: exit %d, want 1", r.code)
	}
}

// kaoqin verify on a file with a damaged page header, or cut in half, does not panic: it says
// the file is damaged and how many events still verify, and exits 1.
func TestVerifyOfADamagedFile(t *testing.T) {
	dir := t.TempDir()
	_, pubPath, err := ledger.GenerateKeyFiles(dir, "device")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ledger.LoadPrivateKey(filepath.Join(dir, "device.key"))
	db := filepath.Join(dir, "kaoqin.db")
	st, err := store.Open(store.Config{Path: db, Device: "box-1", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 60; i++ {
		if _, err := st.Append(ledger.Event{Kind: ledger.SignIn, Trainee: fmt.Sprintf("T%03d", i), Time: ledger.Clock{Wall: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	raw, _ := os.ReadFile(db)
	header := append([]byte(nil), raw...)
	header[2*4096+8] ^= 0xff
	cut := raw[:bytes.Index(raw, []byte(`"T030"`))] // cut in the middle of the events
	for name, b := range map[string][]byte{"page header": header, "cut": cut} {
		path := filepath.Join(t.TempDir(), "kaoqin.db")
		os.WriteFile(path, b, 0o600)
		r := cli(t, "verify", "--db", path, "--pubkey", pubPath)
		if r.code != 1 || !strings.Contains(r.stderr, "NOT INTACT") || !strings.Contains(r.stderr, "events verify") || strings.Contains(r.stderr, "goroutine") {
			t.Errorf("%s: exit %d, stderr %q; want exit 1, not intact, saying how many events verify", name, r.code, r.stderr)
		}
	}
}

// The daemon from the command line: started with a config, a manual sign-in through its socket
// shows in `kaoqin log` (through the daemon, then from the file once it stopped), SIGTERM stops it
// with exit 0, and the ledger verifies.
func TestDaemonManualSignInAndLog(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfgPath, []byte(boxConfig+"[uplink]\ncentral_key = \"central.pub\"\n"), 0o644)
	if r := cli(t, "keygen", "--out", filepath.Join(dir, "state", "keys")); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	rosterFile := signedBundle(t, dir, "box-1", demo.Roster(time.Now(), 3, 1))
	if r := cli(t, "roster", "import", "--config", cfgPath, rosterFile); r.code != 0 {
		t.Fatalf("offline roster import: %+v", r)
	}

	daemon, logs := runDaemon(t, cfgPath)

	teacher := []string{"KAOQIN_SECRET=" + demo.TeacherSecret}
	r := cliEnv(t, teacher, "signin", "--config", cfgPath, "--trainee", "T002", "--operator", "王老师", "--reason", "finger too dry")
	if r.code != 0 || !strings.Contains(r.stdout, "sign_in T002") || !strings.Contains(r.stdout, "manual_override") {
		t.Fatalf("signin: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = cliEnv(t, teacher, "signin", "--config", cfgPath, "--trainee", "NOBODY", "--operator", "王老师", "--reason", "test")
	if r.code != 1 || !strings.Contains(r.stderr, "unknown_trainee") || !strings.Contains(r.stderr, "非名册学员") {
		t.Fatalf("signin of an unknown trainee: exit %d %q; want exit 1, refused unknown_trainee with its label", r.code, r.stderr)
	}
	// An override without an operator: refused, exit 1, recorded.
	r = cli(t, "signin", "--config", cfgPath, "--trainee", "T003", "--reason", "test")
	if r.code != 1 || !strings.Contains(r.stderr, "no_operator") || !strings.Contains(r.stderr, "recorded as seq") {
		t.Fatalf("signin without an operator: exit %d %q; want exit 1, no_operator, recorded", r.code, r.stderr)
	}
	full := demo.IDNumber(2)
	checkLog := func(how string) {
		r := cli(t, "log", "--config", cfgPath, "--trainee", "T002")
		if r.code != 0 || !strings.Contains(r.stdout, "sign_in") || !strings.Contains(r.stdout, "operator 王老师") || !strings.Contains(r.stdout, "1 events") {
			t.Fatalf("log %s: exit %d\n%s%s", how, r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout, full) || !strings.Contains(r.stdout, full[:6]+"********"+full[14:]) {
			t.Fatalf("log %s must show the ID number masked:\n%s", how, r.stdout)
		}
	}
	checkLog("through the daemon")
	if r := cli(t, "log", "--config", cfgPath, "--kind", "refusal", "--json"); r.code != 0 || !regexp.MustCompile(`"reason":"unknown_trainee"`).MatchString(r.stdout) {
		t.Fatalf("log --kind refusal --json: %q %q", r.stdout, r.stderr)
	}

	pub := filepath.Join(dir, "state", "keys", "device.pub")
	if r := cli(t, "verify", "--config", cfgPath, "--pubkey", pub); r.code != 0 || !strings.Contains(r.stdout, "intact") || !strings.Contains(r.stderr, "snapshot of the running daemon") {
		t.Fatalf("verify while the daemon runs: exit %d %q %q; want intact, from a snapshot through the daemon", r.code, r.stdout, r.stderr)
	}
	snap := filepath.Join(dir, "backup.db")
	if r := cli(t, "snapshot", "--config", cfgPath, "--out", snap); r.code != 0 {
		t.Fatalf("snapshot: %+v", r)
	}
	if r := cli(t, "verify", "--db", snap, "--pubkey", pub); r.code != 0 || !strings.Contains(r.stdout, "5 events") {
		t.Fatalf("verify of the snapshot: exit %d %q %q; want 5 events intact (new epoch, roster applied, sign-in, refusal, denied override)", r.code, r.stdout, r.stderr)
	}

	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, logs.String())
	}
	checkLog("from the file, daemon stopped")
	csvPath := filepath.Join(dir, "out.csv")
	if r := cli(t, "export", "--config", cfgPath, "--format", "csv", "--out", csvPath); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	csv, _ := os.ReadFile(csvPath)
	if lines := strings.Count(string(csv), "\n"); lines != 6 { // header, epoch alarm, roster applied, sign-in, refusal, denied override
		t.Errorf("export: %d lines, want 6:\n%s", lines, csv)
	}
	if r := cli(t, "verify", "--db", filepath.Join(dir, "state", "kaoqin.db"), "--pubkey", filepath.Join(dir, "state", "keys", "device.pub"), "--all-signatures"); r.code != 0 {
		t.Fatalf("verify after the run: %+v", r)
	}
}

// The systemd units pass systemd-analyze verify (with ExecStart pointing at the built binary, as
// it will once installed), and carry what the service needs.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: `make deps` installs the systemd package")
	}
	dir := t.TempDir()
	for _, name := range []string{"kaoqin.service", "kaoqin-ingest.service"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		unit := strings.ReplaceAll(string(b), "/usr/local/bin/kaoqin", kaoqin)
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(unit), 0o644)
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
	b, _ := os.ReadFile("../../../systemd/kaoqin.service")
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=kaoqin", "ConfigurationDirectory=kaoqin",
		"User=kaoqin", "SupplementaryGroups=dialout video", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("kaoqin.service lacks %s", want)
		}
	}
}

// Every command answers --help with its usage and exit 0.
func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		r := cli(t, c.name, "--help")
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "Usage: kaoqin "+c.name) {
			t.Errorf("kaoqin %s --help: exit %d, output %q; want exit 0 and its usage", c.name, r.code, r.stdout+r.stderr)
		}
	}
}

// runDaemon starts `kaoqin run` on cfgPath and waits until its socket answers. The daemon is
// killed at the end of the test if it still runs; its log is in the returned buffer.
func runDaemon(t *testing.T, cfgPath string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	daemon := exec.CommandContext(ctx, kaoqin, "run", "--config", cfgPath)
	logs := &bytes.Buffer{}
	daemon.Stderr = logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for cli(t, "status", "--config", cfgPath).code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering on its socket:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return daemon, logs
}

// kaoqin verify --central-key checks each time anchor a box without NTP took from the central
// system's clock: the signed ack it keeps must be the central's, of events before it, and its time
// within the widest round trip after the central's. Without the key nothing is claimed.
func TestVerifyChecksCentralTimeAnchors(t *testing.T) {
	dir := t.TempDir()
	_, pubPath, err := ledger.GenerateKeyFiles(dir, "device")
	if err != nil {
		t.Fatal(err)
	}
	_, centralPub, err := ledger.GenerateKeyFiles(dir, "central")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ledger.LoadPrivateKey(filepath.Join(dir, "device.key"))
	central, _ := ledger.LoadPrivateKey(filepath.Join(dir, "central.key"))
	ledgerWithAnchor := func(name string, after time.Duration) string {
		db := filepath.Join(dir, name)
		st, err := store.Open(store.Config{Path: db, Device: "box-1", Key: key}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for i := range 5 {
			if _, err := st.Append(ledger.Event{Kind: ledger.Reading, Trainee: fmt.Sprintf("T%03d", i), Time: ledger.Clock{Wall: time.Unix(30, 0)}}); err != nil {
				t.Fatal(err)
			}
		}
		seq, hash := st.Head()
		at := time.Now().UTC().Truncate(time.Millisecond)
		signed, err := wire.SealAck(&wire.Ack{Device: "box-1", Epoch: st.Epoch(), AckedThrough: seq, Hash: hex.EncodeToString(hash[:]), Time: at}, central)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ledger.Event{Kind: ledger.TimeAnchor, Data: signed, Time: ledger.Clock{Wall: at.Add(after), Mono: 1, Boot: "b"}}); err != nil {
			t.Fatal(err)
		}
		return db
	}
	good := ledgerWithAnchor("good.db", 20*time.Millisecond)
	if r := cli(t, "verify", "--db", good, "--pubkey", pubPath, "--central-key", centralPub); r.code != 0 || !strings.Contains(r.stdout, "1 time anchors taken from the central system's clock") {
		t.Fatalf("an anchor 20 ms after the central's signed time: exit %d, %q %q; want exit 0 and the anchor counted", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, "verify", "--db", good, "--pubkey", pubPath); r.code != 0 || strings.Contains(r.stdout, "time anchors") {
		t.Fatalf("without the central key: exit %d, %q; want exit 0 and no claim about the anchors", r.code, r.stdout)
	}
	late := ledgerWithAnchor("late.db", time.Hour)
	if r := cli(t, "verify", "--db", late, "--pubkey", pubPath, "--central-key", centralPub); r.code != 1 || !strings.Contains(r.stderr, "time anchor at seq 7") {
		t.Fatalf("an anchor an hour after the central's signed time: exit %d, stderr %q; want exit 1 naming seq 7", r.code, r.stderr)
	}
	_, otherPub, _ := ledger.GenerateKeyFiles(t.TempDir(), "central")
	if r := cli(t, "verify", "--db", good, "--pubkey", pubPath, "--central-key", otherPub); r.code != 1 || !strings.Contains(r.stderr, "time anchor at seq 7") {
		t.Fatalf("another central key: exit %d, stderr %q; want exit 1 naming the anchor", r.code, r.stderr)
	}
}
