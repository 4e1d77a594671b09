package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

// filterFlags adds the event filters shared by log and export.
func filterFlags(fs *flag.FlagSet) func() (ledger.Filter, error) {
	since := fs.String("since", "", "from this time (RFC 3339, YYYY-MM-DD, YYYY-MM-DDTHH:MM or today)")
	until := fs.String("until", "", "before this time")
	session := fs.String("session", "", "only this session")
	trainee := fs.String("trainee", "", "only this trainee")
	kind := fs.String("kind", "", "only this kind: sign_in, sign_out, voucher_checkin, refusal, duplicate, enrollment, alarm, reading, time_anchor")
	flg := fs.String("flag", "", "only events with this doubt flag (late, early_leave, manual_override, ...)")
	return func() (ledger.Filter, error) {
		f, err := api.ParseFilter(map[string][]string{"since": {*since}, "until": {*until}, "session": {*session},
			"trainee": {*trainee}, "kind": {*kind}, "flag": {*flg}})
		if err != nil {
			return f, usageError{err}
		}
		return f, nil
	}
}

func cmdLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("log", "log [--since T] [--until T] [--session S] [--trainee ID] [--kind K] [--flag F] [--json]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file (finds the daemon's socket or the ledger)")
	db := fs.String("db", "", "read this ledger file instead (daemon stopped, or a copy)")
	asJSON := fs.Bool("json", false, "one JSON object a line")
	filter := filterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
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
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return l.Events(ctx, f, 0, func(e *ledger.Event) error {
			c := e.WithoutTemplate()
			return enc.Encode(&c)
		})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tTRAINEE\tID NUMBER\tSESSION\tSOURCE\tREASON/NOTE\tFLAGS")
	n := 0
	err = l.Events(ctx, f, 0, func(e *ledger.Event) error {
		n++
		when := e.Time.Wall.Format("2006-01-02 15:04:05")
		if !e.Time.Synced {
			when += "*"
		}
		note := e.Note
		if e.Method == "manual" && note != "" {
			note = "operator's reason: " + note // the operator's words, never the refusal's explanation
		}
		if e.Reason != "" {
			note = strings.TrimSpace(label.Reason(e.Reason).Coded(label.ZH) + " " + note)
		}
		if e.Voucher != "" && (e.Kind == ledger.Refusal || e.Kind == ledger.VoucherCheckin) {
			note = strings.TrimSpace("voucher " + e.Voucher + " " + note)
		}
		if e.Dataset != nil {
			note = strings.TrimSpace(fmt.Sprintf("%s v%d from %s %s", e.Dataset.Name, e.Dataset.Version, e.Dataset.Origin, note))
		}
		if e.Cert != "" {
			note = strings.TrimSpace(e.Cert + " " + note)
		}
		if e.Operator != "" {
			note += " (operator " + e.Operator + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, when, e.Kind, e.Trainee, e.IDMasked, e.Session, e.Source, note, joinFlags(e.Flags))
		return nil
	})
	tw.Flush()
	if err == nil {
		fmt.Fprintf(stdout, "%d events (* = clock not synchronised)\n", n)
	}
	return err
}

func joinFlags(fl []ledger.Flag) string {
	s := make([]string, len(fl))
	for i, f := range fl {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}
