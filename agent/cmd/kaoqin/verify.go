package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/wire"
)

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "verify --pubkey FILE [--db FILE | --config FILE] [--all-signatures] [--central-key FILE] | verify --bundle FILE [--pubkey FILE] [--central-key FILE] [--lang zh|en]", stderr)
	bundle := fs.String("bundle", "", "check a bundle from `kaoqin export --bundle` (offline, on any machine) instead of a ledger")
	langFlag := fs.String("lang", "zh", "language of the bundle check's report: zh or en")
	db := fs.String("db", "", "ledger file (a copy, or the daemon's while it is stopped); default: the config's ledger, snapshotted through the daemon when it runs")
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file, when --db is not given")
	pubPath := fs.String("pubkey", "", "the device's public key, PEM (required: verification trusts nothing in the file)")
	all := fs.Bool("all-signatures", false, "also check every event's own signature (about 30 µs an event on two cores)")
	centralPath := fs.String("central-key", "", "the central system's public key, PEM: also check the signature of the receipt the ledger keeps, and of every time anchor taken from the central system's clock")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *bundle != "" {
		return verifyBundle(*bundle, *pubPath, *centralPath, *langFlag, stdout, stderr)
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
		if errors.Is(err, store.ErrLocked) || errors.Is(err, os.ErrNotExist) {
			return err
		}
		return damaged(*db, pub, err)
	}
	defer st.Close()
	start := time.Now()
	p := newProgress(stderr, "verifying")
	sum, err := st.Verify(pub, store.VerifyOptions{AllSignatures: *all, Progress: p.update})
	p.done()
	if err != nil {
		var removed *store.RemovedAfterReceipt
		if errors.As(err, &removed) {
			return fmt.Errorf("NOT INTACT: %v", removed)
		}
		var prob *ledger.Problem
		if errors.As(err, &prob) {
			return fmt.Errorf("NOT INTACT: first bad event is seq %d: %v (events before it verified)", prob.Seq, prob.Err)
		}
		if errors.Is(err, store.ErrDamaged) {
			return damaged(*db, pub, err)
		}
		return err
	}
	el := time.Since(start)
	if err := checkKeptReceipt(sum.Receipt, *centralPath); err != nil {
		return err
	}
	anchors, err := checkCentralAnchors(st, *centralPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "intact: device %s epoch %d, %d events, verified in %v (%.0f events/s)\n",
		sum.Device, sum.Epoch, sum.Events, el.Round(time.Millisecond), float64(sum.Events)/el.Seconds())
	if anchors > 0 {
		fmt.Fprintf(stdout, "%d time anchors taken from the central system's clock, each backed by an acknowledgement signed by the central key\n", anchors)
	}
	return witnessed(stdout, sum, *centralPath)
}

// checkCentralAnchors checks, when the central key is given, every time_anchor that says it took
// the central system's clock (a box without NTP): its data must be an ack signed by the central
// key, of this device and epoch, acknowledging events before the anchor, and the anchor's wall
// time no earlier than the ack's and no later than the widest round trip after it. It returns how
// many there are.
func checkCentralAnchors(st *store.Store, centralPath string) (int, error) {
	if centralPath == "" {
		return 0, nil
	}
	central, err := ledger.LoadPublicKey(centralPath)
	if err != nil {
		return 0, usageError{err}
	}
	n := 0
	err = st.Scan(1, func(seq uint64, r ledger.Record) error {
		if !bytes.Contains(r, []byte(`"kind":"time_anchor"`)) {
			return nil
		}
		e, err := r.Event()
		if err != nil || e.Kind != ledger.TimeAnchor || len(e.Data) == 0 {
			return nil // the chain check reports an undecodable record
		}
		n++
		a, err := wire.DecodeAck(e.Data, central)
		switch {
		case err != nil:
		case a.Device != e.Device || a.Epoch != e.Epoch || a.AckedThrough >= e.Seq:
			err = fmt.Errorf("the acknowledgement is of %s epoch %d seq %d, not of events before it", a.Device, a.Epoch, a.AckedThrough)
		case e.Time.Wall.Before(a.Time) || e.Time.Wall.After(a.Time.Add(agent.MaxCentralRoundTrip)):
			err = fmt.Errorf("its time %s is not within %v after the central system's %s",
				e.Time.Wall.UTC().Format(time.RFC3339Nano), agent.MaxCentralRoundTrip, a.Time.UTC().Format(time.RFC3339Nano))
		}
		if err != nil {
			return fmt.Errorf("NOT INTACT: the time anchor at seq %d does not prove the central system's clock: %v", seq, err)
		}
		return nil
	})
	return n, err
}

