package uplink_test

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

func TestConfigValidate(t *testing.T) {
	env := synckit.NewEnv(t)
	good := env.UplinkConfig(device, "tcp://127.0.0.1:1883")
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	bad := good
	bad.Broker = "http://broker"
	bad.Institution = ""
	bad.Device = "a/b"
	bad.Window = -1
	bad.AckTimeout = -time.Second
	bad.KeepAlive = 100 * time.Millisecond
	bad.CAFile = filepath.Join(env.Dir, "missing-ca.pem")
	bad.CertFile = filepath.Join(env.Dir, "missing.crt")
	bad.CentralKeyFile = env.CentralKey // a private key is not the central public key
	bad.Password = "secret"
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"broker", "institution", "device", "window", "ack_timeout", "keepalive",
		"ca_file", "cert_file", "central_key", "username: required with a password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error does not mention %q:\n%v", want, err)
		}
	}
	noKey := good
	noKey.CentralKeyFile = ""
	if err := noKey.Validate(); err == nil || !strings.Contains(err.Error(), "central_key: required") {
		t.Errorf("config without a central key: got %v, want central_key: required", err)
	}
	st := env.OpenStore("other-device", env.DeviceKey("other-device"))
	defer st.Close()
	if _, err := uplink.New(good, st, env.Log); err == nil || !strings.Contains(err.Error(), "belongs to") {
		t.Errorf("New with another device's store: got %v, want a refusal", err)
	}
}

// drains runs the uplink with cfg against b and reports whether a small backlog drains.
func drains(t *testing.T, env *synckit.Env, b *brokertest.Broker, cfg uplink.Config, icfg func(*ingest.Config), within time.Duration) bool {
	t.Helper()
	st := env.OpenStore(cfg.Device, env.DeviceKey(cfg.Device))
	defer st.Close()
	ic := env.IngestConfig("central-"+cfg.Device, b.URL())
	if icfg != nil {
		icfg(&ic)
	}
	in, _ := env.StartIngester(ic)
	_, run := env.StartUplink(st, cfg)
	defer run.Stop()
	synckit.Append(t, st, 50)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		head, _ := st.Head()
		if acked, _ := st.Acked(); acked == head {
			if err := synckit.Check(st, in.Scan); err != nil {
				t.Fatal(err)
			}
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestTLSClientCertificate(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{TLS: true})
	cfg := env.UplinkConfig("dev-tls", b.TLSURL())
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = b.TLSFiles.CA, b.TLSFiles.ClientCert, b.TLSFiles.ClientKey
	if !drains(t, env, b, cfg, nil, 10*time.Second) {
		t.Fatal("no events acknowledged over TLS with a client certificate")
	}
	noCert := env.UplinkConfig("dev-nocert", b.TLSURL())
	noCert.CAFile = b.TLSFiles.CA
	if drains(t, env, b, noCert, nil, 1500*time.Millisecond) {
		t.Fatal("events acknowledged over TLS without the client certificate the broker requires")
	}
}

func TestUsernamePassword(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{Users: map[string]string{"dev-pw": "right", "kaoqin-ingest": "central"}})
	login := func(ic *ingest.Config) { ic.Username, ic.Password = "kaoqin-ingest", "central" }
	cfg := env.UplinkConfig("dev-pw", b.URL())
	cfg.Username, cfg.Password = "dev-pw", "right"
	if !drains(t, env, b, cfg, login, 10*time.Second) {
		t.Fatal("no events acknowledged with the right password")
	}
	wrong := env.UplinkConfig("dev-wrong", b.URL())
	wrong.Username, wrong.Password = "dev-pw", "wrong"
	if drains(t, env, b, wrong, login, 1500*time.Millisecond) {
		t.Fatal("events acknowledged with a wrong password")
	}
}

// Signed commands: a resync makes the agent send again from the seq asked; a replayed command,
// one signed by another key and one for another device do nothing.
func TestResyncCommand(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	in, _ := env.StartIngester(env.IngestConfig("central", b.URL()))
	cfg := env.UplinkConfig(device, b.URL())
	cfg.BatchSize = 256
	up, _ := env.StartUplink(st, cfg)
	synckit.Append(t, st, 1200)
	synckit.WaitDrained(t, st, 30*time.Second)
	key := synckit.Ed25519(t, env.CentralKey)
	c := newCentral(t, b.URL(), key)
	cmd := func(id uint64, signer ed25519.PrivateKey, dev string) []byte {
		p, err := wire.SealCommand(&wire.Command{ID: id, Device: dev, Issued: time.Now(), Cmd: wire.CmdResync, Epoch: st.Epoch(), FromSeq: 1}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	resent := func() uint64 { return up.Stats().Resent }
	waitResent := func(than uint64) uint64 {
		deadline := time.Now().Add(5 * time.Second)
		for resent() <= than {
			if time.Now().After(deadline) {
				t.Fatalf("no resend after the resync: stats %+v", up.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		return resent()
	}
	topic := wire.CmdTopic(synckit.Institution, device)
	before := resent()
	first := cmd(100, key, device)
	c.publish(topic, first)
	after := waitResent(before)
	if after-before < 4 {
		t.Fatalf("resync from 1 of 1201 events resent %d batches of 256, want at least 4", after-before)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	for _, p := range [][]byte{first, cmd(99, key, device), cmd(200, other, device), cmd(201, key, "jn-0001-r102")} {
		c.publish(topic, p)
	}
	time.Sleep(time.Second)
	if got := resent(); got != after {
		t.Fatalf("replayed, forged or misaddressed commands resent %d batches, want none", got-after)
	}
	synckit.WaitDrained(t, st, 10*time.Second)
	if err := synckit.Check(st, in.Scan); err != nil {
		t.Fatal(err)
	}
}

// Run stops when its context is done, after a bounded flush, and publishes the offline state.
func TestRunStopsWithFlush(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	key := synckit.Ed25519(t, env.CentralKey)
	c := newCentral(t, b.URL(), key)
	cfg := env.UplinkConfig(device, b.URL())
	cfg.FlushTimeout = 700 * time.Millisecond
	_, run := env.StartUplink(st, cfg) // no ingester: nothing is ever acknowledged
	c.waitOnline()
	synckit.Append(t, st, 10)
	start := time.Now()
	if err := run.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Errorf("Run returned %v after cancel, want about the flush timeout (700ms)", d)
	}
	c.waitOffline()
	if acked, _ := st.Acked(); acked != 0 {
		t.Fatalf("acked %d with no central system, want 0", acked)
	}
}
