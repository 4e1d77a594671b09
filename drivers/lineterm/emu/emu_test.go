package emu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/lineterm"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

func TestParseScriptErrors(t *testing.T) {
	for _, tt := range []struct {
		script string
		want   string
	}{
		{"blink", `line 1: unknown directive "blink"`},
		{"# c\n\nwait soon", `line 3: wait: "soon" is not a duration`},
		{"wait -1s", `line 1: wait: "-1s" is not a duration`},
		{"wait", "line 1: wait: got 0 arguments, want 1"},
		{"repeat", "line 1: repeat: no line before it"},
		{"raw \"\\x02\"\nrepeat", "line 2: repeat: no line before it"},
		{"line a\nrepeat 0", `line 2: repeat: "0" is not a count`},
		{"line a\nloop", "line 2: loop: no wait before it"},
		{"wait 0s\nloop", "line 2: loop: no wait before it"},
		{"wait 1s\nloop\nline a", "line 3: line: nothing may follow loop"},
		{"split", "split at the end"},
		{"split\nwait 1s", "line 2: wait: split must be followed by something to send"},
		{"split\nsplit", "line 2: split: a split is already pending"},
		{"raw abc", "line 1: raw: abc is not a Go quoted string"},
		{"noise", "line 1: noise: got 0 arguments, want 1"},
		{"noise 0", `line 1: noise: "0" is not a count`},
		{"long 99999999", `line 1: long: "99999999" is not a count`},
		{"wiegand26 12", "line 1: wiegand26: want FACILITY CARD [hex|bits]"},
		{"wiegand26 256 1", "line 1: wiegand26: lineterm: wiegand: encode: facility 256 does not fit in 8 bits"},
		{"wiegand34 1 65536", "card 65536 does not fit"},
		{"wiegand26 1 x", `line 1: wiegand26: card "x" is not a number`},
		{"wiegand26 1 2 oct", `line 1: wiegand26: representation "oct" is not hex or bits`},
		{"badparity26 1 2", "line 1: badparity26: want FACILITY CARD even|odd [hex|bits]"},
		{"badparity34 1 2 both", `line 1: badparity34: parity "both" is not even or odd`},
		{"hangup now", "line 1: hangup: got 1 arguments, want 0"},
		{"seed -1", `line 1: seed: "-1" is not an unsigned integer`},
	} {
		_, err := ParseScript(strings.NewReader(tt.script))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseScript(%q): got %v, want an error containing %q", tt.script, err, tt.want)
		}
	}
}

func mustParse(t *testing.T, script string) *Script {
	t.Helper()
	sc, err := ParseScript(strings.NewReader(script))
	if err != nil {
		t.Fatalf("ParseScript: %v", err)
	}
	return sc
}

