package emu

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
)

// Command is `kaoqin emulate zfm`: an R503-like module behind a link, playing a script. The CLI
// registers its flags, parses them, checks them and runs it; each emulator owns its own flags.
type Command struct {
	Link   string // --link: the symbolic link to create (required)
	Script string // --script: a script file to play; none leaves the sensor idle
}

// Flags registers the command's flags on fs.
func (c *Command) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Link, "link", "", "path of the symlink to the emulated module (required)")
	fs.StringVar(&c.Script, "script", "", "script of fingers to play (format: go doc github.com/kaoqin/kaoqin/drivers/zfm/emu)")
}

// Check reports a mistake in the parsed flags, a usage error.
func (c *Command) Check() error {
	if c.Link == "" {
		return errors.New("emulate zfm: --link is required")
	}
	return nil
}

// Run opens the script and runs the module until ctx is done, as the function Run does.
func (c *Command) Run(ctx context.Context, log *slog.Logger) error {
	var script io.Reader
	if c.Script != "" {
		f, err := os.Open(c.Script)
		if err != nil {
			return err
		}
		defer f.Close()
		script = f
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Run(ctx, c.Link, script, log)
}
