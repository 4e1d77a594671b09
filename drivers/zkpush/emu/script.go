package emu

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Play runs a script against the terminal, one step a line ('#' starts a comment):
//
//	boot                              the init handshake
//	punch PIN [status=N] [verify=N] [photo] [at=YYYYMMDDhhmmss]
//	                                  a punch (verify 15 face by default; at the terminal's
//	                                  clock unless at= is given, in the terminal's zone)
//	upload                            send the unsent lines and photos
//	poll                              take and execute commands
//	wait DURATION                     e.g. "wait 2s"
//	powercut BYTES                    the next upload stops after BYTES bytes
//	network down|up                   cut or restore the network
//	clock OFFSET                      move the terminal's clock off the real one ("+1h", "0")
//	replay                            send the last acknowledged batch again
//
// A step that fails (a refused upload, a cut network) is logged and the script goes on: the
// terminal keeps what was not acknowledged and sends it again at its next upload.
func (t *Terminal) Play(ctx context.Context, script io.Reader) error {
	sc := bufio.NewScanner(script)
	n, seed := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		var err error
		switch f[0] {
		case "boot":
			err = t.Boot(ctx)
		case "punch":
			var p Punch
			if p, err = t.parsePunch(f[1:], &seed); err == nil {
				t.Punch(p)
			}
		case "upload":
			err = t.Upload(ctx)
		case "poll":
			err = t.Poll(ctx)
		case "replay":
			err = t.Replay(ctx)
		case "wait":
			var d time.Duration
			if len(f) != 2 {
				return fmt.Errorf("emu: script line %d: wait DURATION", n)
			}
			if d, err = time.ParseDuration(f[1]); err != nil {
				return fmt.Errorf("emu: script line %d: %w", n, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		case "powercut":
			b := 0
			if len(f) == 2 {
				b, err = strconv.Atoi(f[1])
			}
			if len(f) != 2 || err != nil || b <= 0 {
				return fmt.Errorf("emu: script line %d: powercut BYTES", n)
			}
			t.CutPower(b)
		case "network":
			if len(f) != 2 || (f[1] != "down" && f[1] != "up") {
				return fmt.Errorf("emu: script line %d: network down|up", n)
			}
			t.SetNetwork(f[1] == "down")
		case "clock":
			var d time.Duration
			if len(f) == 2 {
				d, err = time.ParseDuration(strings.TrimPrefix(f[1], "+"))
			}
			if len(f) != 2 || err != nil {
				return fmt.Errorf("emu: script line %d: clock OFFSET", n)
			}
			t.SetClockOffset(d)
		default:
			return fmt.Errorf("emu: script line %d: unknown step %q", n, f[0])
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if f[0] == "punch" {
				return fmt.Errorf("emu: script line %d: %w", n, err)
			}
			t.log.Warn("emu: step failed", "line", n, "step", f[0], "err", err)
		}
	}
	return sc.Err()
}

func (t *Terminal) parsePunch(args []string, seed *int) (Punch, error) {
	if len(args) == 0 {
		return Punch{}, fmt.Errorf("punch PIN [status=N] [verify=N] [photo] [at=YYYYMMDDhhmmss]")
	}
	p := Punch{PIN: args[0], Verify: 15}
	for _, a := range args[1:] {
		k, v, _ := strings.Cut(a, "=")
		var err error
		switch k {
		case "status":
			p.Status, err = strconv.Atoi(v)
		case "verify":
			p.Verify, err = strconv.Atoi(v)
		case "photo":
			*seed++
			p.Photo = Capture(*seed)
		case "at":
			p.At, err = time.ParseInLocation("20060102150405", v, t.cfg.Zone)
		default:
			err = fmt.Errorf("unknown argument %q", a)
		}
		if err != nil {
			return Punch{}, fmt.Errorf("punch %s: %w", a, err)
		}
	}
	return p, nil
}

// Run is `kaoqin emulate zkpush`: a terminal with the given serial that plays script (if any)
// against the server, then runs its own loop (upload, poll every Delay) until ctx is done.
func Run(ctx context.Context, server, serial string, script io.Reader, log *slog.Logger) error {
	t := New(Config{Server: server, Serial: serial, Log: log})
	if script != nil {
		if err := t.Play(ctx, script); err != nil {
			if ctx.Err() != nil {
				return nil // stopped mid-script: the normal end of an emulator
			}
			return err
		}
	}
	err := t.Serve(ctx, 1)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
