package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	lineemu "github.com/kaoqin/kaoqin/drivers/lineterm/emu"
	zfmemu "github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

func cmdEmulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	kind, err := pickSub(args, "emulate", []string{"zfm", "lineterm", "zkpush", "hikisapi", "roster"},
		"Usage: kaoqin emulate zfm --link PATH [--script FILE]\n       kaoqin emulate lineterm --link PATH --script FILE [--framing lf|crlf|cr|stx/etx]\n"+
			"       kaoqin emulate zkpush --server URL --serial SN [--script FILE]\n       kaoqin emulate hikisapi --listen ADDR [--script FILE]\n"+
			"       kaoqin emulate roster --out FILE [--trainees N]\n\n"+
			"zfm and lineterm create a pseudo-terminal, make PATH a symlink to it, play the script and serve until killed;\n"+
			"zkpush is a ZKTeco terminal calling a PUSH server; hikisapi a Hikvision terminal serving ISAPI.\n"+
			"Script formats: go doc github.com/kaoqin/kaoqin/drivers/<kind>/emu", stdout)
	if err != nil {
		return err
	}
	switch kind {
	case "roster":
		return emulateRoster(args[1:], stdout, stderr)
	case "zkpush":
		return emulateZkpush(ctx, args[1:], stderr)
	case "hikisapi":
		return emulateHikisapi(ctx, args[1:], stderr)
	}
	// Each emulator registers its own flags: --help lists only those.
	var em interface {
		Flags(*flag.FlagSet)
		Check() error
		Run(context.Context, *slog.Logger) error
	}
	usage := "emulate zfm --link PATH [--script FILE]"
	if kind == "zfm" {
		em = new(zfmemu.Command)
	} else {
		em = new(lineemu.Command)
		usage = "emulate lineterm --link PATH --script FILE [--framing lf|crlf|cr|stx/etx]"
	}
	fs := newFlags("emulate "+kind, usage, stderr)
	em.Flags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := em.Check(); err != nil {
		return usageError{err}
	}
	return em.Run(ctx, newLogger(stderr, slog.LevelInfo).With("emulator", kind))
}

// emulateRoster writes the demo classroom's roster: a session open now, and trainees whose
// fingerprint templates are the emulated module's (finger IDs T001/right-index, ...).
func emulateRoster(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("emulate roster", "emulate roster --out FILE [--trainees N] [--version N]", stderr)
	out := fs.String("out", "", "roster file to write (required)")
	n := fs.Int("trainees", 5, "number of trainees (at least 2; the last holds a voucher to check in)")
	version := fs.Uint64("version", 0, "roster version (default: the current Unix time, so each run is newer)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *n < 2 {
		return usagef("emulate roster: --out is required and --trainees at least 2")
	}
	now := time.Now()
	if *version == 0 {
		*version = uint64(now.Unix())
	}
	b, err := json.MarshalIndent(demo.Roster(now, *n, *version), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo roster version %d with %d trainees written to %s\n", *version, *n, *out)
	return nil
}
