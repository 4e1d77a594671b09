package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ops"
)

func cmdCert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "cert", []string{"decode", "validate", "next"},
		"Usage: kaoqin cert decode SERIAL\n       kaoqin cert validate SERIAL\n       kaoqin cert next --operator NAME --institution CODE --category A|B|C --trainee ID --programme ID [--year YYYY] [--config FILE]", stdout)
	if err != nil {
		return err
	}
	switch sub {
	case "decode", "validate":
		if len(args) != 2 {
			return usagef("cert %s: want one serial", args[0])
		}
		sn, err := cert.Parse(args[1])
		if err != nil {
			return err
		}
		if args[0] == "validate" {
			// The box's date is what it trusts: a year far from it is refused, and an unsynchronised
			// clock is said.
			now := clock.Now()
			if _, err := cert.ValidateAt(args[1], now.Wall); err != nil {
				if !now.Synced {
					err = fmt.Errorf("%w (this box's clock is not synchronised)", err)
				}
				return err
			}
			fmt.Fprintf(stdout, "%s: valid\n", sn)
			return nil
		}
		fmt.Fprintf(stdout, "serial      %s\ncity        %s %s\ncounty      %s (%s level)\ninstitution %s\nyear        %d\nsequence    %05d\ncategory    %s\n",
			sn, sn.City, cert.Cities[sn.City], sn.County, sn.Level(), sn.Institution, sn.Year, sn.Seq, sn.Category)
		return nil
	default:
		fs := newFlags("cert next", "cert next --operator NAME --institution CODE --category A|B|C --trainee ID --programme ID [--year YYYY]", stderr)
		operator := operatorFlag(fs, "administration")
		trainee := fs.String("trainee", "", "the trainee the certificate is for (required)")
		programme := fs.String("programme", "", "the programme the trainee finished (required)")
		cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
		inst := fs.String("institution", "", "4-digit institution code (required)")
		cat := fs.String("category", "", "A employment skills, B on-the-job upgrading, C entrepreneurship (required)")
		year := fs.Int("year", 0, "year of issue (default this year)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *inst == "" || *cat == "" || *trainee == "" || *programme == "" {
			return usagef("cert next: --institution, --category, --trainee and --programme are required")
		}
		cred, err := credentials(*operator, envSecret, "secret of", stderr)
		if err != nil {
			return err
		}
		l, err := openLedger(*cfgPath, "", writable)
		if err != nil {
			return err
		}
		defer l.Close()
		serial, err := l.NextCert(ctx, ops.CertRequest{Credentials: cred, Institution: *inst, Category: *cat, Year: *year, Trainee: *trainee, Programme: *programme})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, serial)
		return nil
	}
}
