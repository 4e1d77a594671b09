package ingest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Each limit is allowed at its edge and refused one past it, naming the key.
func TestConfigEdges(t *testing.T) {
	env := synckit.NewEnv(t)
	good := env.IngestConfig("central", "tcp://127.0.0.1:1883")
	tests := []struct {
		name string
		set  func(c *ingest.Config)
		want string // "" when valid
	}{
		{"chunk_size at the maximum", func(c *ingest.Config) { c.ChunkSize = wire.MaxChunkSize }, ""},
		{"chunk_size 0, the default", func(c *ingest.Config) { c.ChunkSize = 0 }, ""},
		{"every duration 0, the defaults", func(c *ingest.Config) {
			c.GapTimeout, c.ResendInterval, c.ConnectTimeout, c.KeepAlive = 0, 0, 0, 0
			c.PingTimeout, c.WriteTimeout, c.BackoffMin, c.BackoffMax = 0, 0, 0, 0
		}, ""},
		{"chunk_size over", func(c *ingest.Config) { c.ChunkSize = wire.MaxChunkSize + 1 }, "chunk_size"},
		{"chunk_size negative", func(c *ingest.Config) { c.ChunkSize = -1 }, "chunk_size"},
		{"keepalive 1s", func(c *ingest.Config) { c.KeepAlive = time.Second }, ""},
		{"keepalive under 1s", func(c *ingest.Config) { c.KeepAlive = time.Second - 1 }, "keepalive"},
		{"institutions", func(c *ingest.Config) { c.Institutions = []string{"0001", "a/b"} }, "institutions"},
		{"institutions fine", func(c *ingest.Config) { c.Institutions = []string{"0001", "0002"} }, ""},
		{"password alone", func(c *ingest.Config) { c.Password = "x" }, "password without a username"},
		{"username and password", func(c *ingest.Config) { c.Username, c.Password = "u", "x" }, ""},
		{"no dataset_dir", func(c *ingest.Config) { c.DatasetDir = "" }, "dataset_dir is empty"},
		{"no central key", func(c *ingest.Config) { c.CentralKeyFile = "" }, "central_key_file is empty"},
		{"no broker", func(c *ingest.Config) { c.Broker = "" }, "broker is empty"},
		{"no device_keys_dir", func(c *ingest.Config) { c.DeviceKeysDir = "" }, "device_keys_dir is empty"},
		{"tls key without certificate", func(c *ingest.Config) { c.KeyFile = env.CentralKey }, "tls"},
		{"share group fine", func(c *ingest.Config) { c.ShareGroup = "central" }, ""},
	}
	for _, d := range []string{"gap_timeout", "resend_interval", "connect_timeout", "keepalive", "ping_timeout",
		"write_timeout", "backoff_min", "backoff_max"} {
		tests = append(tests, struct {
			name string
			set  func(c *ingest.Config)
			want string
		}{d + " negative", func(c *ingest.Config) {
			*map[string]*time.Duration{"gap_timeout": &c.GapTimeout, "resend_interval": &c.ResendInterval,
				"connect_timeout": &c.ConnectTimeout, "keepalive": &c.KeepAlive, "ping_timeout": &c.PingTimeout,
				"write_timeout": &c.WriteTimeout, "backoff_min": &c.BackoffMin, "backoff_max": &c.BackoffMax}[d] = -time.Second
		}, d})
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
}

// Zero fields take their defaults; set fields are kept.
func TestConfigDefaults(t *testing.T) {
	d := ingest.WithDefaults(ingest.Config{DB: "/var/lib/kaoqin-ingest/central.db"})
	if d.ClientID != ingest.DefaultClientID || d.Socket != "/var/lib/kaoqin-ingest/central.db.sock" ||
		d.ChunkSize != ingest.DefaultChunkSize || d.GapTimeout != ingest.DefaultGapTimeout ||
		d.ResendInterval != ingest.DefaultResendInterval || d.ConnectTimeout != 10*time.Second ||
		d.KeepAlive != 30*time.Second || d.PingTimeout != 10*time.Second || d.WriteTimeout != 10*time.Second ||
		d.BackoffMin != time.Second || d.BackoffMax != time.Minute {
		t.Errorf("defaults: got %+v", d)
	}
	set := ingest.Config{ClientID: "c", Socket: "/s", ChunkSize: 7, GapTimeout: 1, ResendInterval: 2, ConnectTimeout: 3,
		KeepAlive: 4, PingTimeout: 5, WriteTimeout: 6, BackoffMin: 2 * time.Minute, BackoffMax: 0}
	k := ingest.WithDefaults(set)
	if k.ClientID != "c" || k.Socket != "/s" || k.ChunkSize != 7 || k.GapTimeout != 1 || k.ResendInterval != 2 ||
		k.ConnectTimeout != 3 || k.KeepAlive != 4 || k.PingTimeout != 5 || k.WriteTimeout != 6 || k.BackoffMin != 2*time.Minute {
		t.Errorf("set fields: got %+v, want them kept", k)
	}
	if k.BackoffMax != 2*time.Minute {
		t.Errorf("backoff_max defaulted under a backoff_min of 2m: got %v, want 2m", k.BackoffMax)
	}
	if s := ingest.WithDefaults(ingest.Config{}).Socket; s != "" {
		t.Errorf("socket without a db: got %q, want empty", s)
	}
	// A PostgreSQL store has no file to put the socket beside: the socket goes to the temporary
	// directory, named by the client ID; a socket set is kept.
	pg := ingest.Config{DB: "postgres://kaoqin@db.example/kaoqin", ClientID: "c1"}
	if s, want := ingest.WithDefaults(pg).Socket, filepath.Join(os.TempDir(), "kaoqin-ingest-c1.sock"); s != want {
		t.Errorf("socket of a PostgreSQL ingester: got %q, want %q", s, want)
	}
	// The photos go beside the datasets unless set.
	if e := ingest.WithDefaults(ingest.Config{DatasetDir: "/srv/kaoqin/datasets"}).EvidenceDir; e != "/srv/kaoqin/datasets/evidence" {
		t.Errorf("evidence dir: got %q, want /srv/kaoqin/datasets/evidence", e)
	}
	if e := ingest.WithDefaults(ingest.Config{DatasetDir: "/srv/kaoqin/datasets", EvidenceDir: "/srv/photos"}).EvidenceDir; e != "/srv/photos" {
		t.Errorf("evidence dir set: got %q, want /srv/photos kept", e)
	}
	if e := ingest.WithDefaults(ingest.Config{}).EvidenceDir; e != "" {
		t.Errorf("evidence dir without a dataset dir: got %q, want empty", e)
	}
	pg.Socket = "/run/kaoqin/c1.sock"
	if s := ingest.WithDefaults(pg).Socket; s != pg.Socket {
		t.Errorf("socket set for a PostgreSQL ingester: got %q, want %q kept", s, pg.Socket)
	}
}
