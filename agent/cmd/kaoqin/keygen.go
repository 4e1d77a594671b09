package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

func cmdKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", "keygen --out DIR [--name device|central]", stderr)
	out := fs.String("out", "", "directory for NAME.key (private, 0600) and NAME.pub (required)")
	name := fs.String("name", "device", "key name: device for a box, central for the central system's dataset key")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("keygen: --out is required")
	}
	priv, pub, err := ledger.GenerateKeyFiles(*out, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key %s\npublic key  %s (give it to inspectors and the central system)\n", priv, pub)
	return nil
}
