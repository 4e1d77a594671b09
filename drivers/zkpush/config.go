package zkpush

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Kind is the [[source]] kind of a ZKTeco PUSH terminal.
const Kind = "zkpush"

func init() {
	drivers.Register(drivers.Driver{Kind: Kind, Config: func() drivers.SourceConfig { return NewConfig() }})
}

// Defaults, set by NewConfig.
const (
	DefaultListen         = ":8081" // the port ZKTeco's own ADMS server listens on
	DefaultZone           = "Asia/Shanghai"
	DefaultAckTimeout     = 10 * time.Second
	DefaultClockTolerance = 2 * time.Minute
	DefaultMaxBody        = 4 << 20 // a terminal's capture is tens of KB; a backlog of 10,000 lines ~400 KB
	DefaultReadTimeout    = 30 * time.Second
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultDelay          = 10 * time.Second
	DefaultErrorDelay     = 30 * time.Second
	DefaultResendAfter    = 5 * time.Minute
	DefaultPhotoWait      = 10 * time.Minute
)

// Config is one terminal: a [[source]] table of kind "zkpush".
type Config struct {
	// Listen is the address the PUSH server listens on. Terminals sharing it share one server;
	// max_body and the timeouts of the first one opened on an address apply to all.
	Listen string `toml:"listen"`
	// Serial is the terminal's serial number (SN), as it sends it in every request.
	Serial string `toml:"serial"`
	// Address, if set, is the terminal's expected IP. When empty the first address it is seen
	// at is remembered in the state file. Readings from any other address carry the
	// terminal_new_address flag.
	Address string `toml:"address"`
	// Zone is the terminal's time zone (IANA name): an ATTLOG time carries none.
	Zone string `toml:"zone"`
	// StateDir holds the terminal's state file (zkpush-<serial>.db: the command queue, the users
	// put on it, its address).
	StateDir drivers.Path `toml:"state_dir"`
	// AckTimeout bounds how long an upload waits for its readings to be durable before the
	// terminal is told to send the batch again.
	AckTimeout drivers.Duration `toml:"ack_timeout"`
	// ClockTolerance is how far the terminal's clock may be from the box's before its readings
	// carry the terminal_clock_off flag.
	ClockTolerance drivers.Duration `toml:"clock_tolerance"`
	// MaxBody is the largest request body accepted, in bytes; a larger one is answered 413.
	MaxBody int64 `toml:"max_body"`
	// ReadTimeout and HeaderTimeout bound a request's reading (a slow or stalled client).
	ReadTimeout   drivers.Duration `toml:"read_timeout"`
	HeaderTimeout drivers.Duration `toml:"header_timeout"`
	// Delay is the poll interval the terminal is given (Delay=), ErrorDelay its wait after a
	// failed upload (ErrorDelay=).
	Delay      drivers.Duration `toml:"delay"`
	ErrorDelay drivers.Duration `toml:"error_delay"`
	// ResendAfter is how long a command handed out without a result waits before it is handed
	// out again.
	ResendAfter drivers.Duration `toml:"resend_after"`
	// PhotoWait is how long a photo that came before its punch is held for the punch's reading;
	// after it the photo is logged as one without a punch (it stays in the evidence store).
	PhotoWait drivers.Duration `toml:"photo_wait"`
	// IntentFromStatus maps the punch's status key to sign-in or sign-out; false leaves the
	// intent to the schedule (for terminals whose status key nobody presses).
	IntentFromStatus bool `toml:"intent_from_status"`
	// AlnumPINs accepts letters in PINs, for firmware configured for alphanumeric user IDs.
	AlnumPINs bool `toml:"alnum_pins"`
	// NameEncoding is how names are written in the commands sent to the terminal: "gb18030"
	// (a terminal in Chinese mode), "utf-8", or "auto" (GB18030 when the terminal said
	// language=83 at init, else UTF-8).
	NameEncoding string `toml:"name_encoding"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{
		Listen:           DefaultListen,
		Zone:             DefaultZone,
		AckTimeout:       drivers.Duration(DefaultAckTimeout),
		ClockTolerance:   drivers.Duration(DefaultClockTolerance),
		MaxBody:          DefaultMaxBody,
		ReadTimeout:      drivers.Duration(DefaultReadTimeout),
		HeaderTimeout:    drivers.Duration(DefaultHeaderTimeout),
		Delay:            drivers.Duration(DefaultDelay),
		ErrorDelay:       drivers.Duration(DefaultErrorDelay),
		ResendAfter:      drivers.Duration(DefaultResendAfter),
		PhotoWait:        drivers.Duration(DefaultPhotoWait),
		IntentFromStatus: true,
		NameEncoding:     "auto",
	}
}

// Validate checks every key without opening anything.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, drivers.Field("listen", "%q is not host:port: %v", c.Listen, err))
	}
	if _, err := checkPIN(c.Serial, true); err != nil || len(c.Serial) > 32 {
		errs = append(errs, drivers.Field("serial", "want the terminal's serial number (letters and digits), got %q", clip(c.Serial)))
	}
	if c.Address != "" {
		if _, err := netip.ParseAddr(c.Address); err != nil {
			errs = append(errs, drivers.Field("address", "%q is not an IP address", c.Address))
		}
	}
	if _, err := time.LoadLocation(c.Zone); err != nil || c.Zone == "" {
		errs = append(errs, drivers.Field("zone", "%q is not a time zone name like \"Asia/Shanghai\"", c.Zone))
	}
	if c.StateDir == "" {
		errs = append(errs, drivers.Field("state_dir", "is required: the command queue is kept there"))
	}
	dur := func(key string, d drivers.Duration, min, max time.Duration) {
		if v := time.Duration(d); v < min || v > max {
			errs = append(errs, drivers.Field(key, "%v is outside %v..%v", v, min, max))
		}
	}
	dur("ack_timeout", c.AckTimeout, 100*time.Millisecond, 5*time.Minute)
	dur("clock_tolerance", c.ClockTolerance, time.Second, 24*time.Hour)
	dur("read_timeout", c.ReadTimeout, 100*time.Millisecond, 10*time.Minute)
	dur("header_timeout", c.HeaderTimeout, 100*time.Millisecond, time.Minute)
	dur("delay", c.Delay, 2*time.Second, 60*time.Second)
	dur("error_delay", c.ErrorDelay, 30*time.Second, 300*time.Second)
	dur("resend_after", c.ResendAfter, time.Second, 24*time.Hour)
	dur("photo_wait", c.PhotoWait, 0, 24*time.Hour)
	if c.MaxBody < 64<<10 || c.MaxBody > 64<<20 {
		errs = append(errs, drivers.Field("max_body", "%d is outside 65536..67108864 bytes", c.MaxBody))
	}
	switch c.NameEncoding {
	case "auto", "gb18030", "utf-8":
	default:
		errs = append(errs, drivers.Field("name_encoding", "%q: want auto, gb18030 or utf-8", c.NameEncoding))
	}
	return errors.Join(errs...)
}

// Open registers the terminal with the PUSH server of its listen address (starting the server
// if it is the first) and opens its state file.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Source, error) {
	return Open(ctx, c, env)
}

var _ drivers.SourceConfig = (*Config)(nil)

// Open is Config.Open returning the concrete type.
func Open(ctx context.Context, c *Config, env drivers.Env) (*Terminal, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("zkpush: config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	loc, _ := time.LoadLocation(c.Zone) // checked by Validate
	if err := os.MkdirAll(string(c.StateDir), 0o700); err != nil {
		return nil, fmt.Errorf("zkpush: state_dir: %w", err)
	}
	t, err := newTerminal(*c, loc, env)
	if err != nil {
		return nil, err
	}
	srv, err := acquire(*c, env.Log)
	if err != nil {
		t.q.close()
		return nil, err
	}
	if err := srv.add(t); err != nil {
		release(srv)
		t.q.close()
		return nil, err
	}
	t.srv = srv
	return t, nil
}
