package emu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers/lineterm"
)

// Script is a parsed emulator script; see the package documentation for the format. A Script holds
// no state of its own and may be played any number of times.
type Script struct {
	steps []step
	seed  uint64
	loops bool
}

type op int

const (
	opSend   op = iota // write payload (framed if framed), possibly byte by byte
	opNoise            // write n random bytes without a framing byte, then end the line
	opWait             // pause for d
	opHangup           // close the master and link a fresh pseudo-terminal
	opLoop             // start again from the first step
)

type step struct {
	op      op
	line    int // script line, for errors and logs
	payload []byte
	framed  bool
	split   bool
	times   int // opSend: how many times, 0 meaning once
	n       int // opNoise: byte count
	d       time.Duration
}

// MaxNoise bounds the byte count of noise and long.
const MaxNoise = 1 << 20

// ParseScript reads a script. Errors name the script line.
func ParseScript(r io.Reader) (*Script, error) {
	p := parser{sc: &Script{seed: 1}}
	scanner := bufio.NewScanner(r)
	for lineNo := 1; scanner.Scan(); lineNo++ {
		text := strings.TrimSpace(scanner.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		if err := p.directive(text, lineNo); err != nil {
			return nil, fmt.Errorf("emu: script line %d: %w", lineNo, err)
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("emu: script: %w", err)
	}
	if p.split {
		return nil, errors.New("emu: script: split at the end, with nothing to send")
	}
	return p.sc, nil
}

// parser is the state of ParseScript between directives.
type parser struct {
	sc      *Script
	last    []byte // the payload of the last line, for repeat
	hasLast bool
	split   bool // a split waits for the next send
	hasWait bool // a non-zero wait has been seen, so a loop does not spin
}

func (p *parser) directive(text string, lineNo int) error {
	f := strings.Fields(text)
	name, rest := f[0], strings.TrimSpace(text[len(f[0]):])
	if p.sc.loops {
		return fmt.Errorf("%s: nothing may follow loop", name)
	}
	st, err := p.parse(name, f[1:], rest)
	if err != nil || st == nil {
		return err
	}
	st.line = lineNo
	switch st.op {
	case opSend, opNoise:
		st.split, p.split = p.split, false
	default:
		if p.split {
			return fmt.Errorf("%s: split must be followed by something to send", name)
		}
	}
	p.sc.steps = append(p.sc.steps, *st)
	return nil
}

// parse parses one directive into a step, or nil for split and seed, which only set state.
func (p *parser) parse(name string, args []string, rest string) (*step, error) {
	nargs := func(lo, hi int) error {
		switch n := len(args); {
		case n >= lo && n <= hi:
			return nil
		case lo == hi:
			return fmt.Errorf("%s: got %d arguments, want %d", name, n, lo)
		default:
			return fmt.Errorf("%s: got %d arguments, want %d to %d", name, n, lo, hi)
		}
	}
	line := func(payload []byte, times int) *step {
		p.last, p.hasLast = payload, true
		return &step{op: opSend, payload: payload, framed: true, times: times}
	}
	switch name {
	case "line":
		return line([]byte(rest), 1), nil
	case "raw":
		s, err := strconv.Unquote(rest)
		if err != nil {
			return nil, fmt.Errorf("raw: %s is not a Go quoted string", rest)
		}
		return &step{op: opSend, payload: []byte(s)}, nil
	case "long", "noise":
		if err := nargs(1, 1); err != nil {
			return nil, err
		}
		n, err := count(args[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if name == "noise" {
			return &step{op: opNoise, n: n}, nil
		}
		return line(bytes.Repeat([]byte{'x'}, n), 1), nil
	case "repeat":
		if err := nargs(0, 1); err != nil {
			return nil, err
		}
		if !p.hasLast {
			return nil, errors.New("repeat: no line before it")
		}
		n := 1
		if len(args) == 1 {
			var err error
			if n, err = count(args[0]); err != nil {
				return nil, fmt.Errorf("repeat: %w", err)
			}
		}
		return line(p.last, n), nil
	case "wait":
		if err := nargs(1, 1); err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 {
			return nil, fmt.Errorf("wait: %q is not a duration such as 500ms", args[0])
		}
		p.hasWait = p.hasWait || d > 0
		return &step{op: opWait, d: d}, nil
	case "wiegand26", "wiegand34", "badparity26", "badparity34":
		payload, err := wiegandFrame(name, args)
		if err != nil {
			return nil, err
		}
		return line(payload, 1), nil
	case "hangup":
		if err := nargs(0, 0); err != nil {
			return nil, err
		}
		return &step{op: opHangup}, nil
	case "loop":
		if err := nargs(0, 0); err != nil {
			return nil, err
		}
		if !p.hasWait {
			return nil, errors.New("loop: no wait before it, the script would spin")
		}
		p.sc.loops = true
		return &step{op: opLoop}, nil
	case "split":
		if err := nargs(0, 0); err != nil {
			return nil, err
		}
		if p.split {
			return nil, errors.New("split: a split is already pending")
		}
		p.split = true
		return nil, nil
	case "seed":
		if err := nargs(1, 1); err != nil {
			return nil, err
		}
		seed, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seed: %q is not an unsigned integer", args[0])
		}
		p.sc.seed = seed
		return nil, nil
	}
	return nil, fmt.Errorf("unknown directive %q", name)
}

// wiegandFrame returns the text of the frame for wiegandNN FACILITY CARD [hex|bits] or
// badparityNN FACILITY CARD even|odd [hex|bits].
func wiegandFrame(name string, args []string) ([]byte, error) {
	bad := strings.HasPrefix(name, "badparity")
	w := lineterm.Wiegand26
	if strings.HasSuffix(name, "34") {
		w = lineterm.Wiegand34
	}
	if n := 2 + btoi(bad); len(args) < n || len(args) > n+1 {
		if bad {
			return nil, fmt.Errorf("%s: want FACILITY CARD even|odd [hex|bits]", name)
		}
		return nil, fmt.Errorf("%s: want FACILITY CARD [hex|bits]", name)
	}
	fc, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%s: facility %q is not a number", name, args[0])
	}
	card, err := strconv.ParseUint(args[1], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%s: card %q is not a number", name, args[1])
	}
	frame, err := w.Encode(lineterm.Credential{Facility: uint32(fc), Card: uint32(card)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	args = args[2:]
	if bad {
		switch args[0] {
		case "even":
			frame ^= 1 << (int(w) - 1)
		case "odd":
			frame ^= 1
		default:
			return nil, fmt.Errorf("%s: parity %q is not even or odd", name, args[0])
		}
		args = args[1:]
	}
	text := w.Hex(frame)
	if len(args) == 1 {
		switch args[0] {
		case "hex":
		case "bits":
			text = w.Bits(frame)
		default:
			return nil, fmt.Errorf("%s: representation %q is not hex or bits", name, args[0])
		}
	}
	return []byte(text), nil
}

func count(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxNoise {
		return 0, fmt.Errorf("%q is not a count in 1..%d", s, MaxNoise)
	}
	return n, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
