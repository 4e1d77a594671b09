package serialport_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/kaoqin/kaoqin/drivers/serialport"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  serialport.Config
		want string
	}{
		{serialport.Config{Path: "/dev/ttyUSB0", Baud: 57600}, ""},
		{serialport.Config{Baud: 57600}, "path"},
		{serialport.Config{Path: "/dev/x", Baud: 56000}, "baud"},
		{serialport.Config{Path: "/dev/x", Baud: 9600, ReadTimeout: 30 * time.Second}, "read_timeout"},
	} {
		err := c.cfg.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !contains(err.Error(), c.want)) {
			t.Errorf("Validate(%+v): got %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
}

func contains(s, sub string) bool { return sub != "" && strings.Contains(s, sub) }

// A line on a pty: what the device wrote before the port opened is flushed, silence reads as
// (0, nil) after the read timeout, Close returns promptly, and a hung-up line is ErrHangup.
func TestPortOnAPty(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	master.Write([]byte("stale bytes from before"))
	time.Sleep(50 * time.Millisecond)

	p, err := serialport.Open(serialport.Config{Path: slave.Name(), Baud: 57600, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	start := time.Now()
	n, err := p.Read(buf)
	if n != 0 || err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("read on a silent line after the flush: %d bytes %q, %v after %v; want (0, nil) after the timeout", n, buf[:n], err, time.Since(start))
	}
	master.Write([]byte{0xEF, 0x01})
	if n, err := p.Read(buf); n != 2 || err != nil {
		t.Fatalf("read: %d, %v; want the 2 bytes written", n, err)
	}
	if _, err := p.Write([]byte{0x55}); err != nil {
		t.Fatalf("write: %v", err)
	}

	master.Close()
	slave.Close() // nothing holds the line open any more: the device is gone
	var werr error
	for i := 0; i < 10 && werr == nil; i++ {
		_, werr = p.Write([]byte{0x01})
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(werr, serialport.ErrHangup) {
		t.Errorf("write to a hung-up line: got %v, want ErrHangup", werr)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return within 2 s")
	}
}

func TestOpenMissingDevice(t *testing.T) {
	_, err := serialport.Open(serialport.Config{Path: "/dev/does-not-exist", Baud: 9600})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}
