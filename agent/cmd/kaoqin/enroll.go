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
		"Usage: kaoqin enroll finger --trainee ID [--finger right-index] [--source NAME] [--config FILE]", stdout); err != nil {
		return err
	}
	fs := newFlags("enroll finger", "enroll finger --trainee ID [--finger NAME] [--source NAME]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	trainee := fs.String("trainee", "", "trainee ID (required)")
	finger := fs.String("finger", "right-index", "which finger")
	source := fs.String("source", "", "fingerprint reader (default: the first one)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *trainee == "" {
		return usagef("enroll finger: --trainee is required")
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	e, err := c.Enroll(ctx, api.EnrollRequest{Source: *source, Trainee: *trainee, Finger: *finger}, func(msg string) {
		fmt.Fprintln(stdout, msg)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled %s (%s), template of %d bytes recorded as seq %d for the central system\n", e.Trainee, e.Detail, len(e.Data), e.Seq)
	return nil
}
