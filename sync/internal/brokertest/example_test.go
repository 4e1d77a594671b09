package brokertest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// configs/mosquitto.example.conf, as shipped, runs: with its paths pointed into a temporary
// directory and its ports at free ones, mosquitto starts with it, refuses anonymous clients, and
// lets a device with its password connect on both the plain and the TLS listener.
func TestExampleBrokerConfig(t *testing.T) {
	raw, err := os.ReadFile("../../../configs/mosquitto.example.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tlsFiles := writeTLS(t, dir)
	pw := filepath.Join(dir, "passwd")
	os.WriteFile(pw, []byte("jn-0001-r101:secret\n"), 0o600)
	if out, err := exec.Command("mosquitto_passwd", "-U", pw).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	acl, _ := filepath.Abs("../../../configs/mosquitto.acl.example")
	plain, secure := freePort(t), freePort(t)
	replace := map[string]string{
		"persistence_location": dir + "/",
		"password_file":        pw,
		"acl_file":             acl,
		"cafile":               tlsFiles.CA,
		"certfile":             filepath.Join(dir, "server.crt"),
		"keyfile":              filepath.Join(dir, "server.key"),
	}
	var conf strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case line == "listener 1883 127.0.0.1":
			line = fmt.Sprintf("listener %d 127.0.0.1", plain)
		case line == "listener 8883":
			line = fmt.Sprintf("listener %d 127.0.0.1", secure)
		case replace[key] != "":
			line = key + " " + replace[key]
		}
		conf.WriteString(line + "\n")
	}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		conf.WriteString("user root\n")
	}
	for key := range replace {
		if !strings.Contains(string(raw), "\n"+key+" ") {
			t.Errorf("the example no longer sets %s; update this test", key)
		}
	}
	b := &Broker{t: t, dir: dir, conf: filepath.Join(dir, "mosquitto.conf"), Port: plain, TLSPort: secure}
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(func() {
		b.Kill()
		if t.Failed() {
			b.dumpLog()
		}
	})

	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(tlsFiles.CA)
	pool.AppendCertsFromPEM(ca)
	connect := func(url, user, pass string) error {
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID("example-" + user).SetUsername(user).SetPassword(pass).
			SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetTLSConfig(&tls.Config{RootCAs: pool})
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return fmt.Errorf("connect timed out")
		}
		if tok.Error() == nil {
			c.Disconnect(50)
		}
		return tok.Error()
	}
	if err := connect(b.URL(), "jn-0001-r101", "secret"); err != nil {
		t.Errorf("device on the plain listener: %v", err)
	}
	if err := connect(b.TLSURL(), "jn-0001-r101", "secret"); err != nil {
		t.Errorf("device on the TLS listener: %v", err)
	}
	if err := connect(b.URL(), "", ""); err == nil {
		t.Error("an anonymous client connected; the example must refuse it")
	}
	if err := connect(b.TLSURL(), "jn-0001-r101", "wrong"); err == nil {
		t.Error("a wrong password connected")
	}
}
