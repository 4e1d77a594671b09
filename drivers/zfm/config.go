package zfm

import (
	"fmt"
	"time"

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
	// MinScore is the lowest module score accepted as a match: a hit scoring under it is reported
	// as a reading without a subject. Zero accepts whatever the module calls a match.
	MinScore int
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

// Validate checks the configuration, defaults applied, without touching the device.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Port.Validate(); err != nil {
		return fmt.Errorf("zfm: port: %w", err)
	}
	if c.PollInterval < 20*time.Millisecond || c.PollInterval > 2*time.Second {
		return fmt.Errorf("zfm: poll_interval: %v is outside 20ms..2s", c.PollInterval)
	}
	if c.MinScore < 0 || c.MinScore > 0xFFFF {
		return fmt.Errorf("zfm: min_score: %d is outside 0..65535", c.MinScore)
	}
	return nil
}
