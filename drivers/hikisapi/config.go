package hikisapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Kind is the [[source]] kind of this driver.
const Kind = "hikisapi"

func init() {
	drivers.Register(drivers.Driver{Kind: Kind, Config: func() drivers.SourceConfig { return NewConfig() }})
}

// How the source receives live events (Config.Receive).
const (
	ReceivePush   = "push"   // the terminal POSTs each event to us (httpHosts, "HTTP listening")
	ReceiveStream = "stream" // we hold GET /ISAPI/Event/notification/alertStream
)

// History query settings (Config.History).
const (
	HistoryACSEvent = "acs_event" // fill gaps with POST /ISAPI/AccessControl/AcsEvent
	HistoryOff      = "off"       // live events only (terminals that answer notSupport)
)

// Defaults, set by NewConfig.
const (
	DefaultUsername         = "admin"
	DefaultCallbackPath     = "/hik/event"
	DefaultHTTPHostID       = "1"
	DefaultBackfill         = 24 * time.Hour
	DefaultHistoryInterval  = 5 * time.Minute
	DefaultHeartbeatTimeout = 90 * time.Second
	DefaultRequestTimeout   = 10 * time.Second
	DefaultAuthRetry        = 30 * time.Minute
	DefaultClockTolerance   = 2 * time.Minute
	DefaultMaxBody          = 2 << 20
	DefaultFaceLibrary      = "1"
)

