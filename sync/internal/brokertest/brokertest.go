// Package brokertest runs a real mosquitto broker (Debian's /usr/sbin/mosquitto) for tests: a plain
// child process on a free loopback port with a generated configuration, optionally with
// persistence, a password file, an ACL and a TLS listener that requires client certificates. A
// test can kill it with SIGKILL and start it again on the same port.
//
// A missing mosquitto fails the test: `make deps` installs it (apt-get install mosquitto
// mosquitto-clients).
package brokertest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's package installs the broker.
const Binary = "/usr/sbin/mosquitto"

// Options shape the broker.
type Options struct {
	// Persistence keeps retained messages, persistent sessions and their queues in a file saved
	// every second or two (autosave_interval 1), so a SIGKILL loses what came since the last save.
	Persistence bool
	// Users, if set, turns off anonymous access: a password file with these users is generated
	// (hashed by mosquitto_passwd).
	Users map[string]string
	// ACLFile is an ACL file for the broker (acl_file), used as is.
	ACLFile string
	// TLS adds a second listener that requires a client certificate signed by a generated CA.
	TLS bool
	// Extra lines appended to the configuration.
	Extra string
}

// TLSFiles are the PEM files of a TLS broker: the CA, and a client certificate and key (CN
// "client") signed by it.
type TLSFiles struct {
	CA, ClientCert, ClientKey string
}

// Broker is a running mosquitto.
type Broker struct {
	t        testing.TB
	dir      string
	conf     string
	Port     int
	TLSPort  int
	TLSFiles TLSFiles

	mu     sync.Mutex
	cmd    *exec.Cmd
	waitCh chan struct{} // closed when cmd has exited
}

// Start starts a broker and stops it when the test ends.
func Start(t testing.TB, opt Options) *Broker {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("brokertest: %s not found (run `make deps`, or apt-get install mosquitto mosquitto-clients): %v", Binary, err)
	}
	b := &Broker{t: t, dir: t.TempDir(), Port: freePort(t)}
	var conf strings.Builder
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n", b.Port)
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		conf.WriteString("user root\n") // otherwise mosquitto drops to user mosquitto and cannot write the temp dir
	}
	if len(opt.Users) > 0 {
		pw := filepath.Join(b.dir, "passwd")
		var lines strings.Builder
		for u, p := range opt.Users {
			fmt.Fprintf(&lines, "%s:%s\n", u, p)
		}
		if err := os.WriteFile(pw, []byte(lines.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mosquitto_passwd", "-U", pw).CombinedOutput(); err != nil {
			t.Fatalf("brokertest: mosquitto_passwd -U: %v: %s", err, out)
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		conf.WriteString("allow_anonymous true\n")
	}
	if opt.ACLFile != "" {
		fmt.Fprintf(&conf, "acl_file %s\n", opt.ACLFile)
	}
	if opt.Persistence {
		fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\nautosave_interval 1\n", b.dir)
	} else {
		conf.WriteString("persistence false\n")
	}
	// Without it, Nagle on the broker and delayed ACKs on the clients add 40 ms to every round trip.
	conf.WriteString("set_tcp_nodelay true\nmax_queued_messages 100000\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\nlog_timestamp_format %H:%M:%S\n")
	if opt.TLS {
		b.TLSPort = freePort(t)
		b.TLSFiles = writeTLS(t, b.dir)
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
			b.TLSPort, b.TLSFiles.CA, filepath.Join(b.dir, "server.crt"), filepath.Join(b.dir, "server.key"))
	}
	conf.WriteString(opt.Extra)
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
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
	return b
}

// URL is the plain MQTT listener, tcp://127.0.0.1:port.
func (b *Broker) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.Port) }

// Addr is the plain listener's host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// TLSURL is the TLS listener, ssl://127.0.0.1:port.
func (b *Broker) TLSURL() string { return fmt.Sprintf("ssl://127.0.0.1:%d", b.TLSPort) }

func (b *Broker) start() {
	b.t.Helper()
	logf, err := os.OpenFile(filepath.Join(b.dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(Binary, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("brokertest: start mosquitto: %v", err)
	}
	b.mu.Lock()
	b.cmd = cmd
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{b.Port, b.TLSPort} {
		if port == 0 {
			continue
		}
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				b.dumpLog()
				b.t.Fatalf("brokertest: mosquitto exited at start: %v", cmd.ProcessState)
			default:
			}
			if time.Now().After(deadline) {
				b.dumpLog()
				b.t.Fatalf("brokertest: mosquitto not accepting on %d after 10s: %v", port, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.mu.Lock()
	b.waitCh = done
	b.mu.Unlock()
}

// Kill kills the broker with SIGKILL and waits for it to exit. Killing a stopped broker is a
// no-op.
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.waitCh
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts the broker again on the same port with the same configuration (and, with
// persistence, whatever it had saved). It kills a running broker first.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Kill()
	b.start()
}

// Log returns the broker's log so far.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
	return string(out)
}

func (b *Broker) dumpLog() {
	out := b.Log()
	if len(out) > 8000 {
		out = "...\n" + out[len(out)-8000:]
	}
	b.t.Logf("brokertest: mosquitto log (%s):\n%s", b.conf, out)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTLS makes a CA, a server certificate for 127.0.0.1 and localhost, and a client
// certificate, all ECDSA P-256, in dir.
func writeTLS(t testing.TB, dir string) TLSFiles {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kaoqin test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP, dns []string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, DNSNames: dns}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
		writePEM(t, filepath.Join(dir, name+".key"), "EC PRIVATE KEY", kder)
	}
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER)
	leaf("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	leaf("client", 3, x509.ExtKeyUsageClientAuth, nil, nil)
	return TLSFiles{CA: filepath.Join(dir, "ca.crt"), ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key")}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}
