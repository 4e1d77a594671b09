package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kaoqin/kaoqin/agent"
)

func cmdSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("snapshot", "snapshot --out FILE [--config FILE]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	out := fs.String("out", "", "where to write the copy of the ledger file (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("snapshot: --out is required")
	}
	from, err := snapshot(ctx, *cfgPath, *out)
	if err != nil {
		return err
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: a consistent copy of %s (%d bytes); it holds full ID numbers: keep it safe\n", *out, from, fi.Size())
	return nil
}

// snapshot writes a consistent copy of the config's ledger to path (through the running daemon,
// or from the file when it is stopped): a temporary file, fsynced, then renamed into place. It
// returns what it copied, for the user.
func snapshot(ctx context.Context, cfgPath, path string) (string, error) {
	l, err := openLedger(cfgPath, "", readOnly)
	if err != nil {
		return "", err
	}
	defer l.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	_, err = l.Snapshot(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return l.From, err
}
