package lineterm_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/lineterm"
	"github.com/kaoqin/kaoqin/drivers/lineterm/emu"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

const (
	facePattern = `^FACE:(?P<id>[^:]+):(?P<score>[^:]*):(?P<kind>[^:]*)$`
	readTimeout = 100 * time.Millisecond
)

var framings = []lineterm.Framing{lineterm.LF, lineterm.CRLF, lineterm.CR, lineterm.STXETX}

func faceConfig(f lineterm.Framing) lineterm.Config {
	return lineterm.Config{
		Framing:      f,
		Pattern:      facePattern,
		Method:       drivers.Face,
		PassUnmapped: true,
	}
}

// rig is a Terminal reading an emulator through a pty, opened through serialport like any line.
type rig struct {
	t       *testing.T
	emu     *emu.Emulator
	term    *lineterm.Terminal
	framing lineterm.Framing
}

func newRig(t *testing.T, cfg lineterm.Config) *rig {
	t.Helper()
	e, err := emu.Start(filepath.Join(t.TempDir(), "tty"))
	if err != nil {
		t.Fatalf("emu.Start: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	cfg.Port = serialport.Config{Path: e.Link(), Baud: 9600, ReadTimeout: readTimeout}
	term, err := lineterm.Open("door-1", cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { term.Close() })
	return &rig{t: t, emu: e, term: term, framing: cfg.Framing}
}

// play plays script to the end; scripts here are small enough not to fill the line.
func (r *rig) play(script string) {
	r.t.Helper()
	sc, err := emu.ParseScript(strings.NewReader(script))
	if err != nil {
		r.t.Fatalf("ParseScript: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.emu.Play(ctx, sc, r.framing, nil); err != nil {
		r.t.Fatalf("Play: %v", err)
	}
}

func (r *rig) next() drivers.Reading {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rd, err := r.term.Next(ctx)
	if err != nil {
		r.t.Fatalf("Next: got %v, want a reading", err)
	}
	return rd
}

// expect reads one reading per want, comparing Subject, Score, Intent and Detail.
func (r *rig) expect(want ...drivers.Reading) {
	r.t.Helper()
	for i, w := range want {
		got := r.next()
		if got.Subject != w.Subject || got.Score != w.Score || got.Intent != w.Intent || got.Detail != w.Detail {
			r.t.Fatalf("reading %d: got subject %q score %v intent %q detail %q; want subject %q score %v intent %q detail %q",
				i, got.Subject, got.Score, got.Intent, got.Detail, w.Subject, w.Score, w.Intent, w.Detail)
		}
	}
}

func (r *rig) expectDropped(want uint64) {
	r.t.Helper()
	if h := r.term.Health(); h.Dropped != want {
		r.t.Errorf("Health().Dropped: got %d, want %d (last error %q)", h.Dropped, want, h.LastErr)
	}
}

func face(id string, score float64, intent drivers.Intent, line string) drivers.Reading {
	return drivers.Reading{Subject: id, Score: score, Intent: intent, Detail: line}
}

func TestReadings(t *testing.T) {
	for _, f := range framings {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t, faceConfig(f))
			before := time.Now()
			r.play("line FACE:T001:0.93:in\nline FACE:T002:0.5:out\nline   FACE:T003::  ")
			got := r.next()
			want := drivers.Reading{Source: "door-1", Method: drivers.Face, Subject: "T001", Score: 0.93, Intent: drivers.SignIn, Detail: "FACE:T001:0.93:in"}
			if got.Source != want.Source || got.Method != want.Method || got.Subject != want.Subject || got.Score != want.Score ||
				got.Intent != want.Intent || got.Detail != want.Detail || got.Evidence != nil || got.At.Before(before) || time.Since(got.At) > time.Minute {
				t.Fatalf("got %+v, want %+v with At after %v", got, want, before)
			}
			r.expect(face("T002", 0.5, drivers.SignOut, "FACE:T002:0.5:out"), face("T003", 0, drivers.Auto, "FACE:T003::"))
			h := r.term.Health()
			if h.State != drivers.StateOK || h.Readings != 3 || h.Dropped != 0 {
				t.Errorf("Health: got %+v, want state ok, 3 readings, 0 dropped", h)
			}
		})
	}
}

