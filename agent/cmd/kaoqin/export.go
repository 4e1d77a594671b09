package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
)

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", "export --format csv|json --out FILE [filters] | export --bundle FILE [--since T] [--until T]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	db := fs.String("db", "", "read this ledger file instead")
	format := fs.String("format", "csv", "csv (UTF-8 with BOM, names from the roster) or json (JSON lines)")
	out := fs.String("out", "", "output file (required; - for standard output)")
	bundle := fs.String("bundle", "", "write the verifiable bundle (zip) to this file instead: events, evidence, chain segment, receipt, device key")
	langFlag := fs.String("lang", "zh", "language of the CSV: zh or en")
	filter := filterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	lang, err := label.ParseLang(*langFlag)
	if err != nil {
		return usageError{err}
	}
	f, err := filter()
	if err != nil {
		return err
	}
	if *bundle != "" {
		return exportBundle(ctx, *cfgPath, *db, *bundle, f, lang, stdout, stderr)
	}
	if *format != "csv" && *format != "json" {
		return usagef("export: --format %q: want csv or json", *format)
	}
	if *out == "" {
		return usagef("export: --out (or --bundle) is required")
	}
	l, err := openLedger(*cfgPath, *db, readOnly)
	if err != nil {
		return err
	}
	defer l.Close()
	names := map[string]string{}
	if sum, err := l.Roster(ctx); err == nil {
		names = export.Names(rosterOf(sum))
	}
	w := stdout
	var file *os.File
	if *out != "-" {
		if file, err = os.Create(*out); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	p := newProgress(stderr, "exporting")
	n := uint64(0)
	var write func(*ledger.Event) error
	flush := func() error { return nil }
	if *format == "json" {
		jw := export.NewJSONWriter(w)
		write = jw.Write
	} else {
		ew, err := export.NewEventWriter(w, export.Options{Lang: lang, Names: names})
		if err != nil {
			return err
		}
		write, flush = ew.Write, ew.Flush
	}
	err = l.Events(ctx, f, 0, func(e *ledger.Event) error {
		n++
		if n%1000 == 0 {
			p.update(n, 0)
		}
		return write(e)
	})
	p.done()
	if err == nil {
		err = flush()
	}
	if err == nil && file != nil {
		err = file.Sync()
	}
	if err != nil {
		return err
	}
	if file != nil {
		fmt.Fprintf(stdout, "%d events written to %s\n", n, *out)
	}
	return nil
}

// exportBundle writes the verifiable bundle: from a consistent copy of the ledger (through the
// running daemon, or the file when it is stopped; --db names a copy), signed with the device key.
func exportBundle(ctx context.Context, cfgPath, db, out string, f ledger.Filter, lang label.Lang, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	key, err := ledger.LoadPrivateKey(cfg.Key)
	if err != nil {
		return fmt.Errorf("export: the bundle is signed with the device key: %w", err)
	}
	if db == "" {
		tmp, err := os.CreateTemp("", "kaoqin-bundle-*.db")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if _, err := snapshot(ctx, cfgPath, tmp.Name()); err != nil {
			return err
		}
		db = tmp.Name()
	}
	st, err := store.OpenReadOnly(db)
	if err != nil {
		return err
	}
	defer st.Close()
	r, _, err := st.Roster()
	if err != nil {
		return err
	}
	var receipt *export.Receipt
	if rc, ok, err := st.LatestReceipt(); err != nil {
		return err
	} else if ok {
		receipt = &export.Receipt{Device: rc.Device, Epoch: rc.Epoch, AckedSeq: rc.Seq, Hash: hex.EncodeToString(rc.Hash[:]), At: rc.Time, Raw: rc.Signed}
	}
	evDir := cfg.LedgerConfig().EvidenceDir
	tmp, err := os.CreateTemp(filepath.Dir(out), ".bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var p *progress
	stage := ""
	m, err := export.Write(tmp, st, export.BundleOptions{
		Options: export.Options{Lang: lang, Names: export.Names(r)},
		Filter:  f,
		Key:     key,
		Receipt: receipt,
		Evidence: func(name string) (io.ReadCloser, error) {
			return os.Open(filepath.Join(evDir, name[:2], name+".jpg"))
		},
		Progress: func(pr export.Progress) {
			if pr.Stage != stage {
				if p != nil {
					p.done()
				}
				stage, p = pr.Stage, newProgress(stderr, "writing "+pr.Stage)
			}
			p.update(uint64(max(pr.Done, 0)), uint64(max(pr.Total, 0)))
		},
	})
	if p != nil {
		p.done()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d events, records seq %d-%d, head %s\n", out, m.Events, m.First, m.Last, m.HeadHash)
	if len(m.MissingEvidence) > 0 || len(m.DamagedEvidence) > 0 {
		fmt.Fprintf(stdout, "evidence not in the bundle: %d missing, %d damaged (listed in its manifest)\n", len(m.MissingEvidence), len(m.DamagedEvidence))
	}
	fmt.Fprintf(stdout, "check it anywhere, offline: kaoqin verify --bundle %s --pubkey device.pub\n", filepath.Base(out))
	return nil
}
