package faultnet

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// echo is a server that sends back what it reads.
func echo(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func proxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := Listen(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func roundTrip(t *testing.T, c net.Conn, msg string, within time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestPassAndBlackholeHoldsBytes(t *testing.T) {
	p := proxy(t)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(t, c, "hello", time.Second); err != nil || got != "hello" {
		t.Fatalf("through a healthy proxy: got %q, %v; want hello", got, err)
	}
	for _, dir := range []Direction{Up, Down} {
		p.Blackhole(dir, true)
		if got, err := roundTrip(t, c, "lost?", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blackholed (dir %d): got %q, %v; want a timeout", dir, got, err)
		}
		p.Heal()
		// Nothing was dropped: the held bytes arrive, in order, once the link heals.
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "lost?" {
			t.Fatalf("after healing (dir %d): got %q, %v; want the held bytes", dir, buf, err)
		}
	}
}

func TestCutAndReset(t *testing.T) {
	p := proxy(t)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(t, c, "up", time.Second); err != nil { // the link is established
		t.Fatal(err)
	}
	p.Reset()
	if _, err := roundTrip(t, c, "x", time.Second); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("after Reset: got %v, want a reset connection", err)
	}
	p.Cut()
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		_, err = roundTrip(t, c2, "x", time.Second)
		c2.Close()
	}
	if err == nil {
		t.Fatal("a connection went through a cut proxy")
	}
	p.Heal()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(t, c3, "back", time.Second); err != nil || got != "back" {
		t.Fatalf("after Heal: got %q, %v; want back", got, err)
	}
}

func TestDelay(t *testing.T) {
	p := proxy(t)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Delay(50 * time.Millisecond)
	start := time.Now()
	got, err := roundTrip(t, c, "slow", 2*time.Second)
	if d := time.Since(start); err != nil || got != "slow" || d < 100*time.Millisecond {
		t.Fatalf("delayed 50ms each way: got %q, %v after %v; want slow after at least 100ms", got, err, d)
	}
}
