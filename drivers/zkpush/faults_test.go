package zkpush_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// A slow-loris client (headers trickled, then nothing) is cut off at header_timeout, and a body
// that stalls at read_timeout; meanwhile the other terminal on the server is served.
func TestSlowLorisCutOffOthersServed(t *testing.T) {
	c := config(t, "ZK020", "127.0.0.1:0")
	c.HeaderTimeout = drivers.Duration(300 * time.Millisecond)
	c.ReadTimeout = drivers.Duration(600 * time.Millisecond)
	r := open(t, c)
	other := open(t, config(t, "ZK021", "127.0.0.1:0"))

	slow := func(req string) error {
		conn, err := net.Dial("tcp", r.term.Addr())
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, req); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(conn) // returns when the server closes the connection
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("the server kept a stalled connection open for 10s")
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() { errs <- slow("GET /iclock/getrequest?SN=ZK020 HTTP/1.1\r\nHost: x\r\n") }()
	go func() {
		errs <- slow("POST /iclock/cdata?SN=ZK020&table=ATTLOG HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n1\t2026")
	}()

	term := other.emu(nil)
	term.Punch(emu.Punch{PIN: "5", At: time.Date(2026, 3, 2, 8, 0, 0, 0, shanghai), Verify: 15})
	if err := term.Upload(context.Background()); err != nil {
		t.Errorf("the other terminal during the slow clients: got %v, want OK", err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if len(other.led.recorded()) != 1 {
		t.Error("the other terminal's punch was not recorded")
	}
}

// The emulator's own loop (boot, upload, poll every Delay, ErrorDelay after a failure) through
// a network cut: nothing is lost and nothing recorded twice.
func TestEmulatorLoopThroughANetworkCut(t *testing.T) {
	r := open(t, config(t, "ZK022", "127.0.0.1:0"))
	term := r.emu(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- term.Serve(ctx, 0.001) }() // 10s Delay -> 10ms
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, shanghai)
	for i := range 20 {
		term.Punch(emu.Punch{PIN: fmt.Sprint(i + 1), At: base.Add(time.Duration(i) * time.Second), Verify: 15})
	}
	eventually(t, "first punches recorded", func() bool { return len(r.led.recorded()) == 20 })
	term.SetNetwork(true)
	for i := range 20 {
		term.Punch(emu.Punch{PIN: fmt.Sprint(i + 1), At: base.Add(time.Hour + time.Duration(i)*time.Second), Verify: 15})
	}
	time.Sleep(100 * time.Millisecond) // several failed exchanges
	if n, _ := term.Unsent(); n != 20 {
		t.Errorf("during the cut the terminal holds %d lines, want 20", n)
	}
	term.SetNetwork(false)
	eventually(t, "all punches recorded after the cut", func() bool { return len(r.led.recorded()) == 40 })
	cancel()
	<-done
	if d := r.led.deliveredN(); d != 40 {
		t.Errorf("delivered %d readings, want 40", d)
	}
}

// An agent that takes the readings but never records them in time: the terminal is told to
// resend, the reply comes within ack_timeout, and the server is not stuck.
func TestSlowAgentAnswersAnError(t *testing.T) {
	c := config(t, "ZK023", "127.0.0.1:0")
	c.AckTimeout = drivers.Duration(200 * time.Millisecond)
	r := open(t, c)
	hold := make(chan struct{})
	r.led.mu.Lock()
	r.led.hold = hold
	r.led.mu.Unlock()
	code, body := post(t, r.url+"/iclock/cdata?SN=ZK023&table=ATTLOG&Stamp=1", []byte("1\t2026-03-02 08:00:00\t0\t15\t0\t0\t0\n"))
	close(hold)
	if code != 503 {
		t.Errorf("got %d %q, want 503 (resend)", code, body)
	}
	if code, _, _ := get(t, r.url+"/iclock/ping?SN=ZK023"); code != 200 {
		t.Errorf("ping after: got %d, want 200", code)
	}
}
