package main

import (
	"context"
	"io"
	"log/slog"

	zkpushemu "github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// emulateZkpush is `kaoqin emulate zkpush`: an emulated ZKTeco terminal speaking PUSH over HTTP
// to a kaoqin daemon's zkpush source.
func emulateZkpush(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("emulate zkpush", "emulate zkpush --server URL --serial SN [--script FILE]", stderr)
	server := fs.String("server", "http://127.0.0.1:8081", "the daemon's PUSH server")
	serial := fs.String("serial", "", "the terminal's serial number, as configured in its [[source]] (required)")
	scriptPath := fs.String("script", "", "steps to play before the terminal's own loop (go doc github.com/kaoqin/kaoqin/drivers/zkpush/emu Terminal.Play)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *serial == "" {
		return usagef("emulate zkpush: --serial is required")
	}
	script, closeScript, err := openScript(*scriptPath)
	if err != nil {
		return err
	}
	defer closeScript()
	log := newLogger(stderr, slog.LevelInfo).With("emulator", "zkpush")
	return zkpushemu.Run(ctx, *server, *serial, script, log)
}
