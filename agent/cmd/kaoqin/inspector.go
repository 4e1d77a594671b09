package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/inspect"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
)

const inspectorUsage = `Usage: kaoqin inspector code [--config FILE]      a one-time login code for the inspector's pages (daemon running, no accounts)
       kaoqin inspector hash < password           an argon2id hash of a password (for an accounts file)
       kaoqin inspector accounts FILE [--config]  set the inspector accounts (JSON: [{"name","role","hash"}]; daemon stopped)`

func cmdInspector(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "inspector", []string{"code", "hash", "accounts"}, inspectorUsage, stdout)
	if err != nil {
		return err
	}
	fs := newFlags("inspector "+sub, "inspector "+sub, stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	switch sub {
	case "code":
		c, err := dialDaemon(*cfgPath)
		if err != nil {
			return err
		}
		code, err := c.InspectorCode(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "一次性口令 one-time code: %s\n有效至 valid until %s (单次有效 single use)\n", code.Code, code.Expires.Format("2006-01-02 15:04:05"))
		if code.Listen != "" {
			fmt.Fprintf(stdout, "检查页面 inspector's pages: http://%s/\n", code.Listen)
		}
		return nil
	case "hash":
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return err
		}
		pw := strings.TrimRight(line, "\r\n")
		if len(pw) < 8 {
			return usagef("inspector hash: the password on standard input must be at least 8 characters")
		}
		h, err := inspect.HashPassword(pw)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, h)
		return nil
	}
	// accounts FILE
	if fs.NArg() != 1 {
		return usagef("inspector accounts: want one FILE\n%s", inspectorUsage)
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var list []store.Inspector
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return usagef("inspector accounts: %s: %v", fs.Arg(0), err)
	}
	for i, a := range list {
		if _, err := inspect.CheckPassword(a.Hash, ""); err != nil {
			return usagef("inspector accounts: account %d (%s): %v", i+1, a.Name, err)
		}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	key, err := ledger.LoadPrivateKey(cfg.Key)
	if err != nil {
		return err
	}
	sc := cfg.LedgerConfig()
	sc.Key = key
	st, err := store.Open(sc, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("%w (inspector accounts are set with the daemon stopped)", err)
	}
	defer st.Close()
	if err := st.SetInspectors(list, store.InspectorsInfo{From: "local"}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d inspector accounts set; one-time codes are off while accounts exist\n", len(list))
	return nil
}