func TestSplitGarbageNoise(t *testing.T) {
	for _, f := range framings {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t, faceConfig(f))
			r.play(`noise 40
split
line FACE:T001:0.9:in
raw "\x03\x00 \x7f"
noise 100
split
noise 10
line FACE:T002:0.8:out
line hello
line FACE:T003:0.7:in
`)
			r.expect(face("T001", 0.9, drivers.SignIn, "FACE:T001:0.9:in"), face("T002", 0.8, drivers.SignOut, "FACE:T002:0.8:out"),
				face("T003", 0.7, drivers.SignIn, "FACE:T003:0.7:in"))
			// Noise is a garbage line each time, except between STX/ETX frames where it is ignored; the
			// raw junk runs into the next noise line (or lies outside any frame).
			want := uint64(3 + 1)
			if f == lineterm.STXETX {
				want = 1
			}
			r.expectDropped(want)
		})
	}
}

func TestOverlong(t *testing.T) {
	for _, f := range framings {
		t.Run(f.String(), func(t *testing.T) {
			cfg := faceConfig(f)
			cfg.MaxLine = 24
			r := newRig(t, cfg)
			r.play(`long 25
line FACE:T001:0.9:in
split
long 40
line FACE:T0000000000000002:0.9:in
long 24
line FACE:T000000000003:0.9:i
`)
			// long 24 fits but does not match; the last line is exactly 24 bytes.
			r.expect(face("T001", 0.9, drivers.SignIn, "FACE:T001:0.9:in"), face("T000000000003", 0.9, drivers.Auto, "FACE:T000000000003:0.9:i"))
			r.expectDropped(4)
			if h := r.term.Health(); h.State != drivers.StateOK {
				t.Errorf("Health().State after a good reading: got %q, want ok", h.State)
			}
		})
	}
}

func TestUnmatchedDropped(t *testing.T) {
	r := newRig(t, faceConfig(lineterm.LF))
	r.play(`line hello
line FACE::0.9:in
line FACE:T1:0.9
line FACE:T1:high:in
line BOOT v1.2
`)
	ctx, cancel := context.WithTimeout(context.Background(), 4*readTimeout)
	defer cancel()
	if rd, err := r.term.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next after only bad lines: got %+v, %v; want no reading and DeadlineExceeded", rd, err)
	}
	h := r.term.Health()
	if h.Dropped != 5 || h.Readings != 0 || h.State != drivers.StateDegraded || !strings.Contains(h.LastErr, "BOOT v1.2") {
		t.Errorf("Health: got %+v; want 5 dropped, 0 readings, degraded, last error naming the last line", h)
	}
	r.play("line FACE:T1:1:in")
	r.expect(face("T1", 1, drivers.SignIn, "FACE:T1:1:in"))
	if h := r.term.Health(); h.State != drivers.StateOK || h.Readings != 1 {
		t.Errorf("Health after a good reading: got %+v, want ok, 1 reading", h)
	}
}

func TestWiegand(t *testing.T) {
	for _, w := range []lineterm.Wiegand{lineterm.Wiegand26, lineterm.Wiegand34} {
		t.Run(w.String(), func(t *testing.T) {
			r := newRig(t, lineterm.Config{
				Framing:      lineterm.CRLF,
				Method:       drivers.Card,
				Wiegand:      w,
				Map:          map[string]string{"12:34567": "T001"},
				PassUnmapped: true,
			})
			frame, err := w.Encode(lineterm.Credential{Facility: 12, Card: 34567})
			if err != nil {
				t.Fatal(err)
			}
			other, err := w.Encode(lineterm.Credential{Facility: 1, Card: 2})
			if err != nil {
				t.Fatal(err)
			}
			n := w.String()
			r.play(fmt.Sprintf(`wiegand%[1]s 12 34567
badparity%[1]s 12 34567 even
badparity%[1]s 12 34567 odd bits
wiegand%[1]s 12 34567 bits
badparity%[1]s 12 34567 odd
badparity%[1]s 12 34567 even bits
line 12:34567
wiegand%[1]s 1 2
`, n))
			r.expect(
				drivers.Reading{Subject: "T001", Detail: w.Hex(frame)},
				drivers.Reading{Subject: "T001", Detail: w.Bits(frame)},
				drivers.Reading{Subject: "1:2", Detail: w.Hex(other)},
			)
			r.expectDropped(5)
		})
	}
}

