package lineterm

import (
	"context"
	"errors"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

// Kind is the [[source]] kind of a line-protocol terminal.
const Kind = "lineterm"

// DefaultBaud is the line speed of a terminal whose table gives none.
const DefaultBaud = 9600

func init() {
	drivers.Register(drivers.Driver{Kind: Kind, Config: func() drivers.SourceConfig { return &SourceConfig{Baud: DefaultBaud} }})
}

// SourceConfig is a [[source]] table of kind lineterm, as written in the agent's config file.
type SourceConfig struct {
	Path         drivers.Path      `toml:"path"`
	Baud         int               `toml:"baud"` // default 9600
	ReadTimeout  drivers.Duration  `toml:"read_timeout"`
	Method       string            `toml:"method"`  // face, card or voucher
	Framing      string            `toml:"framing"` // lf, crlf, cr, stx/etx
	Pattern      string            `toml:"pattern"`
	Wiegand      string            `toml:"wiegand"` // "", 26, 34
	MaxLine      int               `toml:"max_line"`
	Repeat       drivers.Duration  `toml:"repeat"`
	Map          map[string]string `toml:"map"`
	PassUnmapped *bool             `toml:"pass_unmapped"` // default true
}

// Config maps the table onto the driver's Config, reporting every problem.
func (s *SourceConfig) Config() (Config, error) {
	c := Config{Port: serialport.Config{Path: string(s.Path), Baud: s.Baud, ReadTimeout: time.Duration(s.ReadTimeout)},
		Pattern: s.Pattern, MaxLine: s.MaxLine, Repeat: time.Duration(s.Repeat), Method: drivers.Method(s.Method),
		Map: s.Map, PassUnmapped: s.PassUnmapped == nil || *s.PassUnmapped}
	var errs []error
	var err error
	if s.Framing != "" {
		if c.Framing, err = ParseFraming(s.Framing); err != nil {
			c.Framing = LF // reported; the other keys are still checked
			errs = append(errs, &drivers.FieldError{Key: "framing", Err: err})
		}
	}
	if c.Wiegand, err = ParseWiegand(s.Wiegand); err != nil {
		c.Wiegand = NoWiegand
		errs = append(errs, &drivers.FieldError{Key: "wiegand", Err: err})
	}
	if _, err := c.compile(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// Validate implements drivers.SourceConfig.
func (s *SourceConfig) Validate() error {
	_, err := s.Config()
	return err
}

// Open implements drivers.SourceConfig.
func (s *SourceConfig) Open(ctx context.Context, env drivers.Env) (drivers.Source, error) {
	c, err := s.Config()
	if err != nil {
		return nil, err
	}
	return Open(env.Name, c, env.Log)
}

var (
	_ drivers.Source         = (*Terminal)(nil)
	_ drivers.HealthReporter = (*Terminal)(nil)
)
