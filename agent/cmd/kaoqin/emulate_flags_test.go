package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// Each emulator's --help lists its own flags and no other emulator's.
func TestEmulateHelpListsOwnFlags(t *testing.T) {
	for _, c := range []struct {
		kind         string
		want, unwant []string
	}{
		{"zfm", []string{"-link", "-script"}, []string{"-framing"}},
		{"lineterm", []string{"-link", "-script", "-framing"}, nil},
	} {
		var stdout, stderr bytes.Buffer
		err := cmdEmulate(context.Background(), []string{c.kind, "--help"}, &stdout, &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("emulate %s --help: got %v, want flag.ErrHelp", c.kind, err)
		}
		help := stdout.String() + stderr.String()
		for _, f := range c.want {
			if !strings.Contains(help, f) {
				t.Errorf("emulate %s --help: got %q, want it to list %s", c.kind, help, f)
			}
		}
		for _, f := range c.unwant {
			if strings.Contains(help, f) {
				t.Errorf("emulate %s --help: got %q, want no %s", c.kind, help, f)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	err := cmdEmulate(context.Background(), []string{"zfm", "--link", "x", "--framing", "lf"}, &stdout, &stderr)
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "-framing") {
		t.Errorf("emulate zfm --framing lf: got %v, want a usage error naming -framing", err)
	}
}
