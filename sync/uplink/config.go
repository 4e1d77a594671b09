package uplink

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/sync/internal/mqttc"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// Config is the uplink's configuration. A zero duration or count means the default shown; a
// negative one is an error. The agent maps its TOML file onto it.
type Config struct {
	// Broker is the MQTT broker: tcp://host:1883, or ssl://host:8883 (also tls://, mqtts://) for TLS.
	Broker string
	// Institution and Device name the topics: kaoqin/v1/{Institution}/{Device}/... Device must be
	// the store's device.
	Institution string
	Device      string
	// ClientID is fixed per device; default "kaoqin-" + Device.
	ClientID string
	// Username and Password, if set, log in to the broker (mosquitto password_file).
	Username string
	Password string
	// TLS: CAFile verifies the broker (empty: the system roots); CertFile and KeyFile are the
	// client certificate, for brokers that require one; ServerName overrides the name checked.
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
	// CentralKeyFile is the central system's ed25519 public key (PEM), which signs datasets and
	// commands. Required.
	CentralKeyFile string

	// Window is how many batches may be published and not yet acknowledged (default 8), each of
	// at most BatchSize events (default 1024) and BatchBytes bytes of records before base64
	// (default 512 KiB). Throughput is about Window x BatchSize per round trip (the central's
	// commit plus the agent's); on a slow link, lower BatchBytes so that one batch crosses it well
	// within AckTimeout.
	Window     int
	BatchSize  int
	BatchBytes int

	// AckTimeout is how long the oldest unacknowledged batch may wait without any ack progress
	// before everything unacknowledged is sent again (go-back-N). It doubles on each stall up to
	// MaxAckTimeout and returns to AckTimeout when acks flow. Defaults 15s and 2m.
	AckTimeout    time.Duration
	MaxAckTimeout time.Duration

	ConnectTimeout time.Duration // TCP + TLS + CONNACK; default 10s
	KeepAlive      time.Duration // MQTT keepalive, whole seconds; default 30s
	PingTimeout    time.Duration // default 10s
	WriteTimeout   time.Duration // one socket write; default 10s
	BackoffMin     time.Duration // first reconnect wait (with jitter); default 1s
	BackoffMax     time.Duration // longest reconnect wait; default 2m

	// StateInterval is how often the retained state message is refreshed while connected;
	// default 1m.
	StateInterval time.Duration
	// FlushTimeout bounds the flush after ctx is done: unacknowledged events are still sent and
	// acks awaited this long, then the agent disconnects; default 5s.
	FlushTimeout time.Duration
	// DatasetTimeout is how long a dataset may stay incomplete before it is refused for a missing
	// chunk (and discarded); default 10m.
	DatasetTimeout time.Duration

	// DiskPath is a path on the file system reported as disk in the state (normally the state
	// directory); empty reports none.
	DiskPath string
	// AgentVersion is reported in the state.
	AgentVersion string

	// Downlink, if set, is given what the central system sends for the agent: each dataset once it
	// is applied, each signed command the uplink does not run itself.
	Downlink Downlink
	// Drivers, if set, reports source health for the state message. It must return quickly.
	Drivers func() map[string]drivers.Health
}

// Downlink is the agent's side of what arrives from the central system: the one seam through which
// applied datasets, commands and the central's clock reach it, so that a new kind adds a field to
// Delivery, never a callback to Config. Deliver is called from the uplink's goroutines and must
// return quickly.
type Downlink interface {
	Deliver(Delivery)
}

// Delivery is one thing the central system sent, verified and (for a dataset) applied.
type Delivery struct {
	// Dataset, Version and SHA256 name an applied dataset; Roster is set for a roster.
	Dataset string
	Version uint64
	SHA256  string
	Roster  *roster.Index
	// Command is a signed command for the agent (spotcheck, reconcile, ...), replay-checked.
	Command *wire.Command
	// Time is the central system's clock, from an ack of a batch this process published once
	// (delivered from the sender's goroutine).
	Time *CentralTime
}

// CentralTime is the central system's clock as one of its signed acks gives it: it committed the
// acknowledged batch between Sent and Received, so at Received the box's true time lies within
// [Time, Time+(Received-Sent)]. Sent and Received carry Go's monotonic clock reading.
type CentralTime struct {
	Time     time.Time // the central's clock at its commit, as it signed it
	Sent     time.Time // when the acknowledged batch was published
	Received time.Time // when the ack was taken
	Seq      uint64    // the seq the ack acknowledged through
	Receipt  []byte    // the signed ack, the proof of Time
}

// DownlinkFunc makes a function a Downlink.
type DownlinkFunc func(Delivery)

