package zfm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

// Kind is the [[source]] kind of a fingerprint module.
const Kind = "zfm"

func init() {
	drivers.Register(drivers.Driver{Kind: Kind, Config: func() drivers.SourceConfig { return &SourceConfig{} }})
}

// SourceConfig is a [[source]] table of kind zfm, as written in the agent's config file.
type SourceConfig struct {
	Path         drivers.Path     `toml:"path"`
	Baud         int              `toml:"baud"` // default 57600
	ReadTimeout  drivers.Duration `toml:"read_timeout"`
	Address      string           `toml:"address"`  // 8 hex digits, default FFFFFFFF
	Password     string           `toml:"password"` // 8 hex digits, default 00000000
	PollInterval drivers.Duration `toml:"poll_interval"`
}

// Config maps the table onto the driver's Config, reporting every problem.
func (s *SourceConfig) Config() (Config, error) {
	c := Config{Port: serialport.Config{Path: string(s.Path), Baud: s.Baud, ReadTimeout: time.Duration(s.ReadTimeout)},
		PollInterval: time.Duration(s.PollInterval)}
	var errs []error
	var err error
	if c.Address, err = hex32(s.Address, DefaultAddress); err != nil {
		errs = append(errs, &drivers.FieldError{Key: "address", Err: err})
	}
	if c.Password, err = hex32(s.Password, 0); err != nil {
		errs = append(errs, &drivers.FieldError{Key: "password", Err: err})
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// Validate implements drivers.SourceConfig.
func (s *SourceConfig) Validate() error {
	_, err := s.Config()
	return err
}

// Open implements drivers.SourceConfig: the module, its templates synced by the agent after.
func (s *SourceConfig) Open(ctx context.Context, env drivers.Env) (drivers.Source, error) {
	c, err := s.Config()
	if err != nil {
		return nil, err
	}
	r, err := Open(ctx, env.Name, c, env.Log)
	if err != nil {
		return nil, err
	}
	return source{r}, nil
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

// source is a Reader as the agent sees it: a Source with its capabilities in the drivers' terms.
type source struct{ *Reader }

var (
	_ drivers.Source         = source{}
	_ drivers.TemplateSyncer = source{}
	_ drivers.Enroller       = source{}
	_ drivers.Teller         = source{}
	_ drivers.HealthReporter = source{}
)

// SyncTemplates keeps the module's library equal to the fingerprint templates of ts.
func (s source) SyncTemplates(ctx context.Context, ts []drivers.Template) (string, error) {
	var fingers []drivers.Template
	for _, t := range ts {
		if t.Kind == drivers.FingerTemplate || t.Kind == "" {
			fingers = append(fingers, t)
		}
	}
	rep, err := s.Reader.SyncTemplates(ctx, fingers)
	return rep.String(), err
}

// Enroll captures a finger twice and returns its template.
func (s source) Enroll(ctx context.Context, progress func(string)) (drivers.Template, error) {
	data, err := s.Reader.Enroll(ctx, progress)
	if err != nil {
		return drivers.Template{}, err
	}
	return drivers.Template{Kind: drivers.FingerTemplate, Data: data}, nil
}
