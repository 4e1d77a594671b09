package uplink

import (
	"context"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/sync/wire"
)

// SetTestHookBeforeSwap sets a function run after a dataset is fully staged and before the swap.
func SetTestHookBeforeSwap(f func()) { testHookBeforeSwap = f }

// WithDefaults is the configuration Run uses.
func WithDefaults(c Config) Config { return c.withDefaults() }

// Stepper turns the sender's loop by hand, at the times the test gives: the connection runs (a
// real broker), the sender and downlink goroutines do not. Each Step is one turn of the loop
// (what the loop does on a tick, an ack or an append), so the window, the ack bookkeeping, the
// stall timer and the state refresh are tested without sleeping.
type Stepper struct {
	u       *Uplink
	s       *sender
	ctx     context.Context
	pending map[string]*wire.Applied
}

// NewStepper connects u and prepares its sender as Run does. It returns once the connection is up;
// the connection stops at the end of the test.
func NewStepper(t testing.TB, u *Uplink) *Stepper {
	t.Helper()
	if u.ran.Swap(true) {
		t.Fatal("uplink: Run called twice")
	}
	acked, err := u.st.Acked()
	if err != nil {
		t.Fatal(err)
	}
	head, _ := u.st.Head()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		u.conn.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	p := &Stepper{u: u, ctx: ctx, pending: map[string]*wire.Applied{},
		s: &sender{acked: acked, next: acked + 1, startHead: head, ackTimeout: u.cfg.AckTimeout}}
	deadline := time.Now().Add(10 * time.Second)
	for !p.inboxUp() {
		if time.Now().After(deadline) {
			t.Fatal("uplink: not connected to the broker after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

func (p *Stepper) inboxUp() bool {
	p.u.inbox.mu.Lock()
	defer p.u.inbox.mu.Unlock()
	return p.u.inbox.up
}

// Connected is what the sender was last told of the connection (by its callbacks, or Reconnect).
func (p *Stepper) Connected() bool { return p.inboxUp() }

// Step is one turn of the sender's loop at now.
func (p *Stepper) Step(now time.Time) error { return p.u.step(p.s, now) }

// Handle hands the uplink a message as the broker would; a command or a dataset message is then
// run as the downlink goroutine runs it.
func (p *Stepper) Handle(topic string, payload []byte) {
	p.u.handle(&message{topic: topic, payload: payload})
	select {
	case m := <-p.u.down:
		p.u.handleDown(p.ctx, m, p.pending)
	default:
	}
}

// ExpireStaged is the downlink's timer: it refuses the stagings incomplete for DatasetTimeout.
func (p *Stepper) ExpireStaged() { p.u.expireStaged(p.ctx, p.pending) }

// RecoverStaged is what the downlink does at start with what an earlier run left staged.
func (p *Stepper) RecoverStaged() { p.u.recoverStaged(p.ctx, p.pending) }

// Reconnect tells the sender the connection went down and came up again, as the connection's
// callbacks do.
func (p *Stepper) Reconnect() {
	p.u.inbox.connected(false)
	p.u.inbox.connected(true)
}

// InFlight is the sender's window: the first and last seq of each batch published and not yet
// acknowledged, oldest first.
func (p *Stepper) InFlight() [][2]uint64 {
	out := [][2]uint64{}
	for _, f := range p.s.inflight {
		out = append(out, [2]uint64{f.first, f.last})
	}
	return out
}

// StateAt is when the sender last published the state message (zero: never).
func (p *Stepper) StateAt() time.Time { return p.s.stateAt }

// message is an MQTT message as paho hands it to the handler.
type message struct {
	topic   string
	payload []byte
}

func (m *message) Duplicate() bool   { return false }
func (m *message) Qos() byte         { return 1 }
func (m *message) Retained() bool    { return false }
func (m *message) Topic() string     { return m.topic }
func (m *message) MessageID() uint16 { return 1 }
func (m *message) Payload() []byte   { return m.payload }
func (m *message) Ack()              {}

var _ mqtt.Message = (*message)(nil)

// SalvageInFlight is the salvaged batch published and not yet answered: its epoch and its first
// and last seq (ok false: none).
func (p *Stepper) SalvageInFlight() (epoch, first, last uint64, ok bool) {
	sv := &p.s.salv
	if sv.flying == nil {
		return 0, 0, 0, false
	}
	return sv.epoch, sv.flying.first, sv.flying.last, true
}
