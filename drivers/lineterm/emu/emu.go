// Package emu emulates a line terminal (a face terminal, a Wiegand-to-serial converter, a voucher
// scanner) on a pseudo-terminal, so that drivers/lineterm and the whole agent can be run and tested
// without hardware. It writes the bytes a real terminal writes, as a script says, into the master
// side of a pty and publishes the slave side under a stable path (a symlink) that the driver opens
// as its serial port. `kaoqin emulate lineterm --link PATH --script FILE` calls Run.
//
// The emulator keeps its own handle on the slave side open, so that the driver closing and
// reopening the port does not hang the pty up under it.
//
// # Script format
//
// A script is UTF-8 text, one directive per line. Blank lines and lines whose first non-blank
// character is '#' are ignored. Directives:
//
//	line TEXT                  send TEXT (trimmed) followed by the framing's delimiter, or
//	                           between STX and ETX; "line" alone sends an empty line
//	raw "GO STRING"            send the bytes of a Go quoted string as they are, no framing:
//	                           raw "\x02FACE:T001\x03", raw "garbage\r"
//	long N                     send a line of N 'x' bytes (for overlong-line handling)
//	noise N                    send N random bytes containing no byte the framing uses, then a
//	                           delimiter (LF, CRLF, CR) so the noise arrives as one garbage line;
//	                           under STX/ETX the noise is left between frames
//	split                      send the next line, raw, long, noise, repeat or wiegand byte by
//	                           byte, 2ms apart, so the reader gets it in many reads
//	repeat [N]                 send the last line (line, long or wiegand) again, N times (1)
//	wait DURATION              pause, e.g. wait 500ms, wait 2s
//	wiegand26 FC CARD [FORM]   send a valid 26-bit frame for facility FC, card CARD as a line;
//	wiegand34 FC CARD [FORM]   FORM is hex (the default: 7 or 9 upper-case digits) or bits
//	                           (26 or 34 characters '0'/'1'), see drivers/lineterm
//	badparity26 FC CARD even|odd [FORM]
//	badparity34 FC CARD even|odd [FORM]
//	                           the same frame with its even (leading) or odd (trailing) parity
//	                           bit flipped
//	hangup                     close the pty master, as if the terminal were unplugged (the
//	                           driver's reads end, its writes fail), then publish a fresh pty at
//	                           the same link, as if plugged in again
//	seed N                     seed the noise generator (default 1: noise is reproducible)
//	loop                       play the script again from the top, until stopped; must be the
//	                           last directive and needs a wait before it
//
// A script without loop is played once; Run then keeps the line open until its context is done.
//
// Example, a face terminal printing ID:SCORE:KIND:
//
//	# two sign-ins, a garbled line, a split line, a repeat
//	line FACE:T001:0.93:in
//	wait 500ms
//	noise 40
//	split
//	line FACE:T002:0.88:out
//	repeat
//	wait 2s
//	loop
package emu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers/internal/ptydev"
	"github.com/kaoqin/kaoqin/drivers/lineterm"
)

// SplitGap is the pause between the bytes of a split send.
const SplitGap = 2 * time.Millisecond

// ErrClosed is returned by Play, Hangup and Close after Close.
var ErrClosed = errors.New("emu: emulator closed")

// Emulator is a pseudo-terminal published at a link path. Play writes into it; Close removes it.
type Emulator struct {
	link string

	mu     sync.Mutex // guards the fields below, swapped by Hangup
	master *os.File   // non-blocking, so writes honour deadlines and Close (ptydev.Pty.Master)
	slave  *os.File   // our own handle, kept open (ptydev.Pty.Slave)
	path   string     // the slave's path, /dev/pts/N
}

// Start opens a pseudo-terminal, sets its line discipline raw and makes link a symbolic link to
// the slave side, replacing a stale link left at that path (but no other kind of file).
func Start(link string) (*Emulator, error) {
	if link == "" {
		return nil, errors.New("emu: start: empty link path")
	}
	e := &Emulator{link: link}
	if err := e.open(); err != nil {
		return nil, fmt.Errorf("emu: start: %w", err)
	}
	return e, nil
}

// open makes a fresh pty pair and points the link at it. e.mu must be held or e unshared.
func (e *Emulator) open() error {
	p, err := ptydev.Open()
	if err != nil {
		return err
	}
	if err := ptydev.Link(p.Path(), e.link); err != nil {
		p.Close()
		return err
	}
	e.master, e.slave, e.path = p.Master, p.Slave, p.Path()
	return nil
}

