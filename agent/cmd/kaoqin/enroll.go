package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
)

func cmdEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if _, err := pickSub(args, "enroll", []string{"finger"},
		"Usage: kaoqin enroll finger --operator NAME --trainee ID --id-number NUMBER [--finger right-index] [--source NAME] [--config FILE]", stdout); err != nil {
		return err
	}
	fs := newFlags("enroll finger", "enroll finger --operator NAME --trainee ID --id-number NUMBER [--finger NAME] [--source NAME]", stderr)
	operator := operatorFlag(fs, "registration")
	idNumber := fs.String("id-number", "", "the trainee's resident ID number, read from their ID card (required: it must be the roster's)")
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	trainee := fs.String("trainee", "", "trainee ID (required)")
	finger := fs.String("finger", "right-index", "which finger")
	source := fs.String("source", "", "fingerprint reader (default: the first one)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *trainee == "" || *idNumber == "" {
		return usagef("enroll finger: --trainee and --id-number are required (the identity check: the ID number on the trainee's card)")
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	cred, err := credentials(*operator, envSecret, "secret of", stderr)
	if err != nil {
		return err
	}
	e, err := c.Enroll(ctx, api.EnrollRequest{Source: *source, Trainee: *trainee, Finger: *finger,
		Operator: cred.Operator, Secret: cred.Secret, IDNumber: *idNumber}, func(msg string) {
		fmt.Fprintln(stdout, msg)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled %s (%s), template of %d bytes recorded as seq %d for the central system\n", e.Trainee, e.Detail, len(e.Data), e.Seq)
	return nil
}
