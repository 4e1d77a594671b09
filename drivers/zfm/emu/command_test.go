package emu_test

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

func TestCommandFlags(t *testing.T) {
	var c emu.Command
	fs := flag.NewFlagSet("emulate zfm", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Flags(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if want := []string{"link", "script"}; !slices.Equal(names, want) {
		t.Errorf("flags: got %v, want %v", names, want)
	}
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "--link is required") {
		t.Errorf("Check without --link: got %v, want --link is required", err)
	}
	if err := fs.Parse([]string{"--link", filepath.Join(t.TempDir(), "tty"), "--script", "/nonexistent/script"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check: got %v, want nil", err)
	}
	if err := c.Run(context.Background(), nil); !os.IsNotExist(err) {
		t.Errorf("Run with a missing script: got %v, want a not-exist error", err)
	}
}
