package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent"
)

// cmdSpotcheck asks the running daemon for a spot check at every room camera now (an inspector on
// site, or the demo): what the central system's spotcheck command does.
func cmdSpotcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("spotcheck", "spotcheck [--config FILE]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	n, err := c.SpotCheck(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "spot check asked of %d room camera(s); the spot_check events follow in `kaoqin log`\n", n)
	return nil
}
