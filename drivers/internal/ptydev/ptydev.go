// Package ptydev puts an emulated serial device on a pseudo-terminal, for the device emulators
// (drivers/zfm/emu, drivers/lineterm/emu). The emulator works on the master side; the driver under
// test opens the slave side through a stable path, a symbolic link, exactly as it would open
// /dev/ttyUSB0, through github.com/tarm/serial.
//
// Three habits of a pseudo-terminal that an emulator needs handled, and that Open handles:
//
//   - creack/pty leaves the master in blocking mode, where closing it does not end a Read or Write
//     in progress. Open hands out a non-blocking duplicate instead, served by the runtime poller:
//     Close ends a blocked Read or Write, and write deadlines work.
//   - A fresh slave translates input (ICRNL turns CR into LF), echoes and is line-buffered. Open
//     puts it in raw mode, 8 bits, as a serial line is before the driver configures it.
//   - When the last handle on the slave side closes, reads of the master fail with EIO. The Pty
//     keeps its own slave handle open, so the driver closing and reopening the port does not look
//     like a hang-up to the emulator.
package ptydev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Pty is an open pseudo-terminal pair.
type Pty struct {
	// Master is the emulator's side, non-blocking: Close ends a Read or Write in progress.
	Master *os.File
	// Slave is the emulator's own handle on the device side, kept open while the Pty is.
	Slave *os.File
}

// Open opens a pseudo-terminal pair with a non-blocking master and a raw slave.
func Open() (*Pty, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("ptydev: open: %w", err)
	}
	master, err := nonblocking(m)
	m.Close() // the duplicate, or nothing, remains
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := MakeRaw(s); err != nil {
		master.Close()
		s.Close()
		return nil, err
	}
	return &Pty{Master: master, Slave: s}, nil
}

// nonblocking returns a non-blocking close-on-exec duplicate of f, which Go's poller then serves.
func nonblocking(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("ptydev: master: %w", err)
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return nil, fmt.Errorf("ptydev: dup master: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("ptydev: dup master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ptydev: master: set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// MakeRaw turns off a terminal's input translation, echo, canonical mode and signals, and sets
// 8-bit characters without parity, so that bytes pass unchanged.
func MakeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("ptydev: raw mode of %s: %w", f.Name(), err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			serr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag = t.Cflag&^(unix.CSIZE|unix.PARENB) | unix.CS8
		serr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("ptydev: raw mode of %s: %w", f.Name(), err)
	}
	return nil
}

// Path is the slave side's path, /dev/pts/N: what the link points to.
func (p *Pty) Path() string { return p.Slave.Name() }

// Close closes both sides. The driver's next write to the slave fails as on a hang-up (EIO), and
// a Read or Write of the master in progress ends with os.ErrClosed.
func (p *Pty) Close() error {
	if err := errors.Join(p.Master.Close(), p.Slave.Close()); err != nil {
		return fmt.Errorf("ptydev: close: %w", err)
	}
	return nil
}

// ErrNotLink is returned by Link when the link path holds something other than a symbolic link.
var ErrNotLink = errors.New("the path exists and is not a symbolic link")

// Link makes link a symbolic link to target, atomically: a new link is renamed over the old one,
// so a driver reopening link at any moment finds the old device or the new one, never nothing. An
// existing link is replaced (a stale one left by a crash included), any other kind of file is
// refused with ErrNotLink.
func Link(target, link string) error {
	if link == "" {
		return errors.New("ptydev: link: empty path")
	}
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("ptydev: link %s: %w", link, ErrNotLink)
	}
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp) // a leftover of a crash; nothing to do if absent
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("ptydev: link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ptydev: link %s: %w", link, err)
	}
	return nil
}

// Unlink removes link if it is a symbolic link to target, and leaves it alone otherwise (another
// emulator has taken the path over since). A missing link is not an error.
func Unlink(link, target string) error {
	got, err := os.Readlink(link)
	if err != nil || got != target {
		return nil
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ptydev: unlink %s: %w", link, err)
	}
	return nil
}
