package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/drivers/lineterm"
	lineemu "github.com/kaoqin/kaoqin/drivers/lineterm/emu"
	zfmemu "github.com/kaoqin/kaoqin/drivers/zfm/emu"
	"github.com/kaoqin/kaoqin/sync/ingest"
)

func cmdEmulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	kind, err := pickSub(args, "emulate", []string{"zfm", "lineterm", "roster"},
		"Usage: kaoqin emulate zfm --link PATH [--script FILE]\n       kaoqin emulate lineterm --link PATH --script FILE [--framing lf|crlf|cr|stx/etx]\n       kaoqin emulate roster --out FILE [--trainees N]\n\n"+
			"zfm and lineterm create a pseudo-terminal, make PATH a symlink to it, play the script and serve until killed.\n"+
			"Script formats: go doc github.com/kaoqin/kaoqin/drivers/zfm/emu and .../drivers/lineterm/emu", stdout)
	if err != nil {
		return err
	}
	if kind == "roster" {
		return emulateRoster(args[1:], stdout, stderr)
	}
	fs := newFlags("emulate "+kind, "emulate "+kind+" --link PATH [--script FILE]", stderr)
	link := fs.String("link", "", "path of the symlink to the emulated device (required)")
	scriptPath := fs.String("script", "", "script of fingers or lines to play")
	framing := fs.String("framing", "lf", "lineterm: line framing (lf, crlf, cr, stx/etx)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *link == "" {
		return usagef("emulate %s: --link is required", kind)
	}
	var script io.Reader
	if *scriptPath != "" {
		f, err := os.Open(*scriptPath)
		if err != nil {
			return err
		}
		defer f.Close()
		script = f
	}
	log := newLogger(stderr, slog.LevelInfo).With("emulator", kind, "link", *link)
	if kind == "zfm" {
		return zfmemu.Run(ctx, *link, script, log)
	}
	if script == nil {
		return usagef("emulate lineterm: --script is required")
	}
	fr, err := lineterm.ParseFraming(*framing)
	if err != nil {
		return usageError{err}
	}
	return lineemu.Run(ctx, *link, script, fr, log)
}

// ingestFlags are the reference consumer's settings, shared by its subcommands.
func ingestFlags(fs *flag.FlagSet) func() ingest.Config {
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker")
	db := fs.String("db", "/var/lib/kaoqin-ingest/ingest.db", "the ingester's store: a bbolt file, or a PostgreSQL URL (postgres://...) that several ingesters share")
	keys := fs.String("device-keys", "/etc/kaoqin-ingest/devices", "directory of <device>.pub keys")
	central := fs.String("central-key", "/etc/kaoqin-ingest/central.key", "central private key that signs datasets and commands")
	datasets := fs.String("datasets", "/var/lib/kaoqin-ingest/datasets", "directory of published datasets")
	user := fs.String("username", "", "broker user")
	passFile := fs.String("password-file", "", "file holding the broker password")
	ca := fs.String("ca-file", "", "CA certificate for a TLS broker")
	cert := fs.String("cert-file", "", "client certificate")
	key := fs.String("key-file", "", "client key")
	group := fs.String("share-group", "", "MQTT shared subscription group ($share/GROUP/...)")
	clientID := fs.String("client-id", "", "MQTT client ID (default kaoqin-ingest)")
	return func() ingest.Config {
		c := ingest.Config{Broker: *broker, DB: *db, DeviceKeysDir: *keys, CentralKeyFile: *central, DatasetDir: *datasets,
			Username: *user, CAFile: *ca, CertFile: *cert, KeyFile: *key, ShareGroup: *group, ClientID: *clientID}
		if *passFile != "" {
			if b, err := os.ReadFile(*passFile); err == nil {
				c.Password = strings.TrimSpace(string(b))
			}
		}
		return c
	}
}

func cmdIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "ingest", []string{"run", "status", "publish", "simulate"},
		"Usage: kaoqin ingest run [flags]\n       kaoqin ingest status [--db FILE|postgres://...] [--json]\n       kaoqin ingest publish --dataset roster [--version N] FILE [flags]\n       kaoqin ingest simulate --devices N --device-keys DIR [flags]\n\nkaoqin ingest SUBCOMMAND --help lists the flags.", stdout)
	if err != nil {
		return err
	}
	if sub == "simulate" {
		return cmdIngestSimulate(ctx, args[1:], stdout, stderr)
	}
	fs := newFlags("ingest "+sub, "ingest "+sub+" [flags]", stderr)
	cfgOf := ingestFlags(fs)
	asJSON := fs.Bool("json", false, "status: print JSON")
	dataset := fs.String("dataset", "roster", "publish: dataset name")
	version := fs.Uint64("version", 0, "publish: version (default: the roster's own version field)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg := cfgOf()
	switch sub {
	case "run":
		return ingest.Run(ctx, cfg, newLogger(stderr, slog.LevelInfo).With("component", "ingest"))
	case "publish":
		if fs.NArg() != 1 {
			return usagef("ingest publish: want one dataset file")
		}
		if err := ingest.Publish(ctx, cfg, *dataset, *version, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "published %s from %s\n", *dataset, fs.Arg(0))
		return nil
	}
	sts, err := ingest.Status(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, sts)
	}
	sort.Slice(sts, func(i, j int) bool { return sts[i].Device < sts[j].Device })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tINSTITUTION\tONLINE\tEPOCH\tACKED\tDEVICE HEAD\tBACKLOG\tGAP\tLAST SEEN\tDATASETS")
	for _, s := range sts {
		var ds []string
		for k, v := range s.DatasetVersions {
			ds = append(ds, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(ds)
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%d\t%v\t%s\t%s\n", s.Device, s.Institution, s.Online, s.Epoch, s.AckedThrough,
			s.HeadSeq, s.Backlog, s.Gap, s.LastSeen.Format(time.DateTime), strings.Join(ds, " "))
	}
	return tw.Flush()
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
