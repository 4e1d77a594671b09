// Package mqttc is the MQTT connection lifecycle shared by the agent's uplink and the ingester,
// on paho.mqtt.golang with the rules of the contract: a fixed client ID; subscriptions made in
// OnConnect; message handlers that never block; manual acknowledgements (a message is PUBACKed
// only when its consumer calls Ack, after its local commit); reconnection by this package, with
// exponential backoff and jitter, instead of paho's; and no token waited on without a timeout.
//
// Every write to the socket has a deadline, so a peer that stops reading (a blackholed link)
// breaks the connection instead of blocking paho's writer and its keepalive forever.
package mqttc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TLS names the PEM files of a TLS connection. All empty means the system roots and no client
// certificate; CertFile and KeyFile go together.
type TLS struct {
	CAFile     string // CA bundle to verify the peer; empty means the system roots
	CertFile   string // client certificate
	KeyFile    string // client key
	ServerName string // overrides the host name checked in the peer's certificate
}

// Check checks that the named files exist and that a certificate comes with its key.
func (t TLS) Check() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("a client certificate and its key go together")
	}
	for _, p := range []string{t.CAFile, t.CertFile, t.KeyFile} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	return nil
}

// Config loads the files into a tls.Config.
func (t TLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// CheckBroker checks a broker URL: tcp:// or mqtt:// for plain MQTT, ssl://, tls://, mqtts:// or
// tcps:// for MQTT over TLS, with a host and a port.
func CheckBroker(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if _, err := isTLS(u); err != nil {
		return err
	}
	if u.Hostname() == "" || u.Port() == "" {
		return fmt.Errorf("broker %q: want scheme://host:port", s)
	}
	return nil
}

func isTLS(u *url.URL) (bool, error) {
	switch u.Scheme {
	case "tcp", "mqtt":
		return false, nil
	case "ssl", "tls", "mqtts", "tcps":
		return true, nil
	}
	return false, fmt.Errorf("broker %q: scheme %q, want tcp, mqtt, ssl, tls, mqtts or tcps", u.String(), u.Scheme)
}

// Will is the last will the broker publishes when the connection drops without a DISCONNECT.
type Will struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Options are everything a Conn needs. Durations must be set (the owning package defaults them).
type Options struct {
	Broker             string
	ClientID           string
	Username, Password string
	TLS                TLS
	CleanSession       bool
	KeepAlive          time.Duration // whole seconds; a ping goes out after this much silence
	PingTimeout        time.Duration
	ConnectTimeout     time.Duration // TCP, TLS and CONNACK together
	WriteTimeout       time.Duration // each socket write, and a Publish waiting for paho's queue
	BackoffMin         time.Duration // the first wait before reconnecting (with jitter)
	BackoffMax         time.Duration // the longest wait
	Will               *Will
	// Filters are subscribed at QoS 1 in OnConnect, every time the connection comes up.
	Filters []string
	// Handler receives every message. It runs on paho's router goroutine and must not block:
	// hand the message off. Automatic acknowledgement is off: the consumer calls Ack on each
	// message after its local commit (or when it drops it).
	Handler func(mqtt.Message)
	// OnUp is called (on its own goroutine) once the subscriptions are granted.
	OnUp func()
	// OnDown is called when a connection that was up is lost or closed.
	OnDown func(err error)
}

// Conn is one MQTT client connection kept up by Run.
type Conn struct {
	opt    Options
	log    *slog.Logger
	client mqtt.Client

	events chan error // connection lost or subscription failed; buffered 1, latest wins

	mu sync.Mutex
	up bool
}

// New prepares a connection; Run connects.
func New(opt Options, log *slog.Logger) (*Conn, error) {
	u, err := url.Parse(opt.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqttc: broker: %w", err)
	}
	useTLS, err := isTLS(u)
	if err != nil {
		return nil, fmt.Errorf("mqttc: %w", err)
	}
	var tlsCfg *tls.Config
	if useTLS {
		if tlsCfg, err = opt.TLS.Config(); err != nil {
			return nil, fmt.Errorf("mqttc: tls: %w", err)
		}
	}
	c := &Conn{opt: opt, log: log, events: make(chan error, 1)}
	o := mqtt.NewClientOptions().
		AddBroker(opt.Broker).
		SetClientID(opt.ClientID).
		SetProtocolVersion(4).
		SetCleanSession(opt.CleanSession).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(opt.KeepAlive).
		SetPingTimeout(opt.PingTimeout).
		SetConnectTimeout(opt.ConnectTimeout).
		SetWriteTimeout(opt.WriteTimeout).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetMaxResumePubInFlight(16).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { c.event(err) }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			return dial(u, tlsCfg, opt.ConnectTimeout, opt.WriteTimeout)
		}).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.opt.Handler(m) })
	if opt.Username != "" {
		o.SetUsername(opt.Username)
		o.SetPassword(opt.Password)
	}
	if opt.Will != nil {
		o.SetBinaryWill(opt.Will.Topic, opt.Will.Payload, 1, opt.Will.Retained)
	}
	c.client = mqtt.NewClient(o)
	return c, nil
}

