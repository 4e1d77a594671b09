package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

func cmdSignin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("signin", "signin --trainee ID --operator NAME --reason TEXT [--out]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	trainee := fs.String("trainee", "", "trainee ID (required)")
	operator := fs.String("operator", "", "who makes the override (required)")
	reason := fs.String("reason", "", "why the trainee could not sign in at a device (required)")
	out := fs.Bool("out", false, "record a sign-out rather than a sign-in")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *trainee == "" || *operator == "" || *reason == "" {
		return usagef("signin: --trainee, --operator and --reason are all required (a manual sign-in is an override)")
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	req := api.SignInRequest{Trainee: *trainee, Operator: *operator, Reason: *reason}
	if *out {
		req.Intent = drivers.SignOut
	}
	o, err := c.SignIn(ctx, req)
	if err != nil {
		return err
	}
	e := o.Event
	if e.Kind == ledger.Refusal {
		return fmt.Errorf("refused (%s) and recorded as seq %d: %s", e.Reason, e.Seq, e.Note)
	}
	fmt.Fprintf(stdout, "recorded seq %d: %s %s %s session %s, flags %v\n", e.Seq, e.Kind, e.Trainee, e.IDMasked, e.Session, e.Flags)
	return nil
}
