package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", "export --format csv|json --out FILE [filters]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	db := fs.String("db", "", "read this ledger file instead")
	format := fs.String("format", "csv", "csv or json (JSON lines)")
	out := fs.String("out", "", "output file (required; - for standard output)")
	filter := filterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "csv" && *format != "json" {
		return usagef("export: --format %q: want csv or json", *format)
	}
	if *out == "" {
		return usagef("export: --out is required")
	}
	f, err := filter()
	if err != nil {
		return err
	}
	l, err := openLedger(*cfgPath, *db, readOnly)
	if err != nil {
		return err
	}
	defer l.Close()
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
	write, flush := exporter(w, *format)
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

var csvHeader = []string{"seq", "id", "time", "clock_synced", "kind", "trainee", "id_masked", "session", "institution",
	"voucher", "source", "method", "score", "reason", "flags", "operator", "note", "evidence", "device", "epoch"}

// evidenceNames lists an event's photos as their SHA-256 names, space-separated.
func evidenceNames(ps []ledger.Photo) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.SHA256
	}
	return strings.Join(names, " ")
}

func exporter(w io.Writer, format string) (write func(*ledger.Event) error, flush func() error) {
	if format == "json" {
		enc := json.NewEncoder(w)
		return func(e *ledger.Event) error { e.Data = nil; return enc.Encode(e) }, func() error { return nil }
	}
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	return func(e *ledger.Event) error {
			return cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.ID, e.Time.Wall.Format(time.RFC3339),
				strconv.FormatBool(e.Time.Synced), string(e.Kind), e.Trainee, e.IDMasked, e.Session, e.Institution,
				e.Voucher, e.Source, e.Method, strconv.FormatFloat(e.Score, 'g', -1, 64), string(e.Reason),
				joinFlags(e.Flags), e.Operator, e.Note, evidenceNames(e.Evidence), e.Device, strconv.FormatUint(e.Epoch, 10)})
		}, func() error {
			cw.Flush()
			return cw.Error()
		}
}
