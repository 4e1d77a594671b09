package lineterm

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// eofLine is a line that returns nothing at once on every read and accepts writes: a broken driver
// or adapter, which no pty reproduces.
type eofLine struct{ reads, writes atomic.Int64 }

func (l *eofLine) Read([]byte) (int, error)    { l.reads.Add(1); return 0, nil }
func (l *eofLine) Write(p []byte) (int, error) { l.writes.Add(1); return len(p), nil }
func (l *eofLine) Close() error                { return nil }

func TestNoWait(t *testing.T) {
	cfg := validConfig().withDefaults()
	cfg.Port.ReadTimeout = 500 * time.Millisecond
	line := &eofLine{}
	term := newTerminal("door-1", cfg, mustDecoder(t, cfg), line, nil)
	start := time.Now()
	_, err := term.Next(context.Background())
	if !errors.Is(err, ErrNoWait) || time.Since(start) > time.Second {
		t.Fatalf("Next on a line that never waits: got %v after %v, want ErrNoWait at once", err, time.Since(start))
	}
	if r, w := line.reads.Load(), line.writes.Load(); r != maxNoWait || w != maxNoWait {
		t.Errorf("got %d reads and %d probes, want %d of each", r, w, maxNoWait)
	}
}
