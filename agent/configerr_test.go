package agent_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/lineterm"
	"github.com/kaoqin/kaoqin/drivers/zfm"
)

// goodConfig loads; each case below adds one bad line to it, at a known line.
const goodConfig = `device = "box-1"
institution = "0001"
state_dir = "state"
socket = "kaoqin.sock"

[checkin]
suppress = "2m"

[[source]]
name = "door-finger"
kind = "zfm"
path = "zfm0"

[[source]]
name = "desk-qr"
kind = "lineterm"
path = "qr0"
method = "voucher"
`

// insertAt returns doc with line inserted so that it becomes line n (from 1).
func insertAt(doc string, n int, line string) string {
	lines := strings.Split(doc, "\n")
	lines = append(lines[:n-1], append([]string{line}, lines[n-1:]...)...)
	return strings.Join(lines, "\n")
}

func TestLoadConfigResolvesPathsAndOpensNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(goodConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig of a good file: %v", err)
	}
	for _, c := range []struct{ got, want string }{
		{cfg.DBPath(), filepath.Join(dir, "state", "kaoqin.db")},
		{cfg.Key, filepath.Join(dir, "state", "keys", "device.key")},
		{cfg.Socket, filepath.Join(dir, "kaoqin.sock")},
		{string(cfg.Sources[0].Driver.(*zfm.SourceConfig).Path), filepath.Join(dir, "zfm0")},
		{string(cfg.Sources[1].Driver.(*lineterm.SourceConfig).Path), filepath.Join(dir, "qr0")},
	} {
		if c.got != c.want {
			t.Errorf("path: got %s, want %s (relative to the config file)", c.got, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir after LoadConfig: got %v, want nothing created", err)
	}
}

// Every mistake is reported as file:line: key.
func TestLoadConfigErrorsNameFileLineAndKey(t *testing.T) {
	for _, c := range []struct {
		name string
		line int
		text string
		key  string
	}{
		{"unknown top-level key", 3, `colour = "red"`, "colour"},
		{"misspelled key in a table", 8, `supress_window = "1m"`, "checkin.supress_window"},
		{"unknown key in the second source", 19, `speed = 9600`, "source[1].speed"},
		{"lineterm key on a zfm source", 13, `framing = "crlf"`, "source[0].framing"},
		{"zfm key on a lineterm source", 19, `poll_interval = "1s"`, "source[1].poll_interval"},
		{"bad baud on a zfm source", 13, `baud = 12345`, "source[0].baud"},
		{"bad baud on a lineterm source", 18, `baud = 1200`, "source[1].baud"},
		{"baud that is not a number", 13, `baud = "fast"`, "source[0].baud"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.toml")
			doc := insertAt(goodConfig, c.line, c.text)
			if got := strings.Split(doc, "\n")[c.line-1]; got != c.text {
				t.Fatalf("test file: line %d is %q, want %q", c.line, got, c.text)
			}
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := agent.LoadConfig(path)
			want := fmt.Sprintf("%s:%d: %s: ", path, c.line, c.key)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("LoadConfig with %q at line %d: got %v, want an error starting %q", c.text, c.line, err, want)
			}
		})
	}
}

// One pass finds every problem of the file: unknown keys, wrong types and bad values together,
// in the agent's tables and in each driver's.
func TestLoadConfigReportsEveryProblemAtOnce(t *testing.T) {
	doc := `device = "Box 1"
institution = 1
colour = "red"

[checkin]
suppress = 2
two_devices = "-5m"
rapid = "soon"

[[source]]
name = "door-finger"
kind = "zfm"
path = "zfm0"
baud = "fast"
poll_interval = "1ms"
speed = 9600

[[source]]
name = "cam"
kind = "no-such-driver"
`
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := agent.LoadConfig(path)
	var es agent.ConfigErrors
	if !errors.As(err, &es) {
		t.Fatalf("LoadConfig: got %v, want ConfigErrors", err)
	}
	want := map[string]int{ // key -> line
		"device": 1, "institution": 2, "colour": 3,
		"checkin.suppress": 6, "checkin.two_devices": 7, "checkin.rapid": 8,
		"source[0].baud": 14, "source[0].poll_interval": 15, "source[0].speed": 16,
		"source[1].kind": 20,
	}
	got := map[string]int{}
	for _, e := range es {
		got[e.Key] = e.Line
	}
	for k, line := range want {
		if l, ok := got[k]; !ok || l != line {
			t.Errorf("problem with %s: got line %d (reported %v), want line %d\nall:\n%v", k, l, ok, line, err)
		}
	}
	msg := err.Error()
	for _, s := range []string{`write a duration with its unit, such as "2s"`, "cannot be negative", `unknown kind "no-such-driver": this build has lineterm, zfm`} {
		if !strings.Contains(msg, s) {
			t.Errorf("errors do not say %q:\n%s", s, msg)
		}
	}
}

// A TOML syntax error names its line; a missing file names the file.
func TestLoadConfigSyntaxAndMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte("device = \"box-1\"\ninstitution = \"0001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := agent.LoadConfig(path)
	var es agent.ConfigErrors
	if !errors.As(err, &es) || es[0].Line != 2 {
		t.Errorf("syntax error: got %v, want a ConfigError at line 2", err)
	}
	_, err = agent.LoadConfig(filepath.Join(t.TempDir(), "missing.toml"))
	var ce *agent.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: got %v, want a ConfigError naming the file", err)
	}
}

// A kind this build left out (a cgo driver in an ARM build) says which build has it.
func TestLoadConfigNamesTheBuildThatHasADriver(t *testing.T) {
	drivers.RegisterMissing("test-absent", "it needs cgo: build with `make build`, not `make cross`")
	path := filepath.Join(t.TempDir(), "agent.toml")
	doc := "device = \"box-1\"\ninstitution = \"0001\"\n\n[[source]]\nname = \"cam\"\nkind = \"test-absent\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := agent.LoadConfig(path)
	if want := path + `:6: source[0].kind: kind "test-absent" is not in this build: it needs cgo`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}

// Check finds what Run would refuse before taking a reading: a missing device key.
func TestCheckFindsWhatRunWouldRefuse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(goodConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "key: ") || !strings.Contains(err.Error(), "kaoqin keygen") {
		t.Errorf("Check without a device key: got %v, want a key problem that says how to make one", err)
	}
	if _, _, err := ledger.GenerateKeyFiles(filepath.Join(dir, "state", "keys"), "device"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err != nil {
		t.Errorf("Check with the key: %v", err)
	}
}
