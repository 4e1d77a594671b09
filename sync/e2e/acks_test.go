package e2e

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// ackFaults mangles the ingester's acks: each mode applies with its probability.
type ackFaults struct {
	mu   sync.Mutex
	rng  *rand.Rand
	p    ackProbs
	held []wire.Ack
	n    map[string]int
	acks int
}

type ackProbs struct{ lose, dup, reorder, stale, beyond float64 }

func (f *ackFaults) mangle(_ string, a wire.Ack) []wire.Ack {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks++
	hit := func(mode string, p float64) bool {
		// Every mode in play hits the third ack for sure, then at random.
		if p > 0 && (f.acks == 3 || f.rng.Float64() < p) {
			f.n[mode]++
			return true
		}
		return false
	}
	var out []wire.Ack
	switch {
	case hit("lost", f.p.lose):
	case hit("reordered", f.p.reorder):
		f.held = append(f.held, a) // sent after a later ack
	default:
		out = append(out, a)
		out = append(out, f.held...)
		f.held = nil
	}
	if hit("duplicated", f.p.dup) {
		out = append(out, a, a)
	}
	if hit("stale", f.p.stale) {
		older, behind := a, a // signed like any ack; behind names the hash of a's seq, not its own
		older.Epoch--
		behind.AckedThrough /= 2
		out = append(out, older, behind)
	}
	if hit("beyond", f.p.beyond) {
		beyond := a
		beyond.AckedThrough += 1_000_000
		out = append(out, beyond)
	}
	return out
}

// The central's acks are lost, duplicated, reordered, stale (another epoch, or behind the cursor)
// or beyond anything sent; the agent must still deliver everything exactly once, never move its
// cursor past what it sent, and record the beyond acks as alarms.
func TestAckFaults(t *testing.T) {
	seed := seed(t)
	for _, tc := range []struct {
		name string
		p    ackProbs
	}{
		{"lost", ackProbs{lose: 0.4}},
		{"duplicated", ackProbs{dup: 0.5}},
		{"reordered", ackProbs{reorder: 0.4}},
		{"stale", ackProbs{stale: 0.5}},
		{"beyond", ackProbs{beyond: 0.1}},
		{"all", ackProbs{lose: 0.2, dup: 0.2, reorder: 0.2, stale: 0.2, beyond: 0.05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &ackFaults{p: tc.p, rng: rand.New(rand.NewPCG(seed, 2)), n: map[string]int{}}
			r := newRig(t, brokertest.Options{}, f.mangle)
			prod := synckit.Produce(t, r.st, 3*time.Millisecond)
			time.Sleep(2 * time.Second)
			f.mu.Lock()
			f.p.lose, f.p.reorder = 0, 0 // the tail must get through for the backlog to drain
			f.mu.Unlock()
			r.finish(t, prod)
			f.mu.Lock()
			defer f.mu.Unlock()
			t.Logf("faults injected: %v", f.n)
			st := r.up.Stats()
			switch tc.name {
			case "lost":
				if f.n["lost"] == 0 {
					t.Fatal("no ack was lost")
				}
			case "duplicated", "stale":
				if st.StaleAcks == 0 {
					t.Fatalf("uplink counted no stale acks with %d %s ones injected", f.n[tc.name], tc.name)
				}
			case "beyond":
				if st.BeyondAcks == 0 {
					t.Fatal("uplink counted no ack beyond what was sent")
				}
			}
			if f.n["beyond"] > 0 {
				var alarms int
				r.st.Scan(1, func(_ uint64, rec ledger.Record) error {
					if e, err := rec.Event(); err == nil && e.Kind == ledger.Alarm && e.Reason == ledger.AlarmAckBeyond {
						alarms++
						if !strings.Contains(e.Note, "only seqs through") {
							t.Errorf("alarm note %q does not say what was sent", e.Note)
						}
					}
					return nil
				})
				if alarms == 0 {
					t.Errorf("%d acks beyond what was sent, no %s alarm in the ledger", f.n["beyond"], ledger.AlarmAckBeyond)
				}
			}
		})
	}
}
