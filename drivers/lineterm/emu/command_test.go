package emu

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCommandFlags(t *testing.T) {
	var c Command
	fs := flag.NewFlagSet("emulate lineterm", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Flags(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if want := []string{"framing", "link", "script"}; !slices.Equal(names, want) {
		t.Errorf("flags: got %v, want %v", names, want)
	}
	if err := fs.Parse([]string{"--framing", "lf"}); err != nil {
		t.Fatal(err)
	}
	err := c.Check()
	for _, want := range []string{"--link is required", "--script is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check with no --link and --script: got %v, want %q", err, want)
		}
	}
	if err := fs.Parse([]string{"--link", filepath.Join(t.TempDir(), "tty"), "--script", "/nonexistent/script", "--framing", "stx/etx"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check: got %v, want nil", err)
	}
	if err := c.Run(context.Background(), nil); !os.IsNotExist(err) {
		t.Errorf("Run with a missing script: got %v, want a not-exist error", err)
	}
	c.Framing = "morse"
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "--framing") {
		t.Errorf("Check with --framing morse: got %v, want an error naming --framing", err)
	}
}
