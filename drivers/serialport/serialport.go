// Package serialport is the serial transport shared by the drivers of serial terminals
// (drivers/zfm, drivers/lineterm). It wraps github.com/tarm/serial with the habits a long-running
// daemon needs: a read timeout is always set (without one a blocked Read makes Close hang), input
// buffered before the port was opened is flushed, and a hang-up is reported as ErrHangup.
//
// Reopening after an error is the caller's job (the agent's source loop closes a failed source,
// backs off with jitter and opens it again).
package serialport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/tarm/serial"

	"github.com/kaoqin/kaoqin/drivers"
)

// ErrHangup is returned by Read and Write when the other end of the line is gone (a USB adapter
// pulled, the pseudo-terminal of an emulator closed). A read already waiting when the line hangs
// up fails with EIO and is reported as ErrHangup; later reads return (0, EOF) at once, which looks
// like silence, so a driver that only reads should notice reads returning far sooner than the read
// timeout and probe with a write.
var ErrHangup = errors.New("serialport: line hung up")

// Bauds are the rates tarm/serial can set on Linux for the terminals we support.
var Bauds = []int{9600, 19200, 38400, 57600, 115200}

// DefaultReadTimeout is used when Config.ReadTimeout is zero.
const DefaultReadTimeout = 100 * time.Millisecond

// Config describes one serial line.
type Config struct {
	Path string // device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...
	Baud int
	// ReadTimeout bounds every Read; tarm/serial rounds it down to 100 ms steps (0.1-25.5 s).
	ReadTimeout time.Duration
}

// Validate checks the config without touching the device. It returns every problem, each a
// *drivers.FieldError named by its config key (path, baud, read_timeout).
func (c Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, drivers.Field("path", "a device path is required"))
	}
	if err := ValidBaud(c.Baud); err != nil {
		errs = append(errs, &drivers.FieldError{Key: "baud", Err: err})
	}
	if c.ReadTimeout != 0 && (c.ReadTimeout < 100*time.Millisecond || c.ReadTimeout > 25500*time.Millisecond) {
		errs = append(errs, drivers.Field("read_timeout", "%v is outside 100ms..25.5s", c.ReadTimeout))
	}
	return errors.Join(errs...)
}

// ValidBaud reports whether baud is a rate in Bauds.
func ValidBaud(baud int) error {
	for _, b := range Bauds {
		if b == baud {
			return nil
		}
	}
	return fmt.Errorf("%d is not one of %v", baud, Bauds)
}

// Port is an open serial line. Read and Write may be called from different goroutines; a driver
// normally has one goroutine that owns the port.
type Port struct {
	name string
	p    *serial.Port
}

// Open opens and configures the line, then discards whatever the device sent before it was opened.
func Open(c Config) (*Port, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("serialport: %s: %w", c.Path, err)
	}
	rt := c.ReadTimeout
	if rt == 0 {
		rt = DefaultReadTimeout
	}
	p, err := serial.OpenPort(&serial.Config{Name: c.Path, Baud: c.Baud, ReadTimeout: rt})
	if err != nil {
		return nil, fmt.Errorf("serialport: open %s: %w", c.Path, err)
	}
	if err := p.Flush(); err != nil {
		p.Close()
		return nil, fmt.Errorf("serialport: flush %s: %w", c.Path, err)
	}
	return &Port{name: c.Path, p: p}, nil
}

// Read reads what is available, waiting at most the read timeout. It returns (0, nil) when nothing
// arrived in time, so callers loop on it without treating silence as an error.
func (p *Port) Read(b []byte) (int, error) {
	n, err := p.p.Read(b)
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return n, nil
	case hungUp(err):
		return n, fmt.Errorf("serialport: read %s: %w (%v)", p.name, ErrHangup, err)
	}
	return n, fmt.Errorf("serialport: read %s: %w", p.name, err)
}

func hungUp(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENXIO) || errors.Is(err, os.ErrClosed)
}

// Write writes b. A write to a line whose other end is gone fails with ErrHangup.
func (p *Port) Write(b []byte) (int, error) {
	n, err := p.p.Write(b)
	if err != nil {
		if hungUp(err) {
			return n, fmt.Errorf("serialport: write %s: %w (%v)", p.name, ErrHangup, err)
		}
		return n, fmt.Errorf("serialport: write %s: %w", p.name, err)
	}
	return n, nil
}

// Flush discards unread input. Flushing a line whose other end is gone fails with ErrHangup.
func (p *Port) Flush() error {
	if err := p.p.Flush(); err != nil {
		if hungUp(err) {
			return fmt.Errorf("serialport: flush %s: %w (%v)", p.name, ErrHangup, err)
		}
		return fmt.Errorf("serialport: flush %s: %w", p.name, err)
	}
	return nil
}

// Close closes the line. It returns within one read timeout.
func (p *Port) Close() error { return p.p.Close() }

// Name is the device path.
func (p *Port) Name() string { return p.name }
