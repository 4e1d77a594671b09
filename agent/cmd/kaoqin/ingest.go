package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/sync/ingest"
)

// ingestFlags are the reference consumer's settings, shared by its subcommands.
func ingestFlags(fs *flag.FlagSet) func() ingest.Config {
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker")
	db := fs.String("db", "/var/lib/kaoqin-ingest/ingest.db", "the ingester's store: a bbolt file, or a PostgreSQL URL (postgres://...) that several ingesters share")
	keys := fs.String("device-keys", "/etc/kaoqin-ingest/devices", "directory of device keys: <institution>/<device>.pub (pinned to the institution) or <device>.pub")
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
		"Usage: kaoqin ingest run [flags]\n       kaoqin ingest status [--db FILE|postgres://...] [--json]\n"+
			"       kaoqin ingest publish --dataset roster [--version N] FILE [flags]\n"+
			"       kaoqin ingest publish --dataset roster|certblocks --out BUNDLE --device NAME [--valid 720h] FILE\n"+
			"       kaoqin ingest simulate --devices N --device-keys DIR [flags]\n\nkaoqin ingest SUBCOMMAND --help lists the flags.", stdout)
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
	version := fs.Uint64("version", 0, "publish: version (default: the dataset's own version field)")
	out := fs.String("out", "", "publish: write a signed bundle for one device to this file instead (an offline box: kaoqin roster import BUNDLE)")
	device := fs.String("device", "", "publish --out: the device the bundle is signed for")
	valid := fs.Duration("valid", ingest.DefaultBundleValidity, "publish --out: how long the bundle stays valid")
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
		if *out != "" {
			if *device == "" {
				return usagef("ingest publish --out: --device is required (a bundle is signed for one box)")
			}
			b, err := ingest.Bundle(cfg, *dataset, *version, fs.Arg(0), *device, *valid, time.Now())
			if err != nil {
				return err
			}
			if err := os.WriteFile(*out, b, 0o640); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "signed bundle of %s for device %s written to %s (valid %s)\n", *dataset, *device, *out, *valid)
			return nil
		}
		if *dataset == cert.BlocksDataset {
			// Blocks are one box's: sent to every device, the others would refuse them again and again.
			return usagef("ingest publish: %s is per device: make a bundle with --out FILE --device NAME", cert.BlocksDataset)
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
