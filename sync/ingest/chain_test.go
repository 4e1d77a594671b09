package ingest_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// fakeDevice speaks for a registered device by hand: it seals records with the device's own key,
// publishes exactly the batches a test builds, under any prefix, and collects the acks sent to it.
type fakeDevice struct {
	t    *testing.T
	c    mqtt.Client
	name string
	key  ed25519.PrivateKey
	acks chan wire.Ack
}

func newFakeDevice(t *testing.T, env *synckit.Env, b *brokertest.Broker, name string) *fakeDevice {
	t.Helper()
	d := &fakeDevice{t: t, name: name, key: synckit.Ed25519(t, env.DeviceKey(name)), acks: make(chan wire.Ack, 100)}
	o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("fake-" + name).SetProtocolVersion(4).
		SetAutoReconnect(false).SetCleanSession(true)
	d.c = mqtt.NewClient(o)
	if tok := d.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", name, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(100) })
	pub := centralPub(t, env)
	tok := d.c.Subscribe(wire.Prefix("+", name)+"/down/ack", 1, func(_ mqtt.Client, m mqtt.Message) {
		a, err := wire.DecodeAck(m.Payload(), pub)
		if err != nil {
			t.Errorf("malformed ack: %v", err)
			return
		}
		if !strings.HasPrefix(m.Topic(), wire.Prefix(synckit.Institution, name)+"/") {
			t.Errorf("ack on %s, want the prefix of institution %s", m.Topic(), synckit.Institution)
		}
		d.acks <- *a
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: subscribe: %v", name, tok.Error())
	}
	return d
}

// deviceAndIngester is a broker test's usual start: a broker of its own (no ACL), device
// jn-0001-r101 with its key registered, and an ingester on that broker, its configuration changed
// by edit when edit is not nil.
func deviceAndIngester(t *testing.T, edit func(*ingest.Config)) (*synckit.Env, *fakeDevice, *ingest.Ingester) {
	t.Helper()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	d := newFakeDevice(t, env, b, "jn-0001-r101")
	cfg := env.IngestConfig("central", b.URL())
	if edit != nil {
		edit(&cfg)
	}
	in, _ := env.StartIngester(cfg)
	return env, d, in
}

// seal seals a sign-in of device at epoch and seq linked to prev.
func (d *fakeDevice) seal(device string, epoch, seq uint64, prev [32]byte) ledger.Record {
	d.t.Helper()
	e := synckit.SignIn(int(seq))
	e.Device, e.Epoch, e.Seq, e.ID = device, epoch, seq, ledger.NewID(time.Now())
	r, err := ledger.Seal(&e, prev, d.key)
	if err != nil {
		d.t.Fatal(err)
	}
	return r
}

// run seals n linked records of the device's own name from seq from.
func (d *fakeDevice) run(epoch, from uint64, n int, prev [32]byte) []ledger.Record {
	var out []ledger.Record
	for i := 0; i < n; i++ {
		r := d.seal(d.name, epoch, from+uint64(i), prev)
		prev = r.Hash()
		out = append(out, r)
	}
	return out
}

// send publishes recs as one batch of the given epoch from seq first, under institution inst.
func (d *fakeDevice) send(inst string, epoch, first uint64, recs []ledger.Record) {
	d.t.Helper()
	b := wire.Batch{Device: d.name, Epoch: epoch, FirstSeq: first, LastSeq: first + uint64(len(recs)) - 1, Events: recs}
	p, err := b.Encode()
	if err != nil {
		d.t.Fatal(err)
	}
	if tok := d.c.Publish(wire.EventsTopic(inst, d.name), 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish: %v", tok.Error())
	}
}

// online publishes the device's retained state under its institution and waits until the
// ingester shows it: from then on the ingester is subscribed and the device registered.
func (d *fakeDevice) online(in *ingest.Ingester) {
	d.t.Helper()
	p, err := (&wire.State{Device: d.name, Online: true, Epoch: 8}).Encode()
	if err != nil {
		d.t.Fatal(err)
	}
	if tok := d.c.Publish(wire.StateTopic(synckit.Institution, d.name), 1, true, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish state: %v", tok.Error())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s := in.Status(); len(s) == 1 && s[0].Device == d.name && s[0].Online {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the ingester never showed %s online: %+v", d.name, in.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextAck waits for the next ack.
func (d *fakeDevice) nextAck(what string) wire.Ack {
	d.t.Helper()
	select {
	case a := <-d.acks:
		return a
	case <-time.After(10 * time.Second):
		d.t.Fatalf("%s: no ack", what)
	}
	return wire.Ack{}
}

func (d *fakeDevice) wantAck(what string, epoch, through uint64) {
	d.t.Helper()
	if a := d.nextAck(what); a.Epoch != epoch || a.AckedThrough != through {
		d.t.Fatalf("%s: got ack of epoch %d through %d, want epoch %d through %d", what, a.Epoch, a.AckedThrough, epoch, through)
	}
}

// waitStatus waits until the ingester's status satisfies cond: the status follows the acks of a
// transaction by a moment.
func waitStatus(t *testing.T, in *ingest.Ingester, what string, cond func([]ingest.DeviceStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(in.Status()) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: %s", in.Status(), what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stored is what the ingester holds of a device: records by epoch and seq.
func stored(t *testing.T, in *ingest.Ingester, device string) map[uint64]map[uint64]ledger.Record {
	t.Helper()
	out := map[uint64]map[uint64]ledger.Record{}
	err := in.Scan(func(dev string, epoch, seq uint64, r ledger.Record) error {
		if dev == device {
			if out[epoch] == nil {
				out[epoch] = map[uint64]ledger.Record{}
			}
			out[epoch][seq] = bytes.Clone(r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Batches that do not continue the stored chain are refused and not stored: an old epoch's
// records replayed under the new epoch, records whose seq is not their place, a fork joining at
// the stored head, another device's records. Each refusal is followed by a batch the ingester
// already holds, whose ack (through 3, not 5) shows the refused batch was handled and not kept.
func TestIngesterRefusesBatchesThatDoNotContinueTheChain(t *testing.T) {
	t.Parallel()
	_, d, in := deviceAndIngester(t, nil)
	d.online(in)
	newEpoch := d.run(8, 1, 3, ledger.ZeroHash)
	d.send(synckit.Institution, 8, 1, newEpoch)
	d.wantAck("epoch 8 seqs 1-3", 8, 3)
	head := newEpoch[2].Hash()

	fork := d.seal(d.name, 8, 3, newEpoch[1].Hash()) // another record for seq 3
	other := func(device string) []ledger.Record {
		r4 := d.seal(device, 8, 4, head)
		return []ledger.Record{r4, d.seal(device, 8, 5, r4.Hash())}
	}
	tests := []struct {
		name string
		recs []ledger.Record
	}{
		{"epoch 7 records labelled epoch 8", d.run(7, 4, 2, head)},
		{"records saying seqs 6-7 at 4-5", d.run(8, 6, 2, head)},
		{"a fork's seqs 4-5", d.run(8, 4, 2, fork.Hash())},
		{"records of jn-0001-r102", other("jn-0001-r102")},
	}
	last := "" // the status's last error, once per refusal (the ack may come before the status)
	for _, tc := range tests {
		d.send(synckit.Institution, 8, 4, tc.recs)
		d.send(synckit.Institution, 8, 1, newEpoch) // held already: acked again
		d.wantAck(tc.name+", then seqs 1-3 again", 8, 3)
		waitStatus(t, in, tc.name+": want a verification error", func(s []ingest.DeviceStatus) bool {
			return len(s) == 1 && strings.Contains(s[0].LastError, "refused") && s[0].LastError != last
		})
		last = in.Status()[0].LastError // the next refusal must change it
	}
	got := stored(t, in, d.name)
	if len(got) != 1 || len(got[8]) != 3 {
		t.Fatalf("stored after the refusals: %d epochs, %d records of epoch 8; want epoch 8 alone, seqs 1-3", len(got), len(got[8]))
	}

	good := d.run(8, 4, 2, head)
	d.send(synckit.Institution, 8, 4, good)
	d.wantAck("the real seqs 4-5", 8, 5)
	got = stored(t, in, d.name)
	for i, r := range good {
		if !bytes.Equal(got[8][uint64(4+i)], r) {
			t.Errorf("seq %d stored is not the record sent", 4+i)
		}
	}
}

// A device registered under its institution that publishes under another institution's prefix is
// refused by the ingester itself, whatever the broker lets through: its records are not stored and
// nothing is acknowledged.
func TestIngesterRefusesAnotherInstitutionsPrefix(t *testing.T) {
	t.Parallel()
	_, d, in := deviceAndIngester(t, nil) // a broker without an ACL: the ingester alone decides
	d.online(in)
	recs := d.run(8, 1, 5, ledger.ZeroHash)
	d.send(synckit.Institution, 8, 1, recs[:3])
	d.wantAck("seqs 1-3 under 0001", 8, 3)

	d.send("0002", 8, 4, recs[3:]) // the next records, well signed, under 0002
	d.send(synckit.Institution, 8, 1, recs[:3])
	d.wantAck("seqs 4-5 under 0002, then 1-3 again under 0001", 8, 3)
	if got := stored(t, in, d.name); len(got[8]) != 3 {
		t.Fatalf("stored: %d records, want 3 (nothing from the 0002 prefix)", len(got[8]))
	}
	waitStatus(t, in, "want the device registered under 0001 with an error naming the institution", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && s[0].Institution == synckit.Institution && strings.Contains(s[0].LastError, "institution")
	})

	d.send(synckit.Institution, 8, 4, recs[3:])
	d.wantAck("seqs 4-5 under 0001", 8, 5)
}

// The ack leaves only after the commit: while the transaction storing a batch is held open, no
// ack is published; once it commits, the ack follows.
func TestIngesterAcksOnlyAfterTheCommit(t *testing.T) {
	t.Parallel()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	const dev = "jn-0001-r101"
	d := newFakeDevice(t, env, b, dev)
	in, err := ingest.New(env.IngestConfig("central", b.URL()), env.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ingest.SetInCommit(in, func() {
		once.Do(func() { close(entered) })
		<-release
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	synckit.Start(t, in.Run)
	d.online(in)
	d.send(synckit.Institution, 8, 1, d.run(8, 1, 3, ledger.ZeroHash))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch was never committed")
	}
	select {
	case a := <-d.acks:
		t.Fatalf("got ack of epoch %d through %d while the commit was held, want none before the commit", a.Epoch, a.AckedThrough)
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	d.wantAck("after the commit", 8, 3)
	if got := stored(t, in, dev); len(got[8]) != 3 {
		t.Fatalf("stored after the ack: %d records, want 3", len(got[8]))
	}
}

// A batch whose payload names another device than its topic is refused whole, even when its
// records are the topic device's own: the topic, the payload and the records must agree.
func TestIngesterRefusesABatchNamingAnotherDevice(t *testing.T) {
	t.Parallel()
	_, d, in := deviceAndIngester(t, nil)
	d.online(in)
	recs := d.run(8, 1, 3, ledger.ZeroHash)
	bt := wire.Batch{Device: "jn-0001-r102", Epoch: 8, FirstSeq: 1, LastSeq: 3, Events: recs}
	p, err := bt.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if tok := d.c.Publish(wire.EventsTopic(synckit.Institution, d.name), 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	waitStatus(t, in, "want the batch refused for naming another device", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && strings.Contains(s[0].LastError, "batch of device")
	})
	if got := stored(t, in, d.name); len(got) != 0 {
		t.Fatalf("stored: %v epochs, want nothing", len(got))
	}
	select {
	case a := <-d.acks:
		t.Fatalf("got ack through %d for a refused batch, want none", a.AckedThrough)
	default:
	}
	d.send(synckit.Institution, 8, 1, recs)
	d.wantAck("the same records under the right name", 8, 3)
}

// A state's head is witnessed only when the device's own key signed it: a head signed by another
// key is refused (the state is kept, the head witnesses nothing), a head signed by the device is
// the one the ingester holds the device to.
func TestIngesterWitnessesOnlyHeadsTheDeviceSigned(t *testing.T) {
	t.Parallel()
	_, d, in := deviceAndIngester(t, nil)
	d.online(in)
	publish := func(key ed25519.PrivateKey, seq uint64) {
		t.Helper()
		s := &wire.State{Device: d.name, Online: true, Epoch: 8, HeadSeq: seq, Backlog: seq}
		s.SignHead([32]byte{byte(seq)}, key)
		p, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if tok := d.c.Publish(wire.StateTopic(synckit.Institution, d.name), 1, true, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish state: %v", tok.Error())
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	publish(other, 40)
	waitStatus(t, in, "a head signed by another key refused", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && s[0].HeadSeq == 40 && strings.Contains(s[0].LastError, "state head refused")
	})
	if s := in.Status()[0]; s.WitnessedSeq != 0 {
		t.Fatalf("witnessed after a forged head: got seq %d, want none", s.WitnessedSeq)
	}
	publish(d.key, 30)
	waitStatus(t, in, "the device's own signed head witnessed", func(s []ingest.DeviceStatus) bool {
		return len(s) == 1 && s[0].WitnessedSeq == 30 && s[0].WitnessedEpoch == 8
	})
}
