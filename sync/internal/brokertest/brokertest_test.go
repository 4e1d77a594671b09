package brokertest

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// With persistence, a retained message survives a SIGKILL once autosaved; the broker comes back
// on the same port.
func TestKillAndRestartKeepsPersistedRetained(t *testing.T) {
	b := Start(t, Options{Persistence: true})
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := pub.Publish("kept", 1, true, "yes"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub.Disconnect(100)
	saves := strings.Count(b.Log(), "Saving in-memory database")
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(b.Log(), "Saving in-memory database") == saves { // autosave_interval 1: within 2s
		if time.Now().After(deadline) {
			t.Fatal("mosquitto did not autosave within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	port := b.Port
	b.Restart()
	if b.Port != port {
		t.Fatalf("restarted on port %d, want %d", b.Port, port)
	}
	got := make(chan string, 1)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("sub"))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	sub.Subscribe("kept", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	select {
	case p := <-got:
		if p != "yes" {
			t.Fatalf("retained after restart: got %q, want yes", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retained message did not survive the kill with persistence on")
	}
}
