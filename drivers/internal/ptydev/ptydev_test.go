package ptydev_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kaoqin/kaoqin/drivers/internal/ptydev"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

func open(t *testing.T) *ptydev.Pty {
	t.Helper()
	p, err := ptydev.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestOpen(t *testing.T) {
	p := open(t)
	if p.Path() == "" || p.Path() != p.Slave.Name() {
		t.Fatalf("Path: got %q, want the slave's name %q", p.Path(), p.Slave.Name())
	}
	fi, err := os.Stat(p.Path())
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("stat %s: got %v, %v, want a character device", p.Path(), fi, err)
	}
	fl, err := unix.FcntlInt(p.Master.Fd(), unix.F_GETFD, 0)
	if err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("master close-on-exec: got flags %#x, %v, want FD_CLOEXEC set", fl, err)
	}
}

func TestRawMode(t *testing.T) {
	p := open(t)
	tio, err := unix.IoctlGetTermios(int(p.Slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Iflag&(unix.ICRNL|unix.IXON|unix.ISTRIP) != 0 {
		t.Errorf("iflag: got %#x, want ICRNL, IXON and ISTRIP off", tio.Iflag)
	}
	if tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
		t.Errorf("lflag: got %#x, want ECHO, ICANON and ISIG off", tio.Lflag)
	}
	if tio.Oflag&unix.OPOST != 0 {
		t.Errorf("oflag: got %#x, want OPOST off", tio.Oflag)
	}
	if tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cflag&unix.PARENB != 0 {
		t.Errorf("cflag: got %#x, want CS8 without parity", tio.Cflag)
	}
	// Bytes a cooked terminal would change (CR, ^C, ^S, DEL, 8-bit) arrive unchanged, at once,
	// without a newline, and nothing is echoed back.
	want := []byte{'a', '\r', 0x03, 0x13, 0x7F, 0xEF, 0x01, 0xFF}
	if _, err := p.Master.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := readFull(p.Slave, got); err != nil {
		t.Fatalf("read slave: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("slave read: got % X, want % X", got, want)
	}
	p.Master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := p.Master.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("master after a write: got %d bytes (%v), want no echo", n, err)
	}
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ttyEMU")
	p, q := open(t), open(t)
	if err := ptydev.Link(p.Path(), link); err != nil {
		t.Fatalf("Link: %v", err)
	}
	if got, err := os.Readlink(link); err != nil || got != p.Path() {
		t.Fatalf("readlink: got %q, %v, want %q", got, err, p.Path())
	}
	// An existing link is replaced, and no temporary file is left behind.
	if err := ptydev.Link(q.Path(), link); err != nil {
		t.Fatalf("Link over a link: %v", err)
	}
	if got, _ := os.Readlink(link); got != q.Path() {
		t.Errorf("readlink after relinking: got %q, want %q", got, q.Path())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory after two links: got %d entries, want the link alone", len(ents))
	}
	// Unlink leaves a link that points elsewhere, removes its own.
	if err := ptydev.Unlink(link, p.Path()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("Unlink of another pty's link: got %v, want the link kept", err)
	}
	if err := ptydev.Unlink(link, q.Path()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Unlink of its own link: got %v, want it removed", err)
	}
	if err := ptydev.Unlink(link, q.Path()); err != nil {
		t.Errorf("Unlink of a missing link: got %v, want nil", err)
	}
	// A regular file at the path is refused and left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ptydev.Link(p.Path(), file); !errors.Is(err, ptydev.ErrNotLink) {
		t.Errorf("Link over a file: got %v, want ErrNotLink", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("file after a refused Link: got %q, want it untouched", b)
	}
	if err := ptydev.Link(p.Path(), ""); err == nil {
		t.Errorf("Link to an empty path: got nil, want an error")
	}
}

// A driver opens the link through tarm/serial (drivers/serialport) and talks both ways; closing
// and reopening the port does not disturb the master side.
func TestRoundTripThroughSerialport(t *testing.T) {
	p := open(t)
	link := filepath.Join(t.TempDir(), "ttyEMU")
	if err := ptydev.Link(p.Path(), link); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
		if err != nil {
			t.Fatalf("open %d: %v", i+1, err)
		}
		down := []byte{0xEF, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00, 0x03, 0x00, 0x00, 0x0A, '\r', '\n'}
		if _, err := p.Master.Write(down); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 64)
		for tries := 0; len(got) < len(down) && tries < 50; tries++ {
			n, err := port.Read(buf)
			if err != nil {
				t.Fatalf("open %d: port read: %v", i+1, err)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, down) {
			t.Errorf("open %d: port read: got % X, want % X", i+1, got, down)
		}
		up := []byte("GenImg\r\x00\xFF")
		if _, err := port.Write(up); err != nil {
			t.Fatalf("open %d: port write: %v", i+1, err)
		}
		back := make([]byte, len(up))
		p.Master.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := readFull(p.Master, back); err != nil || !bytes.Equal(back, up) {
			t.Errorf("open %d: master read: got %q, %v, want %q", i+1, back, err, up)
		}
		if err := port.Close(); err != nil {
			t.Fatalf("open %d: close: %v", i+1, err)
		}
	}
	// After the driver closed the port, the master still works: nothing reads as a hang-up.
	p.Master.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := p.Master.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("master read after the port closed: got %v, want a plain timeout", err)
	}
}

// Close ends a Read of the master in progress; the driver's next write fails as a hang-up.
func TestCloseUnblocksRead(t *testing.T) {
	p, err := ptydev.Open()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ttyEMU")
	if err := ptydev.Link(p.Path(), link); err != nil {
		t.Fatal(err)
	}
	port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	done := make(chan error, 1)
	go func() {
		_, err := p.Master.Read(make([]byte, 16))
		done <- err
	}()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("read in progress at Close: got %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read of the master was still blocked 5s after Close")
	}
	if _, err := port.Write([]byte{0x55}); !errors.Is(err, serialport.ErrHangup) {
		t.Errorf("port write after Close: got %v, want serialport.ErrHangup", err)
	}
}
