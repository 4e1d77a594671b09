package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ChildEnv names the environment variable that makes the test binary a consumer process: its
// value is the JSON of a ChildConfig. The kill tests start such children and SIGKILL them.
const ChildEnv = "KAOQIN_INGEST_CHILD"

// ChildConfig is what a child consumer runs with.
type ChildConfig struct {
	Broker, ClientID, DB, Socket, DeviceKeysDir, CentralKeyFile, DatasetDir, ShareGroup string
	GapTimeout                                                                          time.Duration
}

// runChild runs a consumer until SIGTERM (or SIGKILL) if the environment asks for one.
func runChild() bool {
	v := os.Getenv(ChildEnv)
	if v == "" {
		return false
	}
	var c ChildConfig
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	cfg := Config{Broker: c.Broker, ClientID: c.ClientID, DB: c.DB, Socket: c.Socket, DeviceKeysDir: c.DeviceKeysDir,
		CentralKeyFile: c.CentralKeyFile, DatasetDir: c.DatasetDir, ShareGroup: c.ShareGroup, GapTimeout: c.GapTimeout,
		ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second, PingTimeout: 2 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("client_id", c.ClientID)
	if err := Run(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}
