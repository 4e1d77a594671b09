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

	"github.com/kaoqin/kaoqin/drivers/zfm"
)

// Step is one line of a script.
type Step struct {
	Line    int
	Op      string // wait, place, lift, touch, preload, store, erase, fault
	Finger  string
	Fingers []string
	Wait    time.Duration
	Page    int
	Fault   Fault
}

// Script is a parsed script: its steps, and whether it starts again when it ends.
type Script struct {
	Steps  []Step
	Repeat bool
}

// ParseScript reads the script format described in the package documentation. Errors name the
// line.
func ParseScript(r io.Reader) (Script, error) {
	var sc Script
	waits := false
	lines := bufio.NewScanner(r)
	for n := 1; lines.Scan(); n++ {
		text := lines.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if sc.Repeat {
			return sc, fmt.Errorf("emu: script line %d: nothing may follow repeat", n)
		}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("emu: script line %d: %s: %s", n, f[0], fmt.Sprintf(format, a...))
		}
		st := Step{Line: n, Op: f[0]}
		args := f[1:]
		switch f[0] {
		case "wait":
			if len(args) != 1 {
				return sc, bad("want wait DURATION")
			}
			d, err := time.ParseDuration(args[0])
			if err != nil || d <= 0 {
				return sc, bad("%q is not a positive duration (500ms, 2s)", args[0])
			}
			st.Wait, waits = d, true
		case "place":
			if len(args) != 1 {
				return sc, bad("want place FINGER")
			}
			st.Finger = args[0]
		case "lift":
			if len(args) != 0 {
				return sc, bad("takes no arguments")
			}
		case "touch":
			if len(args) < 1 || len(args) > 2 {
				return sc, bad("want touch FINGER [DURATION]")
			}
			st.Finger, st.Wait = args[0], time.Second
			if len(args) == 2 {
				d, err := time.ParseDuration(args[1])
				if err != nil || d <= 0 {
					return sc, bad("%q is not a positive duration", args[1])
				}
				st.Wait = d
			}
			waits = true
		case "preload":
			if len(args) == 0 {
				return sc, bad("want preload FINGER...")
			}
			st.Fingers = args
		case "store", "erase":
			if (f[0] == "store" && len(args) != 2) || (f[0] == "erase" && len(args) != 1) {
				return sc, bad("want store PAGE FINGER or erase PAGE")
			}
			page, err := strconv.Atoi(args[0])
			if err != nil || page < 0 {
				return sc, bad("%q is not a page number", args[0])
			}
			st.Page = page
			if f[0] == "store" {
				st.Finger = args[1]
			}
		case "fault":
			ft, err := parseFault(args)
			if err != nil {
				return sc, bad("%v", err)
			}
			st.Fault = ft
		case "repeat":
			if len(args) != 0 {
				return sc, bad("takes no arguments")
			}
			if !waits {
				return sc, bad("a repeated script needs a wait or a touch")
			}
			sc.Repeat = true
			continue
		default:
			return sc, fmt.Errorf("emu: script line %d: unknown command %q", n, f[0])
		}
		sc.Steps = append(sc.Steps, st)
	}
	if err := lines.Err(); err != nil {
		return sc, fmt.Errorf("emu: script: %w", err)
	}
	return sc, nil
}

// parseFault reads "KIND [INSTR]" or "code CODE [INSTR]".
func parseFault(args []string) (Fault, error) {
	if len(args) == 0 {
		return Fault{}, fmt.Errorf("want fault KIND [INSTR]")
	}
	kind, ok := faultNames[args[0]]
	if !ok {
		return Fault{}, fmt.Errorf("unknown fault %q (drop, badsum, garbage, split, hangup, flipbit, code)", args[0])
	}
	ft := Fault{Kind: kind}
	rest := args[1:]
	if kind == FaultCode {
		if len(rest) == 0 {
			return Fault{}, fmt.Errorf("want fault code CODE [INSTR]")
		}
		c, err := strconv.ParseUint(rest[0], 0, 8)
		if err != nil {
			return Fault{}, fmt.Errorf("%q is not a confirmation code (0x06)", rest[0])
		}
		ft.Code, rest = zfm.Code(c), rest[1:]
	}
	switch len(rest) {
	case 0:
	case 1:
		in, ok := zfm.ParseInstr(rest[0])
		if !ok {
			c, err := strconv.ParseUint(rest[0], 0, 8)
			if err != nil || c == 0 {
				return Fault{}, fmt.Errorf("%q is not an instruction (search, 0x04)", rest[0])
			}
			in = zfm.Instr(c)
		}
		ft.Instr = in
	default:
		return Fault{}, fmt.Errorf("too many arguments")
	}
	return ft, nil
}

// Run is what `kaoqin emulate zfm` runs: an R503-like module (200 pages, realistic latencies, a
// 200 ms power-up ending with the stray 0x55) behind link, playing script until ctx is done. See
// Emulator.Run.
func Run(ctx context.Context, link string, script io.Reader, log *slog.Logger) error {
	e := New(Config{Latency: Realistic, PowerUp: 200 * time.Millisecond, WakeByte: true})
	return e.Run(ctx, link, script, log)
}

// Run starts the emulator behind link, plays the script (nil for none) and serves until ctx is
// done; then it closes the emulator and returns nil. It returns an error for a script that does
// not parse, a link it cannot make, or a step that cannot be done (a page beyond the library).
// log, if not nil, replaces Config.Log; every step is logged at Info.
func (e *Emulator) Run(ctx context.Context, link string, script io.Reader, log *slog.Logger) error {
	var sc Script
	if script != nil {
		var err error
		if sc, err = ParseScript(script); err != nil {
			return err
		}
	}
	if log != nil && !e.isStarted() {
		e.log = log // no goroutine reads it before Start
	}
	if err := e.Start(link); err != nil {
		return err
	}
	defer e.Close()
	for {
		for _, st := range sc.Steps {
			if err := e.play(ctx, st); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if !sc.Repeat {
			break
		}
	}
	<-ctx.Done()
	return nil
}

func (e *Emulator) play(ctx context.Context, st Step) error {
	e.log.Info("emu: script", "line", st.Line, "op", st.Op, "finger", st.Finger)
	switch st.Op {
	case "wait":
		return sleep(ctx, st.Wait)
	case "place":
		e.Place(st.Finger)
	case "lift":
		e.Lift()
	case "touch":
		e.Place(st.Finger)
		err := sleep(ctx, st.Wait)
		e.Lift()
		return err
	case "preload":
		if _, err := e.Preload(st.Fingers...); err != nil {
			return fmt.Errorf("emu: script line %d: %w", st.Line, err)
		}
	case "store", "erase":
		var data []byte
		if st.Op == "store" {
			data = Template(st.Finger)
		}
		if err := e.StoreTemplate(st.Page, data); err != nil {
			return fmt.Errorf("emu: script line %d: %w", st.Line, err)
		}
	case "fault":
		e.Inject(st.Fault)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
