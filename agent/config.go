package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
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

	Store   StoreConfig   `toml:"store"`
	Checkin CheckinConfig `toml:"checkin"`
	// SpotCheck is the [spot_check] table: the room cameras' random spot checks (spotcheck.go).
	SpotCheck SpotCheckConfig `toml:"spot_check"`
	Sources   []SourceConfig  `toml:"source"`
	Uplink    UplinkConfig    `toml:"uplink"`
	Trust     TrustConfig     `toml:"trust"`

	file  string
	lines map[string]int
}

// StoreConfig is the [store] table.
type StoreConfig struct {
	MinFreeMiB        uint64 `toml:"min_free_mib"`        // reserve: under it new captures are refused
	EvidenceBudgetMiB int64  `toml:"evidence_budget_mib"` // cap of evidence/; 0 = none beyond the reserve
	// EvidenceRetention: photos the central system acknowledged are deleted once older than this
	// (0: kept until the budget presses); an unacknowledged photo is never deleted.
	EvidenceRetention Duration `toml:"evidence_retention"`
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

// SourceConfig is one [[source]]: a device. The agent reads name, kind and station; the rest of
// the table is the driver's (drivers.Register), decoded strictly into its own typed config.
type SourceConfig struct {
	Name    string `toml:"name"`
	Kind    string `toml:"kind"`
	Station string `toml:"station"` // readers of one registration desk share a station
	// Driver is the driver's part of the table, decoded and defaulted; nil if the kind is not in
	// this build (LoadConfig then fails).
	Driver drivers.SourceConfig `toml:"-"`
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

// LoadConfig reads, decodes and validates a config file. Every problem is reported at once, each
// naming the file, the line and the key (ConfigErrors). Nothing is opened.
func LoadConfig(path string) (*Config, error) {
	doc, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	lines, err := keyLines(doc)
	if err != nil {
		return nil, syntaxError(path, err)
	}
	var raw map[string]any
	if err := toml.Unmarshal(doc, &raw); err != nil {
		return nil, syntaxError(path, err)
	}
	c := &Config{file: path, lines: lines, SpotCheck: DefaultSpotCheck(),
		Store: StoreConfig{EvidenceRetention: Duration(DefaultEvidenceRetention)}}
	d := &decoder{file: path, lines: lines}
	d.table("", raw, c, "source")
	c.decodeSources(d, raw["source"])
	c.resolvePaths(filepath.Dir(path))
	c.setDefaults()
	c.validate(d)
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return c, nil
}

func syntaxError(file string, err error) error {
	var se *syntaxErr
	if errors.As(err, &se) {
		return ConfigErrors{{File: file, Line: se.line, Key: "(syntax)", Msg: se.msg}}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		if key == "" {
			key = "(syntax)"
		}
		return ConfigErrors{{File: file, Line: row, Key: key, Msg: strings.TrimPrefix(de.Error(), "toml: ")}}
	}
	return ConfigErrors{{File: file, Key: "(syntax)", Msg: err.Error()}}
}

// decodeSources decodes each [[source]] table: the agent's keys, then the driver's part into the
// driver's own config.
func (c *Config) decodeSources(d *decoder, v any) {
	if v == nil {
		return
	}
	tables, ok := v.([]any)
	if !ok {
		d.bad("source", "want [[source]] tables")
		return
	}
	for i, t := range tables {
		at := fmt.Sprintf("source[%d]", i)
		m, ok := t.(map[string]any)
		if !ok {
			d.bad(at, "want a table")
			continue
		}
		var sc SourceConfig
		common := map[string]any{}
		for _, k := range []string{"name", "kind", "station"} {
			if v, ok := m[k]; ok {
				common[k] = v
			}
		}
		d.table(at, common, &sc)
		if drv, err := drivers.Lookup(sc.Kind); err != nil {
			if _, written := m["kind"]; !written {
				d.bad(at+".kind", "required: %v", err)
			} else {
				d.bad(at+".kind", "%v", err)
			}
		} else {
			sc.Driver = drv.Config()
			d.table(at, m, sc.Driver, "name", "kind", "station")
		}
		c.Sources = append(c.Sources, sc)
	}
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
		if c.Sources[i].Driver != nil {
			resolvePaths(c.Sources[i].Driver, dir)
		}
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
}

var deviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// validate checks every value without opening anything, adding every problem to d.
func (c *Config) validate(d *decoder) {
	bad := d.bad
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
	c.SpotCheck.validate(bad)
	if r := time.Duration(c.Store.EvidenceRetention); r < 0 {
		bad("store.evidence_retention", "%v is negative", r)
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
		if s.Driver == nil {
			continue
		}
		for _, fe := range drivers.FieldErrors(s.Driver.Validate()) {
			key := at
			if fe.Key != "" {
				key += "." + fe.Key
			}
			bad(key, "%v", fe.Err)
		}
	}
	if c.Uplink.Enabled {
		if _, err := c.uplink(); err != nil {
			for _, fe := range drivers.FieldErrors(err) {
				switch fe.Key {
				case "institution", "device":
					// checked above, against the agent's own (stricter) rules
				case "":
					bad("uplink", "%v", fe.Err)
				default:
					bad("uplink."+fe.Key, "%v", fe.Err)
				}
			}
		}
	}
}

// Check does what `kaoqin run` would do before it takes a reading, short of opening the ledger
// and the devices: the device key and the central key load, the state folder can be written. It
// is what `kaoqin run --check` adds to LoadConfig.
func (c *Config) Check() error {
	d := &decoder{file: c.file, lines: c.lines}
	if _, err := ledger.LoadPrivateKey(c.Key); err != nil {
		d.bad("key", "%v (make one with `kaoqin keygen --out %s`)", err, filepath.Dir(c.Key))
	}
	if err := writableDir(c.StateDir); err != nil {
		d.bad("state_dir", "%v", err)
	}
	if err := writableDir(filepath.Dir(c.Socket)); err != nil {
		d.bad("socket", "%v", err)
	}
	if len(d.errs) > 0 {
		return d.errs
	}
	return nil
}

// writableDir reports whether dir exists and can be written, or can be created.
func writableDir(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a folder", d)
			}
			f, err := os.CreateTemp(d, ".kaoqin-check-*")
			if err != nil {
				return fmt.Errorf("%s cannot be written: %w", d, err)
			}
			f.Close()
			return os.Remove(f.Name())
		}
		if !errors.Is(err, os.ErrNotExist) || d == filepath.Dir(d) {
			return err
		}
	}
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
			return cfg, &drivers.FieldError{Key: "password_file", Err: err}
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
		Stations: st, AbsentShare: c.SpotCheck.AbsentShare,
	}.WithDefaults()
}

// DBPath is the ledger file.
func (c *Config) DBPath() string { return filepath.Join(c.StateDir, "kaoqin.db") }

// LedgerConfig is the store.Config of the ledger, without the key (the daemon and the CLI's offline writes
// load it themselves).
func (c *Config) LedgerConfig() store.Config {
	return store.Config{Path: c.DBPath(), EvidenceDir: filepath.Join(c.StateDir, "evidence"), Device: c.Device,
		MinFreeBytes: c.Store.MinFreeMiB << 20, EvidenceBudget: c.Store.EvidenceBudgetMiB << 20,
		Institution: c.Institution, AllowUnsigned: c.Trust.AllowUnsigned}
}
