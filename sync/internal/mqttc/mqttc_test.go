package mqttc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
)

func TestCheckBroker(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"tcp://127.0.0.1:1883", true}, {"mqtt://broker:1883", true}, {"ssl://broker:8883", true},
		{"mqtts://broker:8883", true}, {"tls://broker:8883", true}, {"tcps://broker:8883", true},
		{"ws://broker:80", false}, {"tcp://broker", false}, {"broker:1883", false}, {"tcp://:1883", false},
	} {
		if err := CheckBroker(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckBroker(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

func TestTLSCheck(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "ca.pem")
	os.WriteFile(f, []byte("x"), 0o600)
	for _, tc := range []struct {
		tls TLS
		ok  bool
	}{
		{TLS{}, true}, {TLS{CAFile: f}, true}, {TLS{CertFile: f, KeyFile: f}, true},
		{TLS{CertFile: f}, false}, {TLS{CAFile: filepath.Join(dir, "missing")}, false},
	} {
		if err := tc.tls.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v.Check() = %v, want ok %v", tc.tls, err, tc.ok)
		}
	}
	if _, err := (TLS{CAFile: f}).Config(); err == nil {
		t.Error("a CA file without a PEM certificate was accepted")
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if d := Jitter(time.Second); d < 500*time.Millisecond || d >= time.Second {
			t.Fatalf("Jitter(1s) = %v, want [500ms, 1s)", d)
		}
	}
}

// A Conn reconnects after the broker is killed and restarted on the same port, subscribes again
// in OnConnect, and delivers messages to the handler.
func TestReconnectAndResubscribe(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	var ups atomic.Int32
	got := make(chan string, 10)
	c, err := New(Options{
		Broker: b.URL(), ClientID: "mqttc-test", CleanSession: true,
		KeepAlive: time.Second, PingTimeout: time.Second, ConnectTimeout: time.Second, WriteTimeout: time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Filters: []string{"t/#"},
		Handler: func(m mqtt.Message) {
			m.Ack()
			select {
			case got <- string(m.Payload()):
			default:
			}
		},
		OnUp: func() { ups.Add(1) },
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUp := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for ups.Load() < n || !c.Up() {
			if time.Now().After(deadline) {
				t.Fatalf("connection not up (%d times, want %d)", ups.Load(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUp(1)
	b.Restart()
	waitUp(2)
	if err := c.PublishWait(ctx, "t/x", false, []byte("after restart"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "after restart" {
			t.Fatalf("got %q, want the message published after the restart", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message after the restart: not subscribed again?")
	}
}

func TestWaitTimesOut(t *testing.T) {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:1"))
	tok := c.Publish("t", 1, false, "x") // not connected: completes at once with an error
	if err := Wait(context.Background(), tok, time.Second); err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("publish while disconnected: got %v, want paho's error", err)
	}
	// A server that accepts and never answers: CONNACK never comes.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	never := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + l.Addr().String()).SetConnectTimeout(5 * time.Second)).Connect()
	start := time.Now()
	if err := Wait(context.Background(), never, 100*time.Millisecond); !errors.Is(err, ErrTimeout) || time.Since(start) > time.Second {
		t.Fatalf("got %v after %v, want ErrTimeout after 100ms", err, time.Since(start))
	}
}
