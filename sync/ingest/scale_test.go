package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/ingest/fleet"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/pgtest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// pgConfig is an ingester of share group "g" over the PostgreSQL database db.
func pgConfig(env *synckit.Env, name, broker, db string) ingest.Config {
	c := env.IngestConfig(name, broker)
	c.DB, c.Socket, c.ShareGroup = db, filepath.Join(env.Dir, name+".sock"), "g"
	return c
}

// checkFleet verifies that the database holds every event of every device exactly once: seqs
// 1..head contiguous, the chain verifying with the device's key from the first record to the
// last, and the last record's hash equal to the device's head. It fails the test with every
// problem.
func checkFleet(t *testing.T, db string, f *fleet.Fleet) {
	t.Helper()
	chains := map[string]*ledger.Chain{}
	devs := map[string]*fleet.Device{}
	for _, d := range f.Devs {
		devs[d.Name] = d
		chains[d.Name] = &ledger.Chain{Pub: d.Public(), Device: d.Name, Epoch: d.Epoch()}
	}
	var problems []string
	err := ingest.ScanDB(context.Background(), db, func(device string, epoch, seq uint64, rec ledger.Record) error {
		c := chains[device]
		if c == nil || epoch != c.Epoch {
			problems = append(problems, fmt.Sprintf("%s epoch %d seq %d: invented", device, epoch, seq))
			return nil
		}
		if seq != c.Seq+1 {
			problems = append(problems, fmt.Sprintf("%s: got seq %d after %d, want %d", device, seq, c.Seq, c.Seq+1))
			return nil
		}
		if err := c.Append([]ledger.Record{rec}); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", device, err))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for name, c := range chains {
		head, hash := devs[name].Head()
		total += head
		if c.Seq != head || c.Head != hash {
			problems = append(problems, fmt.Sprintf("%s: stored 1..%d, want 1..%d ending in the device's head", name, c.Seq, head))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = problems[:20]
		}
		t.Fatalf("the database does not hold each event exactly once:\n  %s", strings.Join(problems, "\n  "))
	}
	t.Logf("%d events of %d devices stored exactly once", total, len(chains))
}

func startFleet(t *testing.T, env *synckit.Env, broker string, n int, ackTimeout time.Duration) (*fleet.Fleet, *synckit.Running) {
	t.Helper()
	f, err := fleet.New(fleet.Config{Broker: broker, Devices: n, KeysDir: env.DeviceKeysDir, CentralPub: centralPub(t, env),
		BatchSize: 16, Window: 4, AckTimeout: ackTimeout}, env.Log)
	if err != nil {
		t.Fatal(err)
	}
	return f, synckit.Start(t, f.Run)
}

func centralPub(t *testing.T, env *synckit.Env) []byte {
	k, err := ledger.LoadPublicKey(env.CentralPub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// produce records a sign-in on a random device every interval until stopped.
func produce(t *testing.T, f *fleet.Fleet, interval time.Duration) *synckit.Running {
	return synckit.Start(t, func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				f.Devs[rand.IntN(len(f.Devs))].Record(1, ledger.SignIn, time.Now())
			}
		}
	})
}

// child is a consumer process (the test binary as a child, see child_test.go).
type child struct {
	t   *testing.T
	cfg ingest.ChildConfig
	cmd *exec.Cmd
	log *os.File
}

func (c *child) start() {
	c.t.Helper()
	js, err := json.Marshal(c.cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), ingest.ChildEnv+"="+string(js))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Wait()
}

// Two consumer processes share one subscription and one database while devices keep signing
// in; one of them, at random, is killed with SIGKILL every few hundred milliseconds (mid-batch,
// mid-commit, mid-ack) and started again. Nothing is lost and nothing is stored twice.
func TestConsumersKilled(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	db := pgtest.DB(t)
	// Migrate once before the children race for it (they would wait on the advisory lock).
	in, err := ingest.New(pgConfig(env, "setup", b.URL(), db), env.Log)
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	logf, err := os.Create(filepath.Join(env.Dir, "children.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	var kids []*child
	for i := range 2 {
		c := &child{t: t, log: logf, cfg: ingest.ChildConfig{Broker: b.URL(), ClientID: fmt.Sprintf("c%d", i), DB: db,
			Socket: filepath.Join(env.Dir, fmt.Sprintf("c%d.sock", i)), DeviceKeysDir: env.DeviceKeysDir,
			CentralKeyFile: env.CentralKey, DatasetDir: filepath.Join(env.Dir, "datasets"), ShareGroup: "g",
			GapTimeout: 500 * time.Millisecond}}
		c.start()
		kids = append(kids, c)
	}
	defer func() {
		for _, c := range kids {
			c.stop()
		}
	}()
	f, _ := startFleet(t, env, b.URL(), 20, time.Second)
	f.Record(40, ledger.SignIn) // a backlog at connection
	prod := produce(t, f, 5*time.Millisecond)
	kills := 0
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); kills++ {
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
		c := kids[rand.IntN(len(kids))]
		c.kill()
		c.start()
	}
	prod.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.WaitAcked(ctx); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("%v\nchildren's log:\n%s", err, out)
	}
	tot := f.Totals()
	t.Logf("%d kills; %d events; %d resends, %d resyncs", kills, tot.Head, tot.Resends, tot.Resyncs)
	checkFleet(t, db, f)
}

