package zfm

import (
	"errors"
	"fmt"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

// Defaults applied by Open (and by Validate before it checks) to zero fields of Config.
const (
	DefaultBaud         = 57600
	DefaultPollInterval = 150 * time.Millisecond
)

// Config is one fingerprint module. The agent maps its configuration file onto it; zero fields
// take the defaults.
type Config struct {
	// Port is the serial line. Baud defaults to 57600; the read timeout to serialport's 100 ms,
	// which also bounds how long Close waits for a read in progress.
	Port serialport.Config
	// Address is the module's address. Zero means DefaultAddress (0xFFFFFFFF), the address of a
	// module that was never given another: a module at address 0 cannot be configured.
	Address uint32
	// Password is presented with VfyPwd when the reader opens; 0 for a module without one.
	Password uint32
	// PollInterval is how often GenImg asks whether a finger is on the sensor (20 ms to 2 s,
	// default 150 ms; the protocol notes suggest 100-200 ms).
	PollInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Port.Baud == 0 {
		c.Port.Baud = DefaultBaud
	}
	if c.Address == 0 {
		c.Address = DefaultAddress
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	return c
}

// Validate checks the configuration, defaults applied, without touching the device. It returns
// every problem, each a *drivers.FieldError named by its config key.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := c.Port.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PollInterval < 20*time.Millisecond || c.PollInterval > 2*time.Second {
		errs = append(errs, drivers.Field("poll_interval", "%v is outside 20ms..2s", c.PollInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("zfm: %w", err)
	}
	return nil
}
