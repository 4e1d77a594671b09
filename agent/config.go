package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/lineterm"
	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// DefaultConfigPath is where the daemon looks for its config.
const DefaultConfigPath = "/etc/kaoqin/agent.toml"

// Config is the agent's config file, /etc/kaoqin/agent.toml. Every key is documented in
// configs/agent.example.toml. LoadConfig decodes it strictly and validates it before anything is
// opened.
type Config struct {
	// Device names this box; unique within the institution, it appears in every event and topic.
	Device string `toml:"device"`
	// Institution is the 4-digit code of the institution the classroom belongs to.
	Institution string `toml:"institution"`
	// StateDir holds kaoqin.db, evidence/ and keys/ (systemd StateDirectory).
	StateDir string `toml:"state_dir"`
	// Key is the device's ed25519 private key (PEM, from `kaoqin keygen`); default
	// StateDir/keys/device.key.
	Key string `toml:"key"`
	// Socket is the local API's unix socket, used by the CLI.
	Socket string `toml:"socket"`
	// Listen, if set, serves the read-only inspector view over HTTP (e.g. "127.0.0.1:8080").
	Listen   string `toml:"listen"`
	LogLevel string `toml:"log_level"`

	Store   StoreConfig    `toml:"store"`
	Checkin CheckinConfig  `toml:"checkin"`
	Sources []SourceConfig `toml:"source"`
	Uplink  UplinkConfig   `toml:"uplink"`

	file  string
	lines map[string]int
}

// StoreConfig is the [store] table.
type StoreConfig struct {
	MinFreeMiB        uint64 `toml:"min_free_mib"`        // reserve: under it new captures are refused
	EvidenceBudgetMiB int64  `toml:"evidence_budget_mib"` // cap of evidence/; 0 = none beyond the reserve
}

// CheckinConfig is the [checkin] table: thresholds and windows of the rules.
type CheckinConfig struct {
	Suppress      Duration           `toml:"suppress"`
	TwoDevices    Duration           `toml:"two_devices"`
	Rapid         Duration           `toml:"rapid"`
	VoucherWindow Duration           `toml:"voucher_window"`
	MinScore      map[string]float64 `toml:"min_score"`
	MinMargin     map[string]float64 `toml:"min_margin"`
	DoubtMargin   map[string]float64 `toml:"doubt_margin"`
}

// Source kinds.
const (
	KindZFM      = "zfm"
	KindLineterm = "lineterm"
)

// SourceConfig is one [[source]]: a device. Keys that do not apply to its kind are refused.
type SourceConfig struct {
	Name    string `toml:"name"`
	Kind    string `toml:"kind"`
	Station string `toml:"station"` // readers of one registration desk share a station

	// Serial line (zfm, lineterm).
	Path        string   `toml:"path"`
	Baud        int      `toml:"baud"`
	ReadTimeout Duration `toml:"read_timeout"`

	// zfm
	Address      string   `toml:"address"`  // hex, default FFFFFFFF
	Password     string   `toml:"password"` // hex, default 00000000
	PollInterval Duration `toml:"poll_interval"`
	MinScore     int      `toml:"min_score"`

	// lineterm
	Method       string            `toml:"method"`  // face, card or voucher
	Framing      string            `toml:"framing"` // lf, crlf, cr, stx/etx
	Pattern      string            `toml:"pattern"`
	Wiegand      string            `toml:"wiegand"` // "", 26, 34
	MaxLine      int               `toml:"max_line"`
	Repeat       Duration          `toml:"repeat"`
	Map          map[string]string `toml:"map"`
	PassUnmapped *bool             `toml:"pass_unmapped"`
}

var sourceKeys = map[string][]string{
	KindZFM:      {"name", "kind", "station", "path", "baud", "read_timeout", "address", "password", "poll_interval", "min_score"},
	KindLineterm: {"name", "kind", "station", "path", "baud", "read_timeout", "method", "framing", "pattern", "wiegand", "max_line", "repeat", "map", "pass_unmapped"},
}

// UplinkConfig is the [uplink] table: the MQTT connection to the central system.
type UplinkConfig struct {
	Enabled      bool     `toml:"enabled"`
	Broker       string   `toml:"broker"`
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	CAFile       string   `toml:"ca_file"`
	CertFile     string   `toml:"cert_file"`
	KeyFile      string   `toml:"key_file"`
	ServerName   string   `toml:"server_name"`
	CentralKey   string   `toml:"central_key"`
	Window       int      `toml:"window"`
	BatchSize    int      `toml:"batch_size"`
	AckTimeout   Duration `toml:"ack_timeout"`
	KeepAlive    Duration `toml:"keepalive"`
}

