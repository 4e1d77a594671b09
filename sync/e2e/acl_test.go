package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// The example ACL (configs/mosquitto.acl.example), loaded by a real mosquitto with per-device
// passwords.
func aclBroker(t *testing.T) *brokertest.Broker {
	acl, err := filepath.Abs("../../configs/mosquitto.acl.example")
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, brokertest.Options{ACLFile: acl, Users: map[string]string{
		"jn-0001-r101": "pw-r101", "jn-0001-r102": "pw-r102", "kaoqin-ingest": "pw-ingest"}})
}

type rawClient struct {
	t *testing.T
	*brokertest.Client
}

func dial(t *testing.T, url, user, pass string) *rawClient {
	t.Helper()
	return &rawClient{t: t, Client: brokertest.Dial(t, url, "raw-"+user, brokertest.WithLogin(user, pass))}
}

// subscribe returns the broker's SUBACK code: 0 or 1 granted, 0x80 refused.
func (r *rawClient) subscribe(filter string) byte { return r.Subscribe(filter, nil) }

func (r *rawClient) publish(topic, payload string) { r.Publish(topic, false, []byte(payload)) }

// expect waits for a message with payload marker and fails on any message with payload forbidden
// before it or within a grace period after it.
func (r *rawClient) expect(marker, forbidden string) {
	r.t.Helper()
	deadline := time.After(5 * time.Second)
	var grace <-chan time.Time
	for {
		select {
		case m := <-r.Stray:
			switch p := string(m.Payload()); {
			case p == forbidden && p != "":
				r.t.Fatalf("the ACL let through %q on %s", forbidden, m.Topic())
			case p == marker && grace == nil:
				grace = time.After(300 * time.Millisecond)
			}
		case <-grace:
			return
		case <-deadline:
			r.t.Fatalf("marker %q never arrived", marker)
		}
	}
}

func TestACLConfinesDevicesToTheirPrefix(t *testing.T) {
	b := aclBroker(t)
	dev1 := dial(t, b.URL(), "jn-0001-r101", "pw-r101")
	dev2 := dial(t, b.URL(), "jn-0001-r102", "pw-r102")
	central := dial(t, b.URL(), "kaoqin-ingest", "pw-ingest")

	// Reading: mosquitto 2.0 may grant a subscription outside the device's prefix, but it never
	// delivers a message the ACL does not let the device read. A device gets its own downlink only.
	for _, f := range []string{
		wire.DownFilter("0001", "jn-0001-r101"), wire.DownFilter("0001", "jn-0001-r102"),
		wire.EventsTopic("0001", "jn-0001-r102"), wire.StateTopic("0001", "jn-0001-r102"),
		"kaoqin/v1/+/+/up/#", "kaoqin/v1/#", "#", "$share/g/kaoqin/v1/+/+/up/#",
	} {
		dev1.subscribe(f) // granted or refused: what matters is what is delivered
	}
	for _, f := range wire.CentralFilters("") {
		if got := central.subscribe(f); got != 1 {
			t.Fatalf("central subscribes %s: SUBACK %#x, want 1", f, got)
		}
	}
	if got := dev2.subscribe(wire.DownFilter("0001", "jn-0001-r102")); got != 1 {
		t.Fatalf("device r102 subscribes its downlink: SUBACK %#x, want 1", got)
	}
	dev2.publish(wire.EventsTopic("0001", "jn-0001-r102"), "secret")
	dev2.publish(wire.StateTopic("0001", "jn-0001-r102"), "secret")
	central.publish(wire.AckTopic("0001", "jn-0001-r102"), "secret")
	central.publish(wire.DataTopic("0001", "jn-0001-r102", "roster"), "secret")
	central.publish(wire.AckTopic("0001", "jn-0001-r101"), "own downlink")
	dev1.expect("own downlink", "secret")
	dev2.expect("secret", "") // r102 got its own ack

	// Publishing as another device: dropped by the broker; the device's own publish arrives.
	dev1.publish(wire.EventsTopic("0001", "jn-0001-r102"), "forged events")
	dev1.publish(wire.StateTopic("0001", "jn-0001-r102"), "forged events")
	dev1.publish(wire.EventsTopic("0001", "jn-0001-r101"), "own events")
	central.expect("own events", "forged events")

	// Forging the central's downlink for another device (or for itself): dropped.
	dev1.publish(wire.AckTopic("0001", "jn-0001-r102"), "forged ack")
	dev1.publish(wire.CmdTopic("0001", "jn-0001-r102"), "forged ack")
	dev1.publish(wire.AckTopic("0001", "jn-0001-r101"), "forged ack")
	central.publish(wire.AckTopic("0001", "jn-0001-r102"), "real ack")
	dev2.expect("real ack", "forged ack")
}

// The ACL is not too tight: a real agent and ingester (with a shared subscription) work through it.
func TestACLLetsTheContractThrough(t *testing.T) {
	b := aclBroker(t)
	env := synckit.NewEnv(t)
	key := env.DeviceKey("jn-0001-r101")
	st := env.OpenStore("jn-0001-r101", key)
	defer st.Close()
	icfg := env.IngestConfig("central", b.URL())
	icfg.Username, icfg.Password, icfg.ShareGroup = "kaoqin-ingest", "pw-ingest", "kaoqin"
	in, _ := env.StartIngester(icfg)
	ucfg := env.UplinkConfig("jn-0001-r101", b.URL())
	ucfg.Username, ucfg.Password = "jn-0001-r101", "pw-r101"
	env.StartUplink(st, ucfg)
	prod := synckit.Produce(t, st, 5*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	prod.Stop()
	synckit.WaitDrained(t, st, 30*time.Second)
	if err := synckit.Check(st, in.Scan); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := in.Status()
		if len(s) == 1 && s[0].State != nil && s[0].Online {
			break // the retained state went through too
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingester status %+v: want the device online from its state message", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
