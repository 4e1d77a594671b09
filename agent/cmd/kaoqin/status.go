package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent"
)

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "status [--config FILE] [--json]   (the daemon's state, or the ledger's when it is stopped)", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	l, err := openLedger(*cfgPath, "", readOnly)
	if err != nil {
		return err
	}
	defer l.Close()
	s, err := l.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, s)
	}
	if s.Running {
		fmt.Fprintf(stdout, "device %s (institution %s), kaoqin %s, up since %s\n", s.Device, s.Institution, s.Version, s.Started.Format(time.DateTime))
	} else {
		fmt.Fprintf(stdout, "device %s (institution %s): the daemon is not running; read from %s\n", s.Device, s.Institution, l.From)
	}
	fmt.Fprintf(stdout, "ledger epoch %d: %d events, %d acknowledged centrally, backlog %d\n", s.Epoch, s.Head, s.Acked, s.Head-s.Acked)
	fmt.Fprintf(stdout, "roster version %d, %d trainees\n", s.RosterVersion, s.Trainees)
	names := make([]string, 0, len(s.Sources))
	for n := range s.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := s.Sources[n]
		fmt.Fprintf(stdout, "source %-14s %-9s readings %d, dropped %d, reopens %d %s\n", n, h.State, h.Readings, h.Dropped, h.Reopens, h.LastErr)
		var extra []string
		if !h.LastContact.IsZero() {
			extra = append(extra, "last contact "+h.LastContact.Format(time.DateTime))
		}
		keys := make([]string, 0, len(h.Info))
		for k := range h.Info {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			extra = append(extra, k+" "+h.Info[k])
		}
		if len(extra) > 0 {
			fmt.Fprintf(stdout, "       %-14s %s\n", "", strings.Join(extra, ", "))
		}
	}
	return nil
}