// LoadConfig reads, decodes and validates a config file. Every error names the file, the line and
// the key.
func LoadConfig(path string) (*Config, error) {
	doc, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	c := &Config{file: path}
	lines, err := decodeStrict(path, doc, c)
	if err != nil {
		return nil, err
	}
	c.lines = lines
	c.resolvePaths(filepath.Dir(path))
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// resolvePaths makes relative paths in the file relative to the file's directory, so a config
// and the files it names can move together (the demo uses this).
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.Key)
	abs(&c.Socket)
	for i := range c.Sources {
		abs(&c.Sources[i].Path)
	}
	for _, p := range []*string{&c.Uplink.PasswordFile, &c.Uplink.CAFile, &c.Uplink.CertFile, &c.Uplink.KeyFile, &c.Uplink.CentralKey} {
		abs(p)
	}
}

func (c *Config) setDefaults() {
	if c.StateDir == "" {
		c.StateDir = "/var/lib/kaoqin"
	}
	if c.Key == "" {
		c.Key = filepath.Join(c.StateDir, "keys", "device.key")
	}
	if c.Socket == "" {
		c.Socket = "/run/kaoqin/kaoqin.sock"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Store.MinFreeMiB == 0 {
		c.Store.MinFreeMiB = 64
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Baud == 0 {
			s.Baud = zfm.DefaultBaud
			if s.Kind == KindLineterm {
				s.Baud = 9600
			}
		}
	}
}

var deviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks every value without opening anything, and returns every problem at once.
func (c *Config) Validate() error {
	var es ConfigErrors
	bad := func(key, format string, a ...any) {
		es = append(es, &ConfigError{File: c.file, Line: c.lines[key], Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	if !deviceName.MatchString(c.Device) {
		bad("device", "%q: want lower-case letters, digits and dashes (it names MQTT topics), e.g. \"jn-0001-r101\"", c.Device)
	}
	if len(c.Institution) != 4 || strings.Trim(c.Institution, "0123456789") != "" {
		bad("institution", "%q: want the 4-digit institution code, as a string (\"0001\")", c.Institution)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}
	for _, m := range []struct {
		key string
		m   map[string]float64
	}{{"checkin.min_score", c.Checkin.MinScore}, {"checkin.min_margin", c.Checkin.MinMargin}, {"checkin.doubt_margin", c.Checkin.DoubtMargin}} {
		for method, v := range m.m {
			key := m.key + "." + method
			if !drivers.Method(method).Valid() {
				bad(key, "unknown method %q: want fingerprint, face, card, voucher or manual", method)
			}
			if v < 0 {
				bad(key, "%v is negative", v)
			}
		}
	}
	names := map[string]bool{}
	for i := range c.Sources {
		s := &c.Sources[i]
		at := fmt.Sprintf("source[%d]", i)
		if !deviceName.MatchString(s.Name) {
			bad(at+".name", "%q: want lower-case letters, digits and dashes", s.Name)
		} else if names[s.Name] || s.Name == ManualSource {
			bad(at+".name", "%q is used twice (or is the reserved name %q)", s.Name, ManualSource)
		}
		names[s.Name] = true
		allowed, ok := sourceKeys[s.Kind]
		if !ok {
			bad(at+".kind", "%q: want zfm or lineterm", s.Kind)
			continue
		}
		for _, k := range keysUnder(c.lines, at) {
			if !slices.Contains(allowed, k) {
				bad(at+"."+k, "does not apply to a source of kind %s", s.Kind)
			}
		}
		var err error
		switch s.Kind {
		case KindZFM:
			_, err = s.zfm()
		case KindLineterm:
			_, err = s.lineterm()
		}
		if err != nil {
			key, msg := splitFieldError(at, err)
			bad(key, "%s", msg)
		}
	}
	if u := c.Uplink; u.Enabled {
		if _, err := c.uplink(); err != nil {
			for _, e := range unjoin(err) {
				key, msg := splitFieldError("uplink", e)
				if k, ok := uplinkKeys[key]; ok {
					key = k
				}
				bad(key, "%s", msg)
			}
		}
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// uplinkKeys renames sync/uplink's field names to the keys of the [uplink] table.
var uplinkKeys = map[string]string{"uplink.central_key_file": "uplink.central_key", "uplink.batch_size": "uplink.batch_size"}

// unjoin splits an errors.Join (below any wrapping prefix) into its errors.
func unjoin(err error) []error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			return j.Unwrap()
		}
	}
	return []error{err}
}

// splitFieldError turns a package's validation error, "pkg: field: sub: message", into the
// config key under prefix ("source[0].baud") and the message. Segments that are not config keys
// (the package name, "port", "config") are dropped.
func splitFieldError(prefix string, err error) (string, string) {
	msg := err.Error()
	key := prefix
	for {
		seg, rest, ok := strings.Cut(msg, ": ")
		if !ok || seg == "" || strings.ContainsAny(seg, " \"'()") {
			return key, msg
		}
		switch seg {
		case "zfm", "lineterm", "serialport", "uplink", "config", "port":
		default:
			return prefix + "." + seg, rest
		}
		msg = rest
	}
}

func (s *SourceConfig) port() serialport.Config {
	return serialport.Config{Path: s.Path, Baud: s.Baud, ReadTimeout: time.Duration(s.ReadTimeout)}
}

func (s *SourceConfig) zfm() (zfm.Config, error) {
	c := zfm.Config{Port: s.port(), PollInterval: time.Duration(s.PollInterval), MinScore: s.MinScore}
	var err error
	if c.Address, err = hex32(s.Address, zfm.DefaultAddress); err != nil {
		return c, fmt.Errorf("zfm: address: %w", err)
	}
	if c.Password, err = hex32(s.Password, 0); err != nil {
		return c, fmt.Errorf("zfm: password: %w", err)
	}
	return c, c.Validate()
}

func hex32(s string, def uint32) (uint32, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: want 8 hex digits", s)
	}
	return uint32(v), nil
}

func (s *SourceConfig) lineterm() (lineterm.Config, error) {
	c := lineterm.Config{Port: s.port(), Pattern: s.Pattern, MaxLine: s.MaxLine, Repeat: time.Duration(s.Repeat),
		Method: drivers.Method(s.Method), Map: s.Map, PassUnmapped: s.PassUnmapped == nil || *s.PassUnmapped}
	var err error
	if c.Framing, err = lineterm.ParseFraming(s.Framing); s.Framing != "" && err != nil {
		return c, fmt.Errorf("lineterm: framing: %w", err)
	}
	if c.Wiegand, err = lineterm.ParseWiegand(s.Wiegand); err != nil {
		return c, fmt.Errorf("lineterm: wiegand: %w", err)
	}
	return c, c.Validate()
}

func (c *Config) uplink() (uplink.Config, error) {
	u := c.Uplink
	cfg := uplink.Config{Broker: u.Broker, Institution: c.Institution, Device: c.Device, Username: u.Username,
		CAFile: u.CAFile, CertFile: u.CertFile, KeyFile: u.KeyFile, ServerName: u.ServerName,
		CentralKeyFile: u.CentralKey, Window: u.Window, BatchSize: u.BatchSize,
		AckTimeout: time.Duration(u.AckTimeout), KeepAlive: time.Duration(u.KeepAlive), DiskPath: c.StateDir}
	if u.PasswordFile != "" {
		b, err := os.ReadFile(u.PasswordFile)
		if err != nil {
			return cfg, fmt.Errorf("uplink: password_file: %w", err)
		}
		cfg.Password = strings.TrimSpace(string(b))
	}
	return cfg, cfg.Validate()
}

// rules maps [checkin] onto the rules engine.
func (c *Config) rules() checkin.Rules {
	conv := func(m map[string]float64) map[drivers.Method]float64 {
		out := map[drivers.Method]float64{}
		for k, v := range m {
			out[drivers.Method(k)] = v
		}
		return out
	}
	st := map[string]string{}
	for _, s := range c.Sources {
		if s.Station != "" {
			st[s.Name] = s.Station
		}
	}
	return checkin.Rules{
		Institution: c.Institution,
		MinScore:    conv(c.Checkin.MinScore), MinMargin: conv(c.Checkin.MinMargin), DoubtMargin: conv(c.Checkin.DoubtMargin),
		Suppress: time.Duration(c.Checkin.Suppress), TwoDevices: time.Duration(c.Checkin.TwoDevices),
		Rapid: time.Duration(c.Checkin.Rapid), VoucherWindow: time.Duration(c.Checkin.VoucherWindow),
		Stations: st,
	}.WithDefaults()
}

// DBPath is the ledger file.
func (c *Config) DBPath() string { return filepath.Join(c.StateDir, "kaoqin.db") }

// LedgerConfig is the store.Config of the ledger, without the key (the daemon and the CLI's offline writes
// load it themselves).
func (c *Config) LedgerConfig() store.Config {
	return store.Config{Path: c.DBPath(), EvidenceDir: filepath.Join(c.StateDir, "evidence"), Device: c.Device,
		MinFreeBytes: c.Store.MinFreeMiB << 20, EvidenceBudget: c.Store.EvidenceBudgetMiB << 20}
}
