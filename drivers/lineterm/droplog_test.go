package lineterm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

type dropLine struct {
	Level      string `json:"level"`
	Msg        string `json:"msg"`
	Source     string `json:"source"`
	Reason     string `json:"reason"`
	Err        string `json:"err"`
	Suppressed uint64 `json:"suppressed"`
}

func (b *logBuffer) lines(t *testing.T) []dropLine {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []dropLine
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var d dropLine
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, d)
	}
	return out
}

// A flood of bad input gives one log line per reason per interval, naming the reason, with the
// count of the drops suppressed in between; Close reports the counts left over.
func TestDroppedInputLogged(t *testing.T) {
	e, err := emu.Start(filepath.Join(t.TempDir(), "tty"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := faceConfig(lineterm.LF)
	cfg.Port = serialport.Config{Path: e.Link(), Baud: 9600, ReadTimeout: readTimeout}
	term, err := lineterm.Open("door-1", cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	lineterm.SetClock(term, clk.Now)

	// play sends script while Next reads, since the flood is more than the line holds, and returns
	// the reading that ends it.
	play := func(script string) drivers.Reading {
		t.Helper()
		sc, err := emu.ParseScript(strings.NewReader(script))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- e.Play(ctx, sc, lineterm.LF, nil) }()
		rd, err := term.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Play: %v", err)
		}
		return rd
	}
	const noise, unmatched, badScore, long = 300, 100, 50, 20
	flood := strings.Repeat("noise 30\n", noise) + strings.Repeat("line hello\n", unmatched) +
		strings.Repeat("line FACE:T1:high:in\n", badScore) + strings.Repeat("long 300\n", long)
	if rd := play(flood + "line FACE:T001:0.9:in\n"); rd.Subject != "T001" {
		t.Fatalf("reading after the flood: got %+v, want T001", rd)
	}
	if h := term.Health(); h.Dropped != noise+unmatched+badScore+long {
		t.Errorf("Health().Dropped: got %d, want %d", h.Dropped, noise+unmatched+badScore+long)
	}
	got := logs.lines(t)
	want := []string{"no-match 0", "bad-score 0", "overlong 0"}
	check := func(when string, got []dropLine, want []string) {
		t.Helper()
		var have []string
		for _, l := range got {
			have = append(have, fmt.Sprintf("%s %d", l.Reason, l.Suppressed))
			if l.Level != "WARN" || l.Msg != "lineterm: input dropped" || l.Source != "door-1" {
				t.Errorf("%s: got log line %+v, want a warning from door-1", when, l)
			}
		}
		if strings.Join(have, ", ") != strings.Join(want, ", ") {
			t.Errorf("%s: got log lines [%s], want [%s]", when, strings.Join(have, ", "), strings.Join(want, ", "))
		}
	}
	check("after the flood", got, want)
	if len(got) == 3 && (!strings.Contains(got[1].Err, `"high"`) || len(got[0].Err) > 200) {
		t.Errorf("log details: got %q and %q, want the bad score named and the garbage clipped", got[1].Err, got[0].Err)
	}

	clk.Add(lineterm.DropLogInterval)
	if rd := play("line hello\nline hello\nline FACE:T002:0.9:in\n"); rd.Subject != "T002" {
		t.Fatalf("reading after the interval: got %+v, want T002", rd)
	}
	check("after the interval", logs.lines(t)[3:], []string{fmt.Sprintf("no-match %d", noise+unmatched-1)})

	if err := term.Close(); err != nil {
		t.Fatal(err)
	}
	check("after Close", logs.lines(t)[4:], []string{fmt.Sprintf("bad-score %d", badScore-1), "no-match 1", fmt.Sprintf("overlong %d", long-1)})
}
