package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "run --config FILE", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	check := fs.Bool("check", false, "check the config and everything run needs before it opens the ledger (the keys, the state folder), then exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return usageError{err}
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok\n", *cfgPath)
		return nil
	}
	log := newLogger(stderr, cfg.Level())
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
