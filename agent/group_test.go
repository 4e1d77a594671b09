package agent_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

// A burst of readings (a terminal's backlog) is decided in order, each against the events decided
// before it, committed or not, and each reading's source is answered only once its event is
// durable. The readings queue faster than a commit takes, so they are committed in groups
// (group.go).
func TestBurstDecidedInOrderAnsweredWhenDurable(t *testing.T) {
	client, f := fakeDaemon(t, t.Name())
	const n = 150
	key := func(i int) string {
		if i%10 == 9 {
			i-- // every tenth reading is a resend of the one before it, in the same burst
		}
		return fmt.Sprintf("burst|%d", i)
	}

	var (
		mu      sync.Mutex
		durable = map[string]uint64{} // keys of the events read back from the ledger, by seq
		next    = uint64(1)
		answers = map[int]drivers.Verdict{}
		early   []string
		all     = make(chan struct{})
	)
	// readBack reads the ledger from where it last stopped (the daemon's API, another goroutine).
	readBack := func() {
		if err := client.Events(context.Background(), ledger.Filter{}, next, func(e *ledger.Event) error {
			if e.Key != "" {
				durable[e.Key] = e.Seq
			}
			next = e.Seq + 1
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	for i := range n {
		k := key(i)
		f.Push(drivers.Reading{Method: drivers.Face, Subject: fmt.Sprintf("T00%d", 1+i%3), Score: 0.9, Margin: 0.3, Key: k,
			Done: func(v drivers.Verdict) {
				mu.Lock()
				defer mu.Unlock()
				if _, ok := durable[k]; !ok {
					readBack()
				}
				if _, ok := durable[k]; !ok {
					early = append(early, fmt.Sprintf("reading %d (%s) answered %v before its event was in the ledger", i, k, v))
				}
				if _, twice := answers[i]; twice {
					early = append(early, fmt.Sprintf("reading %d answered twice", i))
				}
				answers[i] = v
				if len(answers) == n {
					close(all)
				}
			}})
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		mu.Lock()
		t.Fatalf("answers: got %d of %d readings", len(answers), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range early {
		t.Error(e)
	}
	for i, v := range answers {
		if v != drivers.Recorded {
			t.Errorf("reading %d: got %v, want recorded (a sign-in, a duplicate, or a resend)", i, v)
		}
	}

	perKey := map[string]int{}
	kinds := map[ledger.Kind][]ledger.Event{}
	for _, e := range allEvents(t, client) {
		if e.Key != "" {
			perKey[e.Key]++
			kinds[e.Kind] = append(kinds[e.Kind], e)
		}
	}
	for i := range n {
		if c := perKey[key(i)]; c != 1 {
			t.Errorf("key %s: got %d events, want 1 (a resend is recorded once)", key(i), c)
		}
	}
	// The first reading of each trainee signs in; every later one, decided against it before it
	// was committed, is a duplicate naming it.
	signIns := map[string]string{}
	for _, e := range kinds[ledger.SignIn] {
		signIns[e.Trainee] = e.ID
	}
	if len(kinds[ledger.SignIn]) != 3 || len(signIns) != 3 {
		t.Fatalf("sign-ins: got %d for %d trainees, want one each for T001-T003", len(kinds[ledger.SignIn]), len(signIns))
	}
	if got, want := len(kinds[ledger.Duplicate]), n-n/10-3; got != want {
		t.Errorf("duplicates: got %d, want %d", got, want)
	}
	for _, e := range kinds[ledger.Duplicate] {
		if e.Ref != signIns[e.Trainee] {
			t.Errorf("duplicate seq %d of %s: refers to %q, want its sign-in %s", e.Seq, e.Trainee, e.Ref, signIns[e.Trainee])
			break
		}
	}
	if first, second := durable[key(0)], durable[key(1)]; first >= second {
		t.Errorf("the first reading's event (seq %d) comes at or after the second's (seq %d): want the readings' order", first, second)
	}
}