// rig starts an emulator in a temporary directory and opens its link through serialport, as the
// driver does.
func rig(t *testing.T) (*Emulator, *serialport.Port) {
	t.Helper()
	e, err := Start(filepath.Join(t.TempDir(), "tty"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e, open(t, e.Link())
}

func open(t *testing.T, path string) *serialport.Port {
	t.Helper()
	p, err := serialport.Open(serialport.Config{Path: path, Baud: 9600, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("serialport.Open(%s): %v", path, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// readN reads from p until it has n bytes or two seconds pass, and counts the reads it took.
func readN(t *testing.T, p *serialport.Port, n int) (got []byte, reads int) {
	t.Helper()
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(2 * time.Second); len(got) < n && time.Now().Before(deadline); {
		k, err := p.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if k > 0 {
			got, reads = append(got, buf[:k]...), reads+1
		}
	}
	return got, reads
}

func play(t *testing.T, e *Emulator, script string, f lineterm.Framing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Play(ctx, mustParse(t, script), f, nil); err != nil {
		t.Fatalf("Play: %v", err)
	}
}

func TestPlayBytes(t *testing.T) {
	script := `# every directive that sends, under each framing
line FACE:T001:0.93:in
raw "\x02junk\r"
wiegand26 12 34567
wiegand34 1234 34567 bits
badparity26 12 34567 even
badparity26 12 34567 odd bits
long 5
line
repeat 2
wait 1ms
`
	body := []string{
		"FACE:T001:0.93:in", "\x02junk\r", "2190E0F", "1000001001101001010000111000001110",
		"0190E0F", "10000110010000111000001110", "xxxxx", "", "", "",
	}
	for _, f := range []lineterm.Framing{lineterm.LF, lineterm.CRLF, lineterm.CR, lineterm.STXETX} {
		t.Run(f.String(), func(t *testing.T) {
			e, p := rig(t)
			var want []byte
			for i, b := range body {
				if i == 1 {
					want = append(want, b...) // raw
					continue
				}
				want = f.Append(want, []byte(b))
			}
			play(t, e, script, f)
			if got, _ := readN(t, p, len(want)); !bytes.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestPlaySplit(t *testing.T) {
	e, p := rig(t)
	done := make(chan error, 1)
	go func() {
		done <- e.Play(context.Background(), mustParse(t, "split\nline ABCDEFGH"), lineterm.LF, nil)
	}()
	got, reads := readN(t, p, 9)
	if err := <-done; err != nil {
		t.Fatalf("Play: %v", err)
	}
	if string(got) != "ABCDEFGH\n" || reads < 5 {
		t.Errorf("split line: got %q in %d reads, want \"ABCDEFGH\\n\" in at least 5 reads", got, reads)
	}
}

func TestPlayNoise(t *testing.T) {
	for _, f := range []lineterm.Framing{lineterm.LF, lineterm.CRLF, lineterm.CR, lineterm.STXETX} {
		t.Run(f.String(), func(t *testing.T) {
			e, p := rig(t)
			tail := len(f.Append(nil, nil))
			if f == lineterm.STXETX {
				tail = 0
			}
			var runs [][]byte
			for range 2 {
				play(t, e, "seed 7\nnoise 300", f)
				got, _ := readN(t, p, 300+tail)
				if len(got) != 300+tail {
					t.Fatalf("noise 300: got %d bytes, want %d", len(got), 300+tail)
				}
				for i, b := range got[:300] {
					if f.Delimiter(b) {
						t.Fatalf("noise byte %d is %#x, a %v framing byte", i, b, f)
					}
				}
				if want := f.Append(nil, nil); tail > 0 && !bytes.Equal(got[300:], want) {
					t.Fatalf("noise ends with %q, want %q", got[300:], want)
				}
				runs = append(runs, got)
			}
			if !bytes.Equal(runs[0], runs[1]) {
				t.Errorf("seed 7 played twice: got different noise, want the same")
			}
		})
	}
}

func TestHangupRelinks(t *testing.T) {
	e, p := rig(t)
	before := e.Path()
	play(t, e, "hangup", lineterm.LF)
	start := time.Now()
	n, err := p.Read(make([]byte, 16))
	if n != 0 || err != nil || time.Since(start) > 50*time.Millisecond {
		t.Errorf("read after hangup: got %d, %v after %v; want 0, nil at once", n, err, time.Since(start))
	}
	if _, err := p.Write(nil); !errors.Is(err, serialport.ErrHangup) {
		t.Errorf("zero-length write after hangup: got %v, want ErrHangup", err)
	}
	if target, err := os.Readlink(e.Link()); err != nil || target != e.Path() {
		t.Errorf("link after hangup: got %q, %v; want %q", target, err, e.Path())
	}
	t.Logf("pty before hangup %s, after %s", before, e.Path())
	p2 := open(t, e.Link())
	play(t, e, "line again", lineterm.LF)
	if got, _ := readN(t, p2, 6); string(got) != "again\n" {
		t.Errorf("read after reopening the link: got %q, want \"again\\n\"", got)
	}
}

func TestWriteBlockedHonoursContext(t *testing.T) {
	e, _ := rig(t) // the port is open but nobody reads it: the line fills up
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.Play(ctx, mustParse(t, "long 1000000"), lineterm.LF, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("Play of 1 MB nobody reads: got %v after %v, want DeadlineExceeded after about 200ms", err, time.Since(start))
	}
}

func TestCloseUnblocksWrite(t *testing.T) {
	e, _ := rig(t)
	done := make(chan error, 1)
	go func() { done <- e.Play(context.Background(), mustParse(t, "long 1000000"), lineterm.LF, nil) }()
	time.Sleep(50 * time.Millisecond)
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Play after Close: got %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Play still blocked 2s after Close")
	}
	if _, err := os.Lstat(e.Link()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after Close: got %v, want it removed", err)
	}
}

func TestStartRefusesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tty")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if e, err := Start(path); err == nil {
		e.Close()
		t.Fatalf("Start over a regular file: got nil error, want one")
	}
	// A stale link is replaced.
	stale := filepath.Join(t.TempDir(), "tty")
	if err := os.Symlink("/dev/pts/nonexistent", stale); err != nil {
		t.Fatal(err)
	}
	e, err := Start(stale)
	if err != nil {
		t.Fatalf("Start over a stale link: %v", err)
	}
	defer e.Close()
	if target, _ := os.Readlink(stale); target != e.Path() {
		t.Errorf("stale link: got target %q, want %q", target, e.Path())
	}
}

func TestRun(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty")
	if err := Run(context.Background(), link, strings.NewReader("blink"), lineterm.LF, nil); err == nil {
		t.Fatal("Run with a bad script: got nil, want an error")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link after a bad script: got %v, want none created", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, link, strings.NewReader("wait 50ms\nline hello\nwait 50ms\nloop"), lineterm.CRLF, nil)
	}()
	var p *serialport.Port
	for deadline := time.Now().Add(2 * time.Second); p == nil; {
		if _, err := os.Stat(link); err == nil {
			p = open(t, link)
		} else if time.Now().After(deadline) {
			t.Fatalf("link %s not there after 2s", link)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got, _ := readN(t, p, 14); string(got) != "hello\r\nhello\r\n" {
		t.Errorf("looping script: got %q, want two hello lines", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: got %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run still running 2s after cancel")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after Run: got %v, want it removed", err)
	}
}