// checkKeptReceipt verifies the kept receipt's signature with the central key, when one is given.
func checkKeptReceipt(rc *store.Receipt, centralPath string) error {
	if rc == nil || centralPath == "" {
		return nil
	}
	central, err := ledger.LoadPublicKey(centralPath)
	if err != nil {
		return usageError{err}
	}
	a, err := wire.DecodeAck(rc.Signed, central)
	if err == nil && (a.Device != rc.Device || a.Epoch != rc.Epoch || a.AckedThrough != rc.Seq || a.HashBytes() != rc.Hash) {
		err = errors.New("the signed acknowledgement names another seq or hash than the receipt kept beside it")
	}
	if err != nil {
		return fmt.Errorf("NOT INTACT: the kept receipt does not verify with the central key: %v", err)
	}
	return nil
}

// witnessed says what the central receipt proves and what no check on the box can know, and
// prints the full head for an inspector to write down and compare with the central system.
func witnessed(stdout io.Writer, sum store.Summary, centralPath string) error {
	rc := sum.Receipt
	switch {
	case rc == nil:
		fmt.Fprintf(stdout, "no central receipt: nothing on this box proves what the central system holds; events could have been removed from the end of the ledger\n")
	case rc.Epoch != sum.Epoch:
		fmt.Fprintf(stdout, "the central receipt is for epoch %d, not this ledger's: it proves nothing of this epoch\n", rc.Epoch)
	default:
		signed := "signature not checked (give --central-key)"
		if centralPath != "" {
			signed = "signed by the central key"
		}
		fmt.Fprintf(stdout, "central receipt: the central system acknowledged seq %d on %s (%s); the ledger holds that event unchanged\n",
			rc.Seq, rc.Time.UTC().Format(time.RFC3339), signed)
		if sum.Events > rc.Seq {
			fmt.Fprintf(stdout, "cannot know: the %d events after seq %d are not yet acknowledged; events recorded after the last receipt could have been removed\n", sum.Events-rc.Seq, rc.Seq)
		} else {
			fmt.Fprintf(stdout, "cannot know: events recorded after the last receipt (seq %d) could have been removed\n", rc.Seq)
		}
	}
	fmt.Fprintf(stdout, "head: seq %d hash %x\n(write the head down and compare it with the central system's record of this device)\n", sum.Events, sum.Head)
	return nil
}

// damaged reports a ledger file bbolt cannot read: what the raw bytes still prove, and where the
// damage is.
func damaged(path string, pub ed25519.PublicKey, cause error) error {
	sv, err := store.Salvage(path, pub)
	if err != nil {
		return fmt.Errorf("NOT INTACT: the file is damaged (%v), and unreadable: %w", cause, err)
	}
	if sv.Signed == 0 {
		return fmt.Errorf("NOT INTACT: the file is damaged (%v); no event signed by this key could be read from it", cause)
	}
	where := "after the last of them"
	if sv.BrokeAt > 0 {
		where = fmt.Sprintf("at seq %d (events signed by this key are found up to seq %d)", sv.BrokeAt, sv.Last)
	}
	return fmt.Errorf("NOT INTACT: the file is damaged (%v): %d events verify from the raw bytes (device %s epoch %d, seq 1-%d); the damage is %s",
		cause, len(sv.Records), sv.Device, sv.Epoch, len(sv.Records), where)
}

// verifyBundle checks a bundle offline and says what changed. Without --pubkey it checks the
// bundle against its own key, and says so.
func verifyBundle(path, pubPath, centralPath, langName string, stdout, stderr io.Writer) error {
	lang, err := label.ParseLang(langName)
	if err != nil {
		return usageError{err}
	}
	var opt export.VerifyOptions
	if centralPath != "" {
		central, err := ledger.LoadPublicKey(centralPath)
		if err != nil {
			return usageError{err}
		}
		opt.CheckReceipt = export.CheckReceipt(central)
	}
	if pubPath != "" {
		if opt.Key, err = ledger.LoadPublicKey(pubPath); err != nil {
			return usageError{err}
		}
	}
	var p *progress
	stage := ""
	opt.Progress = func(pr export.Progress) {
		if pr.Stage != stage {
			if p != nil {
				p.done()
			}
			stage, p = pr.Stage, newProgress(stderr, "checking "+pr.Stage)
		}
		p.update(uint64(max(pr.Done, 0)), uint64(max(pr.Total, 0)))
	}
	res, verr := export.VerifyFile(path, opt)
	if p != nil {
		p.done()
	}
	if res == nil {
		return verr
	}
	if err := res.Describe(stdout, lang); err != nil {
		return err
	}
	if verr != nil {
		return fmt.Errorf("NOT INTACT: %s: %d problems (listed above)", path, len(res.Problems))
	}
	return nil
}
