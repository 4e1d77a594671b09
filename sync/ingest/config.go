package ingest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/internal/mqttc"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Config is the ingester's configuration. A zero duration or size means the default shown; a
// negative one is an error.
type Config struct {
	// Broker is the MQTT broker: tcp://host:1883, or ssl://host:8883 (also tls://, mqtts://).
	Broker string
	// ClientID is fixed; default "kaoqin-ingest". Several ingesters need distinct IDs.
	ClientID string
	// Username and Password log in to the broker; CAFile, CertFile, KeyFile and ServerName set up
	// TLS as for the agent.
	Username   string
	Password   string
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
	// CleanSession drops what the broker queued for the ingester while it was away. By default
	// the session is persistent: events published while the ingester was down are delivered when
	// it comes back (as far as the broker's queue limits allow; agents resend the rest).
	CleanSession bool

	// DB is the ingester's store: the path of its own bbolt file, or the URL of a PostgreSQL
	// database (postgres://user@host/db?sslmode=...), which several ingesters of one ShareGroup
	// share (docs/central.md). The schema is created and migrated at start.
	DB string
	// DeviceKeysDir holds one PEM public key per device (a device's device.pub, renamed):
	// <institution>/<device>.pub pins the device to its institution; <device>.pub at the top
	// registers it under the institution of its first message. Batches of a device without a key
	// are refused. The directory is read again when an unknown device appears.
	DeviceKeysDir string
	// CentralKeyFile is the central private key (PEM, from `kaoqin keygen`), which signs
	// datasets and commands. Agents hold the matching public key.
	CentralKeyFile string
	// DatasetDir holds the published datasets, <DatasetDir>/<dataset>/<version>, written by
	// Publish. The ingester sends the highest version of each to every device whose state
	// reports an older one.
	DatasetDir string
	// EvidenceDir is where the photos the devices send (up/evidence) are kept,
	// <EvidenceDir>/<sha256[:2]>/<sha256>.jpg, each acknowledged to its device (down/evack) once
	// durable; default <DatasetDir>/evidence. Without either, photos are refused unacknowledged.
	EvidenceDir string
	// Socket is the unix socket on which a running ingester serves its status and takes reload
	// requests; default DB + ".sock" for a bbolt file, the temporary directory's
	// kaoqin-ingest-<ClientID>.sock for PostgreSQL.
	Socket string

	// ShareGroup, if set, subscribes with MQTT shared subscriptions ($share/{group}/...), so
	// that several consumers split the load. Members of a group must share one event store (the
	// broker hands each message to one member): a PostgreSQL database. A bbolt file belongs to
	// one process, so with it use one member per group, or split devices with Institutions.
	ShareGroup string
	// Institutions limits the ingester to these institution codes; empty means all.
	Institutions []string

	// GapTimeout is how long a gap in a device's events may stay unfilled before the ingester
	// asks the device to resync; the request is repeated with doubling intervals. Default 5s.
	GapTimeout time.Duration
	// ResendInterval is how often a dataset is sent again to a device that still reports an
	// older version. Default 2m.
	ResendInterval time.Duration
	// ChunkSize is the size of dataset chunks. Default 64 KiB.
	ChunkSize int
	// AllSignatures checks every record's signature, not only each batch's last (which through
	// the hash links already authenticates the batch).
	AllSignatures bool

	ConnectTimeout time.Duration // default 10s
	KeepAlive      time.Duration // whole seconds; default 30s
	PingTimeout    time.Duration // default 10s
	WriteTimeout   time.Duration // default 10s
	BackoffMin     time.Duration // default 1s
	BackoffMax     time.Duration // default 1m

	// MangleAck, if set, replaces each ack the ingester is about to send with the acks it
	// returns (none to lose it, several to duplicate or reorder it). It exists for fault tests
	// of the agent; leave it nil.
	MangleAck func(device string, a wire.Ack) []wire.Ack
}

// Defaults.
const (
	DefaultClientID       = "kaoqin-ingest"
	DefaultGapTimeout     = 5 * time.Second
	DefaultResendInterval = 2 * time.Minute
	DefaultChunkSize      = 64 << 10
)

func (c Config) withDefaults() Config {
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Socket == "" && isPostgres(c.DB) {
		c.Socket = filepath.Join(os.TempDir(), "kaoqin-ingest-"+c.ClientID+".sock")
	} else if c.Socket == "" && c.DB != "" {
		c.Socket = c.DB + ".sock"
	}
	if c.EvidenceDir == "" && c.DatasetDir != "" {
		c.EvidenceDir = filepath.Join(c.DatasetDir, "evidence")
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	def(&c.GapTimeout, DefaultGapTimeout)
	def(&c.ResendInterval, DefaultResendInterval)
	def(&c.ConnectTimeout, 10*time.Second)
	def(&c.KeepAlive, 30*time.Second)
	def(&c.PingTimeout, 10*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.BackoffMin, time.Second)
	def(&c.BackoffMax, max(time.Minute, c.BackoffMin))
	return c
}

// Validate checks the configuration for Run without connecting or opening anything: the broker
// URL, the files and directories, the keys, sizes and durations. It lists every problem.
func (c Config) Validate() error {
	errs := c.check(true)
	if len(errs) > 0 {
		return fmt.Errorf("ingest: config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) check(run bool) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if run {
		if c.Broker == "" {
			bad("broker is empty")
		} else if err := mqttc.CheckBroker(c.Broker); err != nil {
			bad("broker: %v", err)
		}
		if c.DB == "" {
			bad("db is empty")
		}
		if c.DeviceKeysDir == "" {
			bad("device_keys_dir is empty")
		} else if fi, err := os.Stat(c.DeviceKeysDir); err != nil || !fi.IsDir() {
			bad("device_keys_dir: %s is not a directory", c.DeviceKeysDir)
		}
		if err := c.tls().Check(); err != nil {
			bad("tls: %v", err)
		}
		if c.Password != "" && c.Username == "" {
			bad("password without a username")
		}
		if c.ShareGroup != "" {
			if err := wire.CheckName(c.ShareGroup); err != nil {
				bad("share_group: %v", err)
			}
		}
		for _, in := range c.Institutions {
			if err := wire.CheckName(in); err != nil {
				bad("institutions: %v", err)
			}
		}
	}
	if c.CentralKeyFile == "" {
		bad("central_key_file is empty: datasets and commands are signed with the central key")
	} else if _, err := ledger.LoadPrivateKey(c.CentralKeyFile); err != nil {
		bad("central_key_file: %v", err)
	}
	if c.DatasetDir == "" {
		bad("dataset_dir is empty")
	}
	if c.ChunkSize < 0 || c.ChunkSize > wire.MaxChunkSize {
		bad("chunk_size: %d outside 1..%d (0 for the default)", c.ChunkSize, wire.MaxChunkSize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"gap_timeout", c.GapTimeout}, {"resend_interval", c.ResendInterval}, {"connect_timeout", c.ConnectTimeout},
		{"keepalive", c.KeepAlive}, {"ping_timeout", c.PingTimeout}, {"write_timeout", c.WriteTimeout},
		{"backoff_min", c.BackoffMin}, {"backoff_max", c.BackoffMax}} {
		if d.v < 0 {
			bad("%s: %v is negative", d.name, d.v)
		}
	}
	if c.KeepAlive != 0 && c.KeepAlive < time.Second {
		bad("keepalive: %v, want at least 1s", c.KeepAlive)
	}
	return errs
}

func (c Config) tls() mqttc.TLS {
	return mqttc.TLS{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, ServerName: c.ServerName}
}
