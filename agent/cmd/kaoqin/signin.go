package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

func cmdSignin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("signin", "signin --trainee ID --operator NAME --reason TEXT [--confirm-operator NAME] [--out]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	trainee := fs.String("trainee", "", "trainee ID (required)")
	operator := operatorFlag(fs, "teaching")
	confirm := fs.String("confirm-operator", "", "a second operator who confirms, above the session's limit of manual sign-ins (their secret: prompt, or "+envConfirmSecret+")")
	reason := fs.String("reason", "", "why the trainee could not sign in at a device (required)")
	out := fs.Bool("out", false, "record a sign-out rather than a sign-in")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *trainee == "" || *reason == "" {
		return usagef("signin: --trainee and --reason are required (a manual sign-in is an override; --operator names who makes it)")
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	cred, err := credentials(*operator, envSecret, "secret of", stderr)
	if err != nil {
		return err
	}
	conf, err := credentials(*confirm, envConfirmSecret, "secret of the confirming operator", stderr)
	if err != nil {
		return err
	}
	req := api.SignInRequest{Trainee: *trainee, Operator: cred.Operator, Secret: cred.Secret, Reason: *reason,
		ConfirmOperator: conf.Operator, ConfirmSecret: conf.Secret}
	if *out {
		req.Intent = drivers.SignOut
	}
	o, err := c.SignIn(ctx, req)
	if err != nil {
		return err
	}
	e := o.Event
	if e.Kind == ledger.Refusal {
		// The refusal's reason explains it, never the operator's own words (which are the note).
		why := label.Reason(e.Reason).Coded(label.ZH) + "; " + label.Reason(e.Reason).EN
		if e.Note != "" && e.Note != *reason {
			why += ": " + e.Note
		}
		return fmt.Errorf("refused and recorded as seq %d: %s", e.Seq, why)
	}
	fmt.Fprintf(stdout, "recorded seq %d: %s %s %s session %s, flags %v\n", e.Seq, e.Kind, e.Trainee, e.IDMasked, e.Session, e.Flags)
	return nil
}