// Path returns the slave side's path (/dev/pts/N), which the link points to. It changes on hangup.
func (e *Emulator) Path() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.path
}

// Link returns the link path given to Start.
func (e *Emulator) Link() string { return e.link }

// Write writes p to the line as it is, blocking while the line is full (nobody reads the slave)
// until ctx is done.
func (e *Emulator) Write(ctx context.Context, p []byte) error {
	e.mu.Lock()
	m := e.master
	e.mu.Unlock()
	if m == nil {
		return ErrClosed
	}
	stop := context.AfterFunc(ctx, func() { m.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := m.Write(p); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("emu: write: %w", err)
	}
	return nil
}

// Hangup closes the pseudo-terminal, so that the driver sees the line hang up, then opens a fresh
// one and points the link at it, so that the driver can reopen the link.
func (e *Emulator) Hangup() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.master == nil {
		return ErrClosed
	}
	err := errors.Join(e.master.Close(), e.slave.Close())
	e.master, e.slave = nil, nil
	if err != nil {
		return fmt.Errorf("emu: hangup: %w", err)
	}
	if err := e.open(); err != nil {
		return fmt.Errorf("emu: hangup: %w", err)
	}
	return nil
}

// Close closes the pseudo-terminal (the driver sees a hang-up) and removes the link if it still
// points to it. A Play or Write in progress fails with ErrClosed.
func (e *Emulator) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.master == nil {
		return nil
	}
	err := errors.Join(e.master.Close(), e.slave.Close())
	e.master, e.slave = nil, nil
	err = errors.Join(err, ptydev.Unlink(e.link, e.path))
	if err != nil {
		return fmt.Errorf("emu: close: %w", err)
	}
	return nil
}

// Play plays sc once (forever if it loops) with the given framing, and returns when it is done,
// ctx is done (with ctx's error) or a write fails. log may be nil.
func (e *Emulator) Play(ctx context.Context, sc *Script, framing lineterm.Framing, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rng := rand.New(rand.NewPCG(sc.seed, 0x6b616f71696e)) // "kaoqin"
	var buf []byte
	for {
		for _, st := range sc.steps {
			if err := ctx.Err(); err != nil {
				return err
			}
			buf = buf[:0]
			switch st.op {
			case opWait:
				if err := sleep(ctx, st.d); err != nil {
					return err
				}
				continue
			case opHangup:
				log.Debug("hanging up", "script_line", st.line)
				if err := e.Hangup(); err != nil {
					return err
				}
				log.Debug("new pseudo-terminal", "path", e.Path())
				continue
			case opLoop:
				continue
			case opSend:
				for range max(st.times, 1) {
					if st.framed {
						buf = framing.Append(buf, st.payload)
					} else {
						buf = append(buf, st.payload...)
					}
				}
			case opNoise:
				for len(buf) < st.n {
					if b := byte(rng.Uint32()); !framing.Delimiter(b) {
						buf = append(buf, b)
					}
				}
				if framing != lineterm.STXETX {
					buf = framing.Append(buf, nil)
				}
			}
			log.Debug("send", "script_line", st.line, "bytes", len(buf), "split", st.split)
			if err := e.send(ctx, buf, st.split); err != nil {
				return err
			}
		}
		if !sc.loops {
			return nil
		}
	}
}

func (e *Emulator) send(ctx context.Context, p []byte, split bool) error {
	if !split {
		return e.Write(ctx, p)
	}
	for i := range p {
		if i > 0 {
			if err := sleep(ctx, SplitGap); err != nil {
				return err
			}
		}
		if err := e.Write(ctx, p[i:i+1]); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Run emulates a line terminal at link until ctx is done: it parses the script (before touching
// anything), starts the emulator, plays the script and keeps the line open; it then closes the
// emulator, removing the link. It returns nil when stopped by ctx, and an error if the script is
// invalid or the pseudo-terminal fails. log may be nil.
func Run(ctx context.Context, link string, script io.Reader, framing lineterm.Framing, log *slog.Logger) (err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc, err := ParseScript(script)
	if err != nil {
		return err
	}
	e, err := Start(link)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.Close()) }()
	log.Info("emulating a line terminal", "link", link, "pty", e.Path(), "framing", framing)
	if err := e.Play(ctx, sc, framing, log); err != nil && ctx.Err() == nil {
		return err
	}
	<-ctx.Done()
	return nil
}
