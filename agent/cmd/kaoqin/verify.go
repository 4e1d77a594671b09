package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
)

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "verify --pubkey FILE [--db FILE | --config FILE] [--all-signatures]", stderr)
	db := fs.String("db", "", "ledger file (a copy, or the daemon's while it is stopped); default: the config's ledger, snapshotted through the daemon when it runs")
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file, when --db is not given")
	pubPath := fs.String("pubkey", "", "the device's public key, PEM (required: verification trusts nothing in the file)")
	all := fs.Bool("all-signatures", false, "also check every event's own signature (about 30 µs an event on two cores)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *pubPath == "" {
		return usagef("verify: --pubkey is required")
	}
	if *db == "" {
		tmp, err := os.CreateTemp("", "kaoqin-verify-*.db")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		from, err := snapshot(ctx, *cfgPath, tmp.Name())
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "verifying a snapshot of %s\n", from)
		*db = tmp.Name()
	}
	pub, err := ledger.LoadPublicKey(*pubPath)
	if err != nil {
		return usageError{err}
	}
	st, err := store.OpenReadOnly(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	p := newProgress(stderr, "verifying")
	sum, err := st.Verify(pub, store.VerifyOptions{AllSignatures: *all, Progress: p.update})
	p.done()
	if err != nil {
		var prob *ledger.Problem
		if errors.As(err, &prob) {
			return fmt.Errorf("NOT INTACT: first bad event is seq %d: %v (events before it verified)", prob.Seq, prob.Err)
		}
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "intact: device %s epoch %d, %d events, head %x, verified in %v (%.0f events/s)\n",
		sum.Device, sum.Epoch, sum.Events, sum.Head[:8], el.Round(time.Millisecond), float64(sum.Events)/el.Seconds())
	return nil
}