// PostgreSQL crashes and comes back while two consumers drain a backlog: they hold their acks,
// retry, and nothing is lost or doubled.
func TestPostgresRestartMidDrain(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	db := pgtest.DB(t)
	for i := range 2 {
		env.StartIngester(pgConfig(env, fmt.Sprintf("c%d", i), b.URL(), db))
	}
	f, err := fleet.New(fleet.Config{Broker: b.URL(), Devices: 20, KeysDir: env.DeviceKeysDir, CentralPub: centralPub(t, env),
		BatchSize: 16, Window: 4, AckTimeout: time.Second}, env.Log)
	if err != nil {
		t.Fatal(err)
	}
	f.Record(300, ledger.SignIn)
	synckit.Start(t, f.Run)
	start := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for f.Totals().Acked < 1000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	srv := pgtest.Current()
	if err := srv.Stop(true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: restarted with %d of %d events acked", time.Since(start), f.Totals().Acked, f.Totals().Head)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.WaitAcked(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: drained: %+v", time.Since(start), f.Totals())
	checkFleet(t, db, f)
}

// A batch that arrives before its predecessor (it went to another member of the group, or the
// broker redelivered out of order) is held: once the predecessor arrives, the ack covers both,
// with no resend and no resync.
func TestIngesterHoldsBatchAhead(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	const dev = "jn-0001-r101"
	key := synckit.Ed25519(t, env.DeviceKey(dev))
	cfg := pgConfig(env, "c0", b.URL(), pgtest.DB(t))
	cfg.GapTimeout = 3 * time.Second
	env.StartIngester(cfg)
	var recs []ledger.Record
	var prev [32]byte
	for i := range 20 {
		e := synckit.SignIn(i)
		e.Device, e.Epoch, e.Seq, e.ID = dev, 1, uint64(i+1), ledger.NewID(time.Now())
		r, err := ledger.Seal(&e, prev, key)
		if err != nil {
			t.Fatal(err)
		}
		recs, prev = append(recs, r), r.Hash()
	}
	got := make(chan string, 16)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(dev))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	central := centralPub(t, env)
	c.Subscribe(wire.DownFilter(synckit.Institution, dev), 1, func(_ mqtt.Client, m mqtt.Message) {
		if a, err := wire.DecodeAck(m.Payload(), central); err == nil {
			got <- fmt.Sprintf("%s acked_through %d", m.Topic(), a.AckedThrough)
			return
		}
		got <- m.Topic() + " " + string(m.Payload())
	}).Wait()
	// The ingester is subscribed once it knows the device from its birth state.
	st := wire.State{Device: dev, Online: true, Epoch: 1}
	sp, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.Publish(wire.StateTopic(synckit.Institution, dev), 1, false, sp).Wait()
		sts, _ := ingest.Status(context.Background(), cfg)
		if len(sts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingester did not see the device's state within 10s: status %+v", sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	send := func(first, last uint64) {
		bt := wire.Batch{Device: dev, Epoch: 1, FirstSeq: first, LastSeq: last, Events: recs[first-1 : last]}
		p, err := bt.Encode()
		if err != nil {
			t.Fatal(err)
		}
		c.Publish(wire.EventsTopic(synckit.Institution, dev), 1, false, p).Wait()
	}
	send(11, 20)
	select {
	case m := <-got:
		t.Fatalf("got %s before the predecessor arrived, want nothing", m)
	case <-time.After(300 * time.Millisecond):
	}
	send(1, 10)
	var acks []string
	timeout := time.After(2 * time.Second)
	for len(acks) == 0 || !strings.HasSuffix(acks[len(acks)-1], "acked_through 20") {
		select {
		case m := <-got:
			if strings.Contains(m, "down/cmd") {
				t.Fatalf("got a command %s, want the held batch taken without a resync", m)
			}
			acks = append(acks, m)
		case <-timeout:
			t.Fatalf("got acks %v within 2s, want one through 20", acks)
		}
	}
	n := 0
	if err := ingest.ScanDB(context.Background(), cfg.DB, func(string, uint64, uint64, ledger.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("got %d records stored, want 20", n)
	}
}

// Simulated devices get a published roster from consumers sharing PostgreSQL, apply it and say
// so; the database records the published version and each device's report.
func TestFleetAppliesDataset(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	db := pgtest.DB(t)
	f, err := fleet.New(fleet.Config{Broker: b.URL(), Devices: 4, KeysDir: env.DeviceKeysDir, CentralPub: centralPub(t, env),
		AckTimeout: time.Second}, env.Log)
	if err != nil {
		t.Fatal(err)
	}
	var cfgs []ingest.Config
	for i := range 2 {
		c := pgConfig(env, fmt.Sprintf("c%d", i), b.URL(), db)
		cfgs = append(cfgs, c)
		env.StartIngester(c)
	}
	synckit.Start(t, f.Run)
	if err := ingest.Publish(context.Background(), cfgs[0], "roster", 0, writeRoster(t, env.Dir, 3)); err != nil {
		t.Fatal(err)
	}
	if err := ingest.Publish(context.Background(), cfgs[1], "roster", 0, writeRoster(t, env.Dir, 3)); err != nil {
		t.Fatal(err) // the same version again: the second member reads it too
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.Totals().Applied < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("got %d devices that applied the roster, want 4", f.Totals().Applied)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		sts, err := ingest.Status(context.Background(), ingest.Config{DB: db, Socket: filepath.Join(env.Dir, "none.sock")})
		if err != nil {
			t.Fatal(err)
		}
		applied := 0
		for _, s := range sts {
			if s.Applied["roster"].Version == 3 {
				applied++
			}
		}
		if applied == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database records %d devices with roster 3 applied, want 4: %+v", applied, sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