// clock is a settable clock for repeat suppression.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRepeatSuppression(t *testing.T) {
	cfg := faceConfig(lineterm.LF)
	cfg.Repeat = 5 * time.Second
	r := newRig(t, cfg)
	clk := &clock{now: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)}
	lineterm.SetClock(r.term, clk.Now)

	r.play("line FACE:T1:0.9:in\nrepeat 3\nline FACE:T2:0.8:in\nline FACE:T1:0.7:out")
	first := r.next()
	r.expect(face("T2", 0.8, drivers.SignIn, "FACE:T2:0.8:in"))
	if !first.At.Equal(clk.Now()) {
		t.Errorf("At: got %v, want the injected clock's %v", first.At, clk.Now())
	}
	clk.Add(4 * time.Second)
	r.play("line FACE:T1:0.9:in\nline FACE:T3:0.8:in")
	r.expect(face("T3", 0.8, drivers.SignIn, "FACE:T3:0.8:in")) // T1 4s later is still a repeat
	clk.Add(time.Second)
	r.play("line FACE:T1:0.6:in")
	r.expect(face("T1", 0.6, drivers.SignIn, "FACE:T1:0.6:in")) // 5s after the accepted one
	r.expectDropped(0)                                          // repeats are not bad input
}

func TestMapping(t *testing.T) {
	t.Run("trainees", func(t *testing.T) {
		r := newRig(t, lineterm.Config{
			Pattern: `^(?P<id>F\d+)$`, Method: drivers.Face,
			Map:          map[string]string{"F17": "T001", "F18": "T002"},
			PassUnmapped: true,
		})
		r.play("line F17\nline F18\nline F19")
		r.expect(drivers.Reading{Subject: "T001", Detail: "F17"}, drivers.Reading{Subject: "T002", Detail: "F18"},
			drivers.Reading{Subject: "F19", Detail: "F19"})
	})
	t.Run("vouchers unidentified", func(t *testing.T) {
		r := newRig(t, lineterm.Config{
			Framing: lineterm.CR, Method: drivers.Voucher,
			Map: map[string]string{"QR-7F3A": "V2025-0001"},
		})
		r.play("line QR-7F3A\nline QR-0000")
		got := r.next()
		if got.Method != drivers.Voucher || got.Subject != "V2025-0001" || got.Detail != "QR-7F3A" {
			t.Errorf("mapped voucher: got %+v, want method voucher, subject V2025-0001, detail QR-7F3A", got)
		}
		got = r.next()
		if want := `unmapped id "QR-0000": QR-0000`; got.Subject != "" || got.Detail != want {
			t.Errorf("unmapped voucher: got subject %q detail %q, want subject \"\" detail %q", got.Subject, got.Detail, want)
		}
	})
}

