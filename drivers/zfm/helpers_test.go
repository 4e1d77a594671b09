package zfm_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

var quiet = slog.New(slog.DiscardHandler)

// counter records the packets the emulator sees, by instruction and kind.
type counter struct {
	mu       sync.Mutex
	commands map[zfm.Instr]int
	dataIn   []zfm.Packet // data packets from the host
	dataOut  []zfm.Packet // data packets from the module
}

func newCounter() *counter { return &counter{commands: map[zfm.Instr]int{}} }

func (c *counter) hook(fromHost bool, p zfm.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case fromHost && p.PID == zfm.PIDCommand:
		c.commands[zfm.Instr(p.Payload[0])]++
	case fromHost:
		c.dataIn = append(c.dataIn, p)
	case p.PID == zfm.PIDData || p.PID == zfm.PIDEndData:
		c.dataOut = append(c.dataOut, p)
	}
}

func (c *counter) count(in zfm.Instr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commands[in]
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commands = map[zfm.Instr]int{}
	c.dataIn, c.dataOut = nil, nil
}

func (c *counter) data() (in, out []zfm.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]zfm.Packet(nil), c.dataIn...), append([]zfm.Packet(nil), c.dataOut...)
}

// startEmu puts an emulator on a pseudo-terminal behind a link in a temporary directory.
func startEmu(t *testing.T, cfg emu.Config) (*emu.Emulator, string) {
	t.Helper()
	link := filepath.Join(t.TempDir(), "ttyZFM")
	e := emu.New(cfg)
	if err := e.Start(link); err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e, link
}

// openReader opens a Reader on link, through serialport and tarm/serial.
func openReader(t *testing.T, link string, cfg zfm.Config) *zfm.Reader {
	t.Helper()
	cfg.Port.Path = link
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := zfm.Open(ctx, "door", cfg, quiet)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openModule opens the link with serialport and starts a Module on it.
func openModule(t testing.TB, link string) *zfm.Module {
	t.Helper()
	port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
	if err != nil {
		t.Fatalf("serialport: %v", err)
	}
	m := zfm.NewModule(port, zfm.DefaultAddress, quiet)
	t.Cleanup(func() {
		m.Close()
		port.Close()
	})
	return m
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// next waits up to 5 s for a reading.
func next(t *testing.T, r *zfm.Reader) drivers.Reading {
	t.Helper()
	rd, err := r.Next(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Next: got error %v, want a reading", err)
	}
	return rd
}

// noReading checks that Next gives nothing for d.
func noReading(t *testing.T, r *zfm.Reader, d time.Duration) {
	t.Helper()
	rd, err := r.Next(ctxFor(t, d))
	if err == nil {
		t.Fatalf("Next: got reading %+v, want none", rd)
	}
	if !errorsIsDeadline(err) {
		t.Fatalf("Next: got error %v, want the context deadline", err)
	}
}

func tmpl(trainee, finger string) drivers.Template {
	return drivers.Template{Trainee: trainee, Finger: finger, Data: emu.Template(trainee + "/" + finger)}
}

// lift takes the finger off and lets the reader see the sensor clear, as a person's lift would
// (it lasts longer than a poll).
func lift(t *testing.T, e *emu.Emulator, r *zfm.Reader) {
	t.Helper()
	e.Lift()
	noReading(t, r, 100*time.Millisecond)
}
