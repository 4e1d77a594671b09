package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/store"
)

func loadConfig(path string) (*agent.Config, error) {
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		var ce *agent.ConfigError
		var ces agent.ConfigErrors
		if errors.As(err, &ce) || errors.As(err, &ces) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return cfg, nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// ledgerAccess is the ledger as the CLI reads and writes it: through the running daemon's socket
// (*api.Client) or, with the daemon stopped, on the file itself (*ops.Service). The commands do
// not care which.
type ledgerAccess interface {
	Status(ctx context.Context) (ops.Status, error)
	Events(ctx context.Context, f ledger.Filter, from uint64, fn func(*ledger.Event) error) error
	Roster(ctx context.Context) (ops.RosterSummary, error)
	ImportDataset(ctx context.Context, req ops.ImportRequest) (ops.ImportResult, error)
	NextCert(ctx context.Context, req ops.CertRequest) (cert.Serial, error)
	Snapshot(ctx context.Context, w io.Writer) (int64, error)
}

var (
	_ ledgerAccess = (*api.Client)(nil)
	_ ledgerAccess = (*ops.Service)(nil)
)

// access says how a command may open the ledger when the daemon is stopped.
type access int

const (
	readOnly access = iota // the file, read-only
	writable               // the file, with the device key, for writes (roster import, cert next)
)

// ledgerOf is a command's way to the ledger.
type ledgerOf struct {
	ledgerAccess
	// From says what is being read, for the user: the running daemon's ledger or a file.
	From  string
	close func()
}

// Close releases the file, if one was opened.
func (l *ledgerOf) Close() {
	if l.close != nil {
		l.close()
	}
}

// openLedger connects to the running daemon of the config at cfgPath, or opens its ledger file
// when the daemon is stopped; db, if set, names a file directly (an inspector's copy), read-only.
func openLedger(cfgPath, db string, mode access) (*ledgerOf, error) {
	if db != "" {
		st, err := store.OpenReadOnly(db)
		if err != nil {
			return nil, err
		}
		return &ledgerOf{ledgerAccess: ops.New(st, ""), From: db, close: func() { st.Close() }}, nil
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	c, err := api.Dial(cfg.Socket)
	if err == nil {
		return &ledgerOf{ledgerAccess: c, From: "the running daemon's ledger"}, nil
	}
	if !errors.Is(err, api.ErrNoDaemon) {
		return nil, err
	}
	var st *store.Store
	if mode == writable {
		key, err := ledger.LoadPrivateKey(cfg.Key)
		if err != nil {
			return nil, err
		}
		sc := cfg.LedgerConfig()
		sc.Key = key
		st, err = store.Open(sc, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, err
		}
	} else if st, err = store.OpenReadOnly(cfg.DBPath()); err != nil {
		return nil, err
	}
	svc := ops.New(st, cfg.Institution)
	if svc.Trust, err = cfg.OpsTrust(); err != nil {
		st.Close()
		return nil, usageError{err}
	}
	return &ledgerOf{ledgerAccess: svc, From: cfg.DBPath(), close: func() { st.Close() }}, nil
}

// dialDaemon connects to the running daemon, for what only it can do (sign-ins, enrolment).
func dialDaemon(cfgPath string) (*api.Client, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	c, err := api.Dial(cfg.Socket)
	if errors.Is(err, api.ErrNoDaemon) {
		return nil, fmt.Errorf("%w (start it: systemctl start kaoqin, or kaoqin run --config %s)", err, cfgPath)
	}
	return c, err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