// Config is one Hikvision terminal, as a [[source]] table of kind "hikisapi".
type Config struct {
	// Address is the terminal's ISAPI base URL ("http://10.0.0.21" or "10.0.0.21:80").
	Address string `toml:"address"`
	// Serial is the terminal's serial number (its label, or System/deviceInfo): the first half of
	// every reading's dedupe key, so that it is stable whatever the network does.
	Serial   string `toml:"serial"`
	Username string `toml:"username"`
	// Password, or PasswordFile holding it (one line), for Digest authentication.
	Password     string       `toml:"password"`
	PasswordFile drivers.Path `toml:"password_file"`
	// Receive is "push" (the terminal posts to Listen) or "stream" (we hold its alertStream).
	Receive string `toml:"receive"`
	// Listen is the address the push receiver listens on ("0.0.0.0:8090").
	Listen string `toml:"listen"`
	// CallbackAddress is host:port as the terminal must post to (the box's LAN address); defaults
	// to Listen when that names a host.
	CallbackAddress string `toml:"callback_address"`
	// CallbackPath is the URL path configured on the terminal and served here.
	CallbackPath string `toml:"callback_path"`
	// HTTPHostID is the httpHosts slot written on the terminal.
	HTTPHostID string `toml:"http_host_id"`
	// History is "acs_event" (fill gaps from the terminal's event history) or "off".
	History string `toml:"history"`
	// Backfill is how far back the first history query of a run looks.
	Backfill drivers.Duration `toml:"backfill"`
	// HistoryInterval is how often the history is queried even without a detected gap.
	HistoryInterval drivers.Duration `toml:"history_interval"`
	// HeartbeatTimeout is how long an alertStream may stay silent before it is reconnected.
	HeartbeatTimeout drivers.Duration `toml:"heartbeat_timeout"`
	// RequestTimeout bounds each ISAPI request, and the push receiver's header and body reads.
	RequestTimeout drivers.Duration `toml:"request_timeout"`
	// AuthRetry is how long to wait after the terminal rejects the password before trying it
	// once more (a locked account waits for its unlock time instead).
	AuthRetry drivers.Duration `toml:"auth_retry"`
	// ClockTolerance is the clock offset beyond which readings carry terminal_clock_off.
	ClockTolerance drivers.Duration `toml:"clock_tolerance"`
	// MaxBody caps a pushed event's body and a fetched picture, in bytes.
	MaxBody int64 `toml:"max_body_bytes"`
	// FaceLibrary is the FDID of the face library persons' photos go to.
	FaceLibrary string `toml:"face_library"`
	// KeepPersons lists employeeNos that SyncPersons leaves alone although the roster does not
	// name them (the terminal's administrator, a teacher enrolled at the screen).
	KeepPersons []string `toml:"keep_persons"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{
		Username:         DefaultUsername,
		Receive:          ReceivePush,
		CallbackPath:     DefaultCallbackPath,
		HTTPHostID:       DefaultHTTPHostID,
		History:          HistoryACSEvent,
		Backfill:         drivers.Duration(DefaultBackfill),
		HistoryInterval:  drivers.Duration(DefaultHistoryInterval),
		HeartbeatTimeout: drivers.Duration(DefaultHeartbeatTimeout),
		RequestTimeout:   drivers.Duration(DefaultRequestTimeout),
		AuthRetry:        drivers.Duration(DefaultAuthRetry),
		ClockTolerance:   drivers.Duration(DefaultClockTolerance),
		MaxBody:          DefaultMaxBody,
		FaceLibrary:      DefaultFaceLibrary,
	}
}

// baseURL is Address as a URL.
func (c *Config) baseURL() (*url.URL, error) {
	a := c.Address
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	u, err := url.Parse(a)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("want http://host[:port]")
	}
	u.Path, u.RawQuery = "", ""
	return u, nil
}

func (c *Config) callback() (host, port string, err error) {
	a := c.CallbackAddress
	if a == "" {
		a = c.Listen
	}
	host, port, err = net.SplitHostPort(a)
	if err != nil {
		return "", "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "", "", errors.New("set callback_address to the box's LAN address as the terminal reaches it")
	}
	return host, port, nil
}

// Validate checks every key without opening anything.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, a ...any) { errs = append(errs, drivers.Field(key, format, a...)) }
	if c.Address == "" {
		add("address", "the terminal's address is required (http://10.0.0.21)")
	} else if _, err := c.baseURL(); err != nil {
		add("address", "%q: %v", c.Address, err)
	}
	if c.Serial == "" {
		add("serial", "the terminal's serial number is required (its label, or System/deviceInfo)")
	}
	if c.Username == "" {
		add("username", "required")
	}
	if c.Password != "" && c.PasswordFile != "" {
		add("password_file", "set password or password_file, not both")
	}
	if c.Password == "" && c.PasswordFile == "" {
		add("password", "required (or password_file)")
	}
	switch c.Receive {
	case ReceivePush:
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add("listen", "push needs a listen address like \"0.0.0.0:8090\": %v", err)
		} else if _, _, err := c.callback(); err != nil {
			add("callback_address", "%v", err)
		}
		if !strings.HasPrefix(c.CallbackPath, "/") {
			add("callback_path", "want a path starting with /, got %q", c.CallbackPath)
		}
	case ReceiveStream:
	default:
		add("receive", "want %q or %q, got %q", ReceivePush, ReceiveStream, c.Receive)
	}
	if c.History != HistoryACSEvent && c.History != HistoryOff {
		add("history", "want %q or %q, got %q", HistoryACSEvent, HistoryOff, c.History)
	}
	positive := func(key string, d drivers.Duration, lo, hi time.Duration) {
		if v := time.Duration(d); v < lo || v > hi {
			add(key, "%v is outside %v..%v", v, lo, hi)
		}
	}
	positive("backfill", c.Backfill, time.Minute, 31*24*time.Hour)
	positive("history_interval", c.HistoryInterval, 10*time.Second, 24*time.Hour)
	positive("heartbeat_timeout", c.HeartbeatTimeout, 100*time.Millisecond, 10*time.Minute)
	positive("request_timeout", c.RequestTimeout, 100*time.Millisecond, 2*time.Minute)
	positive("auth_retry", c.AuthRetry, time.Minute, 24*time.Hour)
	positive("clock_tolerance", c.ClockTolerance, time.Second, 24*time.Hour)
	if c.MaxBody < 64<<10 || c.MaxBody > 64<<20 {
		add("max_body_bytes", "%d is outside 65536..67108864", c.MaxBody)
	}
	if c.HTTPHostID == "" {
		add("http_host_id", "required")
	}
	if c.FaceLibrary == "" {
		add("face_library", "required")
	}
	for i, id := range c.KeepPersons {
		if id == "" || len(id) > maxEmployeeNo {
			add(fmt.Sprintf("keep_persons.%d", i), "%q: an employeeNo is 1..%d characters", id, maxEmployeeNo)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(string(c.PasswordFile))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Open validates the config and opens the terminal: see Open.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Source, error) {
	return Open(ctx, *c, env)
}