func TestHangup(t *testing.T) {
	// A read pending at the hang-up fails with EIO; a read after it returns nothing at once and
	// the zero-length write probe fails. Both must end Next with ErrHangup and no reading.
	for _, tt := range []struct {
		name    string
		pending bool   // Next is waiting in a read when the line hangs up
		via     string // what the error names
	}{
		{"during a read", true, "read"},
		{"between reads", false, "write"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, faceConfig(lineterm.LF))
			var start time.Time
			done := make(chan error, 1)
			next := func() {
				rd, err := r.term.Next(context.Background())
				if err == nil {
					err = fmt.Errorf("got reading %+v", rd)
				}
				done <- err
			}
			if tt.pending {
				go next()
				time.Sleep(2 * readTimeout) // Next is waiting on an idle line
				start = time.Now()
				r.play("hangup")
			} else {
				r.play("hangup")
				time.Sleep(2 * readTimeout)
				start = time.Now()
				go next()
			}
			select {
			case err := <-done:
				if !errors.Is(err, serialport.ErrHangup) || !strings.Contains(err.Error(), tt.via) || time.Since(start) > 2*readTimeout {
					t.Errorf("Next on hang-up: got %v after %v, want ErrHangup from a %s within %v", err, time.Since(start), tt.via, 2*readTimeout)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Next still blocked 2s after the hang-up")
			}
			if h := r.term.Health(); h.State != drivers.StateDown || !strings.Contains(h.LastErr, "hung up") || h.Readings != 0 {
				t.Errorf("Health after hang-up: got %+v, want down with the hang-up as last error and no reading", h)
			}
			// Reopening the link, as the agent does, reaches the emulator's fresh pty.
			if err := r.term.Close(); err != nil {
				t.Fatalf("Close after hang-up: %v", err)
			}
			cfg := faceConfig(lineterm.LF)
			cfg.Port = serialport.Config{Path: r.emu.Link(), Baud: 9600, ReadTimeout: readTimeout}
			term, err := lineterm.Open("door-1", cfg, nil)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer term.Close()
			r.term = term
			r.play("line FACE:T1:1:in")
			r.expect(face("T1", 1, drivers.SignIn, "FACE:T1:1:in"))
		})
	}
}

func TestCloseDoesNotHang(t *testing.T) {
	cfg := faceConfig(lineterm.LF)
	for _, rt := range []time.Duration{100 * time.Millisecond, time.Second} {
		t.Run(rt.String(), func(t *testing.T) {
			r := newRig(t, cfg)
			cfg.Port = serialport.Config{Path: r.emu.Link(), Baud: 9600, ReadTimeout: rt}
			term, err := lineterm.Open("door-2", cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := term.Next(context.Background())
				done <- err
			}()
			time.Sleep(150 * time.Millisecond) // Next is in a read
			start := time.Now()
			if err := term.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if d := time.Since(start); d > rt+200*time.Millisecond {
				t.Errorf("Close with a read pending: took %v, want at most the read timeout %v", d, rt)
			}
			select {
			case err := <-done:
				if !errors.Is(err, lineterm.ErrClosed) {
					t.Errorf("pending Next after Close: got %v, want ErrClosed", err)
				}
			case <-time.After(rt + time.Second):
				t.Fatal("pending Next did not return after Close")
			}
			if err := term.Close(); err != nil {
				t.Errorf("second Close: got %v, want nil", err)
			}
			if _, err := term.Next(context.Background()); !errors.Is(err, lineterm.ErrClosed) {
				t.Errorf("Next after Close: got %v, want ErrClosed", err)
			}
		})
	}
}

func TestNextHonoursContext(t *testing.T) {
	r := newRig(t, faceConfig(lineterm.LF))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.term.Next(ctx)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || time.Since(start) > readTimeout+100*time.Millisecond {
			t.Errorf("Next after cancel: got %v after %v, want context.Canceled within %v", err, time.Since(start), readTimeout)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still blocked 2s after cancel")
	}
	// The terminal stays usable after a cancelled Next.
	r.play("line FACE:T1:1:in")
	r.expect(face("T1", 1, drivers.SignIn, "FACE:T1:1:in"))
}

func TestOpenErrors(t *testing.T) {
	cfg := faceConfig(lineterm.LF)
	cfg.Port = serialport.Config{Path: filepath.Join(t.TempDir(), "missing"), Baud: 9600}
	if term, err := lineterm.Open("door-1", cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "lineterm: door-1: serialport: open") {
		if term != nil {
			term.Close()
		}
		t.Errorf("Open(missing device): got %v, want an error starting \"lineterm: door-1: serialport: open\"", err)
	}
	cfg.Method = ""
	if _, err := lineterm.Open("door-1", cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "lineterm: door-1: method:") {
		t.Errorf("Open(no method): got %v, want a method error", err)
	}
}
