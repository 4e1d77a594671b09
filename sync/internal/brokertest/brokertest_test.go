package brokertest

import (
	"strings"
	"testing"
	"time"
)

// With persistence, a retained message survives a SIGKILL once autosaved; the broker comes back
// on the same port.
func TestKillAndRestartKeepsPersistedRetained(t *testing.T) {
	b := Start(t, Options{Persistence: true})
	pub := b.Client(t, "pub")
	pub.Publish("kept", true, []byte("yes"))
	pub.C.Disconnect(100)
	// Two autosaves after the publish (autosave_interval 1): the first may have begun before it.
	saves := strings.Count(b.Log(), "Saving in-memory database")
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(b.Log(), "Saving in-memory database") < saves+2 {
		if time.Now().After(deadline) {
			t.Fatal("mosquitto did not autosave twice within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	port := b.Port
	b.Restart()
	if b.Port != port {
		t.Fatalf("restarted on port %d, want %d", b.Port, port)
	}
	got := make(chan string, 1)
	b.Client(t, "sub").Subscribe("kept", func(_ string, p []byte) { got <- string(p) })
	select {
	case p := <-got:
		if p != "yes" {
			t.Fatalf("retained after restart: got %q, want yes", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retained message did not survive the kill with persistence on")
	}
}
