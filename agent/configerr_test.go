package agent_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/agent"
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
