package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers/face"
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
	fs := newFlags("emulate roster", "emulate roster --out FILE [--trainees N] [--version N] [--faces FILE]", stderr)
	faces := fs.String("faces", "", "a face-template dataset (kaoqin face enroll) whose trainees' descriptors the roster carries")
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
	r := demo.Roster(now, *n, *version)
	if *faces != "" {
		if err := addFaces(r, *faces); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo roster version %d with %d trainees written to %s\n", *version, *n, *out)
	return nil
}

// addFaces puts the descriptors of a face-template dataset on the roster's trainees of the same
// IDs, with the model that made them.
func addFaces(r *roster.Roster, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("emulate roster: --faces: %w", err)
	}
	ds, err := face.ParseDataset(b)
	if err != nil {
		return fmt.Errorf("emulate roster: --faces %s: %w", file, err)
	}
	for _, tf := range ds.Trainees {
		i := slices.IndexFunc(r.Trainees, func(t roster.Trainee) bool { return t.ID == tf.Trainee })
		if i < 0 {
			return fmt.Errorf("emulate roster: --faces %s: trainee %s is not in the demo roster", file, tf.Trainee)
		}
		for _, e := range tf.Descriptors {
			txt, _ := e.D.MarshalText()
			raw, err := base64.StdEncoding.DecodeString(string(txt))
			if err != nil {
				return err
			}
			r.Trainees[i].Faces = append(r.Trainees[i].Faces, roster.Face{Model: ds.Model.Name, ModelSHA256: ds.Model.SHA256, Descriptor: raw})
		}
	}
	return nil
}

// openScript opens an emulator's --script file; an empty path is no script (a nil reader). The
// caller closes it.
func openScript(path string) (io.Reader, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}
