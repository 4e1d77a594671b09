package emu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Step is one line of a script: at Offset from the start, Do.
type Step struct {
	Offset time.Duration
	Line   int
	Verb   string
	Args   []string
}

// ParseScript reads a script, one step a line; blank lines and # comments are skipped:
//
//	0s   face T001 张三        a face verified (minor 75) with a capture
//	2s   card T002             a card (minor 1)
//	3s   finger T003           a fingerprint (minor 38)
//	4s   stranger              a face that matched nobody (minor 76), with a capture
//	5s   door                  a door event (no reading)
//	6s   cut 20s               the network is gone for 20 s (events stay in the log)
//	8s   clock +10m            the terminal's clock runs 10 minutes ahead
//	9s   midpart               the next streamed event stops in the middle of its part
//	9s   powercut              the next push stops in the middle of its body
//	10s  replay 5              the last 5 events are pushed again
//
// Offsets rise; an offset earlier than the previous one is an error.
func ParseScript(r io.Reader) ([]Step, error) {
	var steps []Step
	sc := bufio.NewScanner(r)
	var last time.Duration
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("emu: script line %d: want OFFSET VERB [ARGS]", n)
		}
		off, err := time.ParseDuration(f[0])
		if err != nil || off < last {
			return nil, fmt.Errorf("emu: script line %d: offset %q: want a rising duration like 5s", n, f[0])
		}
		last = off
		s := Step{Offset: off, Line: n, Verb: f[1], Args: f[2:]}
		switch s.Verb {
		case "face", "card", "finger":
			if len(s.Args) < 1 {
				return nil, fmt.Errorf("emu: script line %d: %s needs an employeeNo", n, s.Verb)
			}
		case "cut", "clock":
			if len(s.Args) != 1 {
				return nil, fmt.Errorf("emu: script line %d: %s needs a duration", n, s.Verb)
			}
			if _, err := time.ParseDuration(s.Args[0]); err != nil {
				return nil, fmt.Errorf("emu: script line %d: %v", n, err)
			}
		case "replay":
			if len(s.Args) != 1 {
				return nil, fmt.Errorf("emu: script line %d: replay needs a count", n)
			}
			if v, err := strconv.Atoi(s.Args[0]); err != nil || v <= 0 {
				return nil, fmt.Errorf("emu: script line %d: replay count %q", n, s.Args[0])
			}
		case "stranger", "door", "midpart", "powercut":
		default:
			return nil, fmt.Errorf("emu: script line %d: unknown verb %q", n, s.Verb)
		}
		steps = append(steps, s)
	}
	return steps, sc.Err()
}

// Play runs the steps against t in time, returning when they are done or ctx is.
func (t *Terminal) Play(ctx context.Context, steps []Step) error {
	start := time.Now()
	for _, s := range steps {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(start.Add(s.Offset))):
		}
		if err := t.step(ctx, s); err != nil {
			t.log.Warn("emu: step failed", "line", s.Line, "verb", s.Verb, "err", err)
		}
	}
	return nil
}

func (t *Terminal) step(ctx context.Context, s Step) error {
	name := ""
	if len(s.Args) > 1 {
		name = s.Args[1]
	}
	var e Event
	switch s.Verb {
	case "face":
		e = Event{Minor: MinorFacePass, EmployeeNo: s.Args[0], Name: name, Picture: JPEG(byte(len(t.Events())))}
	case "card":
		e = Event{Minor: MinorCard, EmployeeNo: s.Args[0], Name: name}
	case "finger":
		e = Event{Minor: MinorFingerprint, EmployeeNo: s.Args[0], Name: name}
	case "stranger":
		e = Event{Minor: MinorFaceFail, Picture: JPEG(200)}
	case "door":
		e = Event{Minor: MinorDoorOpen}
	case "cut":
		d, _ := time.ParseDuration(s.Args[0])
		t.Cut(true)
		t.log.Info("emu: network cut", "for", d)
		time.AfterFunc(d, func() { t.Cut(false); t.log.Info("emu: network back") })
		return nil
	case "clock":
		d, _ := time.ParseDuration(s.Args[0])
		t.SetClockOffset(d)
		t.log.Info("emu: clock off", "by", d)
		return nil
	case "midpart":
		t.StopMidPart()
		return nil
	case "powercut":
		t.PowerCutMidPush()
		return nil
	case "replay":
		n, _ := strconv.Atoi(s.Args[0])
		evs := t.Events()
		return t.Replay(ctx, evs[max(len(evs)-n, 0):])
	}
	e, err := t.Punch(ctx, e)
	t.log.Info("emu: event", "serial_no", e.Serial, "minor", e.Minor, "employee_no", e.EmployeeNo, "push_err", err)
	return err
}

// Run serves an emulated terminal on addr and plays script (may be nil), until ctx is done.
func Run(ctx context.Context, addr string, cfg Config, script io.Reader, log *slog.Logger) error {
	var steps []Step
	if script != nil {
		var err error
		if steps, err = ParseScript(script); err != nil {
			return err
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Log = log
	t := New(cfg)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emu: %w", err)
	}
	srv := &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("emu: hikvision terminal serving ISAPI", "addr", ln.Addr().String(), "serial", t.cfg.Serial, "user", t.cfg.User)
	pctx, stop := context.WithCancel(ctx)
	played := make(chan struct{})
	go func() {
		defer close(played)
		t.Play(pctx, steps)
	}()
	var serveErr error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		serveErr = <-done
	case serveErr = <-done:
	}
	stop()
	<-played
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}
