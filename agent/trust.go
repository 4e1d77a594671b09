package agent

import (
	"fmt"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
)

// TrustConfig is the [trust] table: how operators and datasets are checked. The central key that
// verifies datasets is the uplink's (uplink.central_key), also when the uplink is off.
type TrustConfig struct {
	// MaxOverrides is how many manual sign-ins a session takes before each further one needs a
	// second operator; 0 means ops.DefaultMaxOverrides.
	MaxOverrides int `toml:"max_overrides"`
	// AllowUnsigned is a development switch: unsigned roster files are applied, and every event
	// carries the unsigned_dataset flag while it is on.
	AllowUnsigned bool `toml:"allow_unsigned_datasets"`
}

// OpsTrust loads what ops.Service checks datasets and operators with. Without a central key every
// dataset file is refused (and recorded), unless AllowUnsigned.
func (c *Config) OpsTrust() (ops.Trust, error) {
	t := ops.Trust{AllowUnsigned: c.Trust.AllowUnsigned, MaxOverrides: c.Trust.MaxOverrides}
	if c.Trust.MaxOverrides < 0 {
		return t, fmt.Errorf("agent: trust.max_overrides %d is negative", c.Trust.MaxOverrides)
	}
	if c.Uplink.CentralKey != "" {
		pub, err := ledger.LoadPublicKey(c.Uplink.CentralKey)
		if err != nil {
			return t, fmt.Errorf("agent: uplink.central_key: %w", err)
		}
		t.Central = pub
	}
	return t, nil
}
