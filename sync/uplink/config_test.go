package uplink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Each limit is allowed at its edge and refused one past it, naming the key.
func TestConfigEdges(t *testing.T) {
	env := synckit.NewEnv(t)
	good := env.UplinkConfig(device, "tcp://127.0.0.1:1883")
	tests := []struct {
		name string
		set  func(c *uplink.Config)
		want string // "" when valid
	}{
		{"window at the maximum", func(c *uplink.Config) { c.Window = 1024 }, ""},
		{"window over", func(c *uplink.Config) { c.Window = 1025 }, "window"},
		{"batch_size at the maximum", func(c *uplink.Config) { c.BatchSize = wire.MaxBatchEvents }, ""},
		{"batch_size over", func(c *uplink.Config) { c.BatchSize = wire.MaxBatchEvents + 1 }, "batch_size"},
		{"batch_size negative", func(c *uplink.Config) { c.BatchSize = -1 }, "batch_size"},
		{"batch_bytes at the maximum", func(c *uplink.Config) { c.BatchBytes = wire.MaxPayload / 2 }, ""},
		{"batch_bytes over", func(c *uplink.Config) { c.BatchBytes = wire.MaxPayload/2 + 1 }, "batch_bytes"},
		{"client_id of 64", func(c *uplink.Config) { c.ClientID = strings.Repeat("k", 64) }, ""},
		{"client_id of 65", func(c *uplink.Config) { c.ClientID = strings.Repeat("k", 65) }, "client_id"},
		{"keepalive 1s", func(c *uplink.Config) { c.KeepAlive = time.Second }, ""},
		{"keepalive under 1s", func(c *uplink.Config) { c.KeepAlive = time.Second - 1 }, "keepalive"},
		{"max_ack_timeout equal", func(c *uplink.Config) { c.AckTimeout, c.MaxAckTimeout = time.Minute, time.Minute }, ""},
		{"max_ack_timeout below", func(c *uplink.Config) { c.AckTimeout, c.MaxAckTimeout = time.Minute, time.Minute-1 }, "max_ack_timeout"},
		{"max_ack_timeout unset", func(c *uplink.Config) { c.AckTimeout, c.MaxAckTimeout = time.Hour, 0 }, ""},
		{"backoff_max equal", func(c *uplink.Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Second }, ""},
		{"backoff_max below", func(c *uplink.Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Second-1 }, "backoff_max"},
		{"backoff_max unset", func(c *uplink.Config) { c.BackoffMin, c.BackoffMax = time.Hour, 0 }, ""},
		{"no broker", func(c *uplink.Config) { c.Broker = "" }, "broker: required"},
		{"username and password", func(c *uplink.Config) { c.Username, c.Password = "u", "p" }, ""},
	}
	for _, tc := range tests {
		c := good
		tc.set(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: got %v, want valid", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	neg := good
	neg.AckTimeout, neg.MaxAckTimeout, neg.ConnectTimeout, neg.PingTimeout, neg.WriteTimeout = -1, -1, -1, -1, -1
	neg.BackoffMin, neg.BackoffMax, neg.StateInterval, neg.FlushTimeout, neg.DatasetTimeout = -1, -1, -1, -1, -1
	err := neg.Validate()
	for _, d := range []string{"ack_timeout", "max_ack_timeout", "connect_timeout", "ping_timeout", "write_timeout",
		"backoff_min", "backoff_max", "state_interval", "flush_timeout", "dataset_timeout"} {
		if err == nil || !strings.Contains(err.Error(), d+": -1ns is negative") {
			t.Errorf("negative %s: got %v, want it named", d, err)
		}
	}
}

// Zero fields take their defaults; set fields are kept; the longest waits are never below the
// shortest.
func TestConfigDefaults(t *testing.T) {
	d := uplink.WithDefaults(uplink.Config{Device: "r101"})
	if d.ClientID != "kaoqin-r101" || d.Window != uplink.DefaultWindow || d.BatchSize != uplink.DefaultBatchSize ||
		d.BatchBytes != uplink.DefaultBatchBytes || d.AckTimeout != uplink.DefaultAckTimeout ||
		d.MaxAckTimeout != uplink.DefaultMaxAckTimeout || d.ConnectTimeout != uplink.DefaultConnectTimeout ||
		d.KeepAlive != uplink.DefaultKeepAlive || d.PingTimeout != uplink.DefaultPingTimeout ||
		d.WriteTimeout != uplink.DefaultWriteTimeout || d.BackoffMin != uplink.DefaultBackoffMin ||
		d.BackoffMax != uplink.DefaultBackoffMax || d.StateInterval != uplink.DefaultStateInterval ||
		d.FlushTimeout != uplink.DefaultFlushTimeout || d.DatasetTimeout != uplink.DefaultDatasetTimeout {
		t.Errorf("defaults: got %+v", d)
	}
	k := uplink.WithDefaults(uplink.Config{ClientID: "c", Window: 1, BatchSize: 2, BatchBytes: 3, AckTimeout: 10 * time.Minute,
		ConnectTimeout: 5, KeepAlive: 6, PingTimeout: 7, WriteTimeout: 8, BackoffMin: 5 * time.Minute,
		StateInterval: 11, FlushTimeout: 12, DatasetTimeout: 13})
	if k.ClientID != "c" || k.Window != 1 || k.BatchSize != 2 || k.BatchBytes != 3 || k.AckTimeout != 10*time.Minute ||
		k.ConnectTimeout != 5 || k.KeepAlive != 6 || k.PingTimeout != 7 || k.WriteTimeout != 8 ||
		k.BackoffMin != 5*time.Minute || k.StateInterval != 11 || k.FlushTimeout != 12 || k.DatasetTimeout != 13 {
		t.Errorf("set fields: got %+v, want them kept", k)
	}
	if k.MaxAckTimeout != 10*time.Minute || k.BackoffMax != 5*time.Minute {
		t.Errorf("defaulted maxima under longer minima: got max_ack_timeout %v backoff_max %v, want 10m and 5m", k.MaxAckTimeout, k.BackoffMax)
	}
}