// dial opens the socket (TLS if asked) with a deadline on every write.
func dial(u *url.URL, tlsCfg *tls.Config, timeout, writeTimeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		conn, err = tls.DialWithDialer(d, "tcp", u.Host, cfg)
	} else {
		conn, err = d.Dial("tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: conn, timeout: writeTimeout}, nil
}

type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// event reports a lost connection or a failed subscription to Run.
func (c *Conn) event(err error) {
	select {
	case c.events <- err:
	default:
	}
}

// onConnect subscribes (paho calls it on its own goroutine) and reports the connection up once
// the broker granted every filter.
func (c *Conn) onConnect(client mqtt.Client) {
	if len(c.opt.Filters) > 0 {
		filters := make(map[string]byte, len(c.opt.Filters))
		for _, f := range c.opt.Filters {
			filters[f] = 1
		}
		tok := client.SubscribeMultiple(filters, nil)
		if err := Wait(context.Background(), tok, c.opt.ConnectTimeout); err != nil {
			c.event(fmt.Errorf("subscribe: %w", err))
			return
		}
		for f, code := range tok.(*mqtt.SubscribeToken).Result() {
			if code == 0x80 {
				c.event(fmt.Errorf("subscribe %s: refused by the broker (ACL?)", f))
				return
			}
		}
	}
	c.mu.Lock()
	c.up = true
	c.mu.Unlock()
	if c.opt.OnUp != nil {
		c.opt.OnUp()
	}
}

// Up reports whether the connection is up and subscribed.
func (c *Conn) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up && c.client.IsConnectionOpen()
}

func (c *Conn) down(err error) {
	c.mu.Lock()
	was := c.up
	c.up = false
	c.mu.Unlock()
	if was && c.opt.OnDown != nil {
		c.opt.OnDown(err)
	}
}

// Run connects and keeps the connection up until ctx is done, then disconnects cleanly. It
// waits BackoffMin..BackoffMax (doubling, with jitter) between attempts, and resets the backoff
// after a connection that lasted longer than BackoffMax. It returns nil when ctx is done.
func (c *Conn) Run(ctx context.Context) error {
	backoff := c.opt.BackoffMin
	for {
		select {
		case <-c.events: // stale news of an earlier connection
		default:
		}
		err := Wait(ctx, c.client.Connect(), c.opt.ConnectTimeout+time.Second)
		if ctx.Err() != nil {
			c.down(ctx.Err())
			c.client.Disconnect(250)
			return nil
		}
		if err == nil {
			started := time.Now()
			c.log.Info("mqtt: connected", "broker", c.opt.Broker, "client_id", c.opt.ClientID)
			select {
			case err = <-c.events:
			case <-ctx.Done():
				c.down(ctx.Err())
				c.client.Disconnect(250)
				return nil
			}
			c.down(err)
			if c.client.IsConnected() {
				c.client.Disconnect(0)
			}
			c.log.Warn("mqtt: connection lost", "err", err)
			if time.Since(started) > c.opt.BackoffMax {
				backoff = c.opt.BackoffMin
			}
		} else {
			c.log.Warn("mqtt: connect failed", "broker", c.opt.Broker, "err", err, "retry_in", backoff)
		}
		t := time.NewTimer(Jitter(backoff))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		backoff = min(2*backoff, c.opt.BackoffMax)
	}
}

// Jitter returns a duration in [d/2, d).
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Publish hands a message to paho without waiting for the broker. The token completes on
// PUBACK (QoS 1), which is never proof that the central system holds the message. Publishing
// while disconnected fails at once (the token says so).
func (c *Conn) Publish(topic string, qos byte, retained bool, payload []byte) mqtt.Token {
	return c.client.Publish(topic, qos, retained, payload)
}

// PublishWait publishes at QoS 1 and waits for the PUBACK, at most timeout.
func (c *Conn) PublishWait(ctx context.Context, topic string, retained bool, payload []byte, timeout time.Duration) error {
	return Wait(ctx, c.client.Publish(topic, 1, retained, payload), timeout)
}

// ErrTimeout is a token that did not complete in time.
var ErrTimeout = errors.New("mqttc: timed out waiting for the broker")

// Wait waits for tok at most timeout, or until ctx is done, and returns its error.
func Wait(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return ErrTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}
