package brokertest

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Client is a plain MQTT client for tests that play another party on the broker: the central
// system, a device without its uplink, an eavesdropper. Each call waits for the broker's answer
// and fails the test on an error; messages that arrive on no subscription of its own (the
// broker's retained or ACL-filtered deliveries) go to Stray.
type Client struct {
	t     testing.TB
	C     mqtt.Client
	Stray chan mqtt.Message
}

// ClientOption changes a Client's paho options before it connects.
type ClientOption func(*mqtt.ClientOptions)

// WithLogin logs the client in as user.
func WithLogin(user, pass string) ClientOption {
	return func(o *mqtt.ClientOptions) { o.SetUsername(user).SetPassword(pass) }
}

// Client connects a client with clientID to the broker (MQTT 3.1.1, clean session, no
// reconnect); it disconnects at the end of the test.
func (b *Broker) Client(t testing.TB, clientID string, opts ...ClientOption) *Client {
	return Dial(t, b.URL(), clientID, opts...)
}

// Dial connects a client to the broker at url, as Broker.Client does.
func Dial(t testing.TB, url, clientID string, opts ...ClientOption) *Client {
	t.Helper()
	c := &Client{t: t, Stray: make(chan mqtt.Message, 100)}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetProtocolVersion(4).
		SetAutoReconnect(false).SetCleanSession(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			select {
			case c.Stray <- m:
			default:
			}
		})
	for _, opt := range opts {
		opt(o)
	}
	c.C = mqtt.NewClient(o)
	if tok := c.C.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("brokertest: %s: connect: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.C.Disconnect(100) })
	return c
}

// Subscribe subscribes at QoS 1 and returns the broker's SUBACK code (0 or 1 granted, 0x80
// refused). fn, if not nil, gets each message's topic and payload on paho's goroutine.
func (c *Client) Subscribe(filter string, fn func(topic string, payload []byte)) byte {
	c.t.Helper()
	var h mqtt.MessageHandler
	if fn != nil {
		h = func(_ mqtt.Client, m mqtt.Message) { fn(m.Topic(), m.Payload()) }
	}
	tok := c.C.Subscribe(filter, 1, h)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.t.Fatalf("brokertest: subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*mqtt.SubscribeToken).Result()[filter]
}

// Publish publishes at QoS 1 and waits for the broker's PUBACK.
func (c *Client) Publish(topic string, retained bool, payload []byte) {
	c.t.Helper()
	tok := c.C.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.t.Fatalf("brokertest: publish %s: %v", topic, tok.Error())
	}
}
