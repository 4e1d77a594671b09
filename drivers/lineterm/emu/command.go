package emu

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/kaoqin/kaoqin/drivers/lineterm"
)

// Command is `kaoqin emulate lineterm`: a line terminal behind a link, playing a script. The CLI
// registers its flags, parses them, checks them and runs it; each emulator owns its own flags.
type Command struct {
	Link    string // --link: the symbolic link to create (required)
	Script  string // --script: the script file to play (required)
	Framing string // --framing: lf (default), crlf, cr or stx/etx
}

// Flags registers the command's flags on fs.
func (c *Command) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Link, "link", "", "path of the symlink to the emulated terminal (required)")
	fs.StringVar(&c.Script, "script", "", "script of lines to play (required; format: go doc github.com/kaoqin/kaoqin/drivers/lineterm/emu)")
	fs.StringVar(&c.Framing, "framing", "lf", "line framing: lf, crlf, cr or stx/etx")
}

// Check reports a mistake in the parsed flags, a usage error.
func (c *Command) Check() error {
	var errs []error
	if c.Link == "" {
		errs = append(errs, errors.New("emulate lineterm: --link is required"))
	}
	if c.Script == "" {
		errs = append(errs, errors.New("emulate lineterm: --script is required"))
	}
	if _, err := lineterm.ParseFraming(c.Framing); err != nil {
		errs = append(errs, fmt.Errorf("emulate lineterm: --framing: %w", err))
	}
	return errors.Join(errs...)
}

// Run opens the script and runs the terminal until ctx is done, as the function Run does.
func (c *Command) Run(ctx context.Context, log *slog.Logger) error {
	fr, err := lineterm.ParseFraming(c.Framing)
	if err != nil {
		return err
	}
	f, err := os.Open(c.Script)
	if err != nil {
		return err
	}
	defer f.Close()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Run(ctx, c.Link, f, fr, log)
}
