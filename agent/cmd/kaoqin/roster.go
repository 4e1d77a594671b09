package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/ops"
)

func cmdRoster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "roster", []string{"import", "show"},
		"Usage: kaoqin roster import BUNDLE --operator NAME [--config FILE]\n       kaoqin roster show [--config FILE] [--json]\n\nBUNDLE is a dataset (a roster, certificate serial blocks) signed by the central system for this box:\nkaoqin ingest publish --out BUNDLE --device NAME. Nothing else is applied.", stdout)
	if err != nil {
		return err
	}
	fs := newFlags("roster "+sub, "roster "+sub+" [flags]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	asJSON := fs.Bool("json", false, "print JSON (show)")
	operator := operatorFlag(fs, "administration (import; not needed for the box's first roster)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	mode := readOnly
	if sub == "import" {
		mode = writable
	}
	l, err := openLedger(*cfgPath, "", mode)
	if err != nil {
		return err
	}
	defer l.Close()
	switch sub {
	case "import":
		if fs.NArg() != 1 {
			return usagef("roster import: want one signed bundle file")
		}
		raw, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		cred, err := credentials(*operator, envSecret, "secret of", stderr)
		if err != nil {
			return err
		}
		res, err := l.ImportDataset(ctx, ops.ImportRequest{Credentials: cred, Bundle: raw})
		if err != nil {
			return fmt.Errorf("dataset refused; what is active stays: %w", err)
		}
		if sum := res.Roster; sum != nil {
			fmt.Fprintf(stdout, "roster version %d active (recorded as seq %d): %d institutions, %d programmes, %d sessions, %d trainees, %d vouchers, %d operators\n",
				sum.Version, res.Seq, len(sum.Institutions), len(sum.Programmes), len(sum.Sessions), len(sum.Trainees), sum.Vouchers, sum.Operators)
			return nil
		}
		fmt.Fprintf(stdout, "%s version %d active (recorded as seq %d)\n", res.Dataset, res.Version, res.Seq)
		return nil
	default:
		sum, err := l.Roster(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, sum)
		}
		printRoster(stdout, sum)
		return nil
	}
}

func printRoster(w io.Writer, s ops.RosterSummary) {
	fmt.Fprintf(w, "roster version %d (%s, applied %s from %s)\n\n", s.Version, s.SHA256[:min(12, len(s.SHA256))], s.Applied.Format(time.DateTime), s.From)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTITUTION\tCITY\tCOUNTY\tNAME\tVOUCHERS\tRETIRED")
	for _, in := range s.Institutions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\n", in.Code, in.City, in.County, in.Name, in.AcceptsVouchers, in.Retired)
	}
	fmt.Fprintln(tw, "\nSESSION\tCLASS\tPROGRAMME\tSTART\tEND\tDEVICES")
	for _, se := range s.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", se.ID, se.Class, se.Programme, se.Start.Format("2006-01-02 15:04"), se.End.Format("15:04"), strings.Join(se.Devices, ","))
	}
	fmt.Fprintln(tw, "\nTRAINEE\tNAME\tID NUMBER\tCLASSES\tFINGERPRINTS")
	for _, t := range s.Trainees {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", t.ID, t.Name, t.IDMasked, strings.Join(t.Classes, ","), t.Fingerprints)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d vouchers\n", s.Vouchers)
}