// Deliver calls f(d).
func (f DownlinkFunc) Deliver(d Delivery) { f(d) }

// Defaults.
const (
	DefaultWindow         = 8
	DefaultBatchSize      = 1024
	DefaultBatchBytes     = 512 << 10
	DefaultAckTimeout     = 15 * time.Second
	DefaultMaxAckTimeout  = 2 * time.Minute
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 30 * time.Second
	DefaultPingTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = 2 * time.Minute
	DefaultStateInterval  = time.Minute
	DefaultFlushTimeout   = 5 * time.Second
	DefaultDatasetTimeout = 10 * time.Minute
)

// withDefaults returns c with every zero field defaulted. It is the one place defaults live.
func (c Config) withDefaults() Config {
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	if c.ClientID == "" {
		c.ClientID = "kaoqin-" + c.Device
	}
	defInt(&c.Window, DefaultWindow)
	defInt(&c.BatchSize, DefaultBatchSize)
	defInt(&c.BatchBytes, DefaultBatchBytes)
	def(&c.AckTimeout, DefaultAckTimeout)
	def(&c.MaxAckTimeout, max(DefaultMaxAckTimeout, c.AckTimeout))
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.KeepAlive, DefaultKeepAlive)
	def(&c.PingTimeout, DefaultPingTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, max(DefaultBackoffMax, c.BackoffMin))
	def(&c.StateInterval, DefaultStateInterval)
	def(&c.FlushTimeout, DefaultFlushTimeout)
	def(&c.DatasetTimeout, DefaultDatasetTimeout)
	return c
}

// Validate checks the configuration without connecting: the broker URL, the names, the sizes and
// durations, that the TLS files exist, and that the central key is a readable ed25519 public key.
// It lists every problem, each a *drivers.FieldError named by the key of the agent's [uplink]
// table (institution and device are the agent's top-level keys).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, drivers.Field(key, format, a...)) }
	if c.Broker == "" {
		bad("broker", "required: tcp://host:1883 or ssl://host:8883")
	} else if err := mqttc.CheckBroker(c.Broker); err != nil {
		bad("broker", "%v", err)
	}
	if err := wire.CheckName(c.Institution); err != nil {
		bad("institution", "%v", err)
	}
	if err := wire.CheckName(c.Device); err != nil {
		bad("device", "%v", err)
	}
	if len(c.ClientID) > 64 {
		bad("client_id", "%d characters, want at most 64", len(c.ClientID))
	}
	if c.Password != "" && c.Username == "" {
		bad("username", "required with a password")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("cert_file", "a client certificate and its key (key_file) go together")
	}
	for _, f := range []struct{ key, path string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(f.key, "%v", err)
		}
	}
	if c.CentralKeyFile == "" {
		bad("central_key", "required: datasets and commands are verified with the central public key")
	} else if _, err := ledger.LoadPublicKey(c.CentralKeyFile); err != nil {
		bad("central_key", "%v", err)
	}
	for _, n := range []struct {
		name string
		v    int
		max  int
	}{{"window", c.Window, 1024}, {"batch_size", c.BatchSize, wire.MaxBatchEvents}, {"batch_bytes", c.BatchBytes, wire.MaxPayload / 2}} {
		if n.v < 0 || n.v > n.max {
			bad(n.name, "%d outside 1..%d (0 for the default)", n.v, n.max)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ack_timeout", c.AckTimeout}, {"max_ack_timeout", c.MaxAckTimeout}, {"connect_timeout", c.ConnectTimeout},
		{"keepalive", c.KeepAlive}, {"ping_timeout", c.PingTimeout}, {"write_timeout", c.WriteTimeout},
		{"backoff_min", c.BackoffMin}, {"backoff_max", c.BackoffMax}, {"state_interval", c.StateInterval},
		{"flush_timeout", c.FlushTimeout}, {"dataset_timeout", c.DatasetTimeout}} {
		if d.v < 0 {
			bad(d.name, "%v is negative", d.v)
		}
	}
	if c.KeepAlive != 0 && c.KeepAlive < time.Second {
		bad("keepalive", "%v, want at least 1s", c.KeepAlive)
	}
	if c.MaxAckTimeout != 0 && c.MaxAckTimeout < c.AckTimeout {
		bad("max_ack_timeout", "%v is below ack_timeout %v", c.MaxAckTimeout, c.AckTimeout)
	}
	if c.BackoffMax != 0 && c.BackoffMax < c.BackoffMin {
		bad("backoff_max", "%v is below backoff_min %v", c.BackoffMax, c.BackoffMin)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("uplink: config: %w", err)
	}
	return nil
}

func (c Config) tls() mqttc.TLS {
	return mqttc.TLS{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, ServerName: c.ServerName}
}
