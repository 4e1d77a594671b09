package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent"
)

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := parse(newFlags("version", "version", stderr), args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "kaoqin", agent.Version)
	return nil
}
