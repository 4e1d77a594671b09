package ledger

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

// signer seals events of one device key the way the store does, but lets a test choose every
// header field and every prev: what a box whose key is in the institution's hands could produce.
type signer struct {
	t    testing.TB
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newSigner(t testing.TB) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return signer{t, pub, priv}
}

// seal seals one sign-in of device at epoch and seq linked to prev.
func (s signer) seal(device string, epoch, seq uint64, prev [32]byte) Record {
	s.t.Helper()
	at := time.Date(2026, 11, 27, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))
	e := Event{Device: device, Epoch: epoch, Seq: seq, ID: NewID(at), Kind: SignIn,
		Time: Clock{Wall: at, Mono: int64(seq), Boot: "b", Synced: true}, Trainee: "T001"}
	r, err := Seal(&e, prev, s.priv)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// run seals n records of device and epoch, seqs from..from+n-1, linked to prev and each other.
func (s signer) run(device string, epoch, from uint64, n int, prev [32]byte) []Record {
	s.t.Helper()
	var out []Record
	for i := 0; i < n; i++ {
		r := s.seal(device, epoch, from+uint64(i), prev)
		prev = r.Hash()
		out = append(out, r)
	}
	return out
}

const dev = "jn-0001-r101"

// resumed is a chain resumed from a verified head, as the ingester and the store resume one.
func resumed(pub ed25519.PublicKey, epoch uint64, head []Record) *Chain {
	last := head[len(head)-1]
	h, _ := last.header()
	return &Chain{Pub: pub, Device: dev, Epoch: epoch, Seq: h.seq, Head: last.Hash()}
}

// wantRefused checks that Append refused with a *Problem at seq, wrapping want when set, and that
// the chain did not move.
func wantRefused(t *testing.T, what string, c *Chain, recs []Record, seq uint64, want error) {
	t.Helper()
	before := *c
	err := c.Append(recs)
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("%s: got %v, want a *Problem at seq %d", what, err, seq)
	}
	if p.Seq != seq {
		t.Errorf("%s: got a problem at seq %d (%v), want seq %d", what, p.Seq, p.Err, seq)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
	if c.Seq != before.Seq || c.Head != before.Head || c.Epoch != before.Epoch || c.Device != before.Device {
		t.Errorf("%s: chain moved to device %q epoch %d seq %d, want it at %q %d %d", what, c.Device, c.Epoch, c.Seq,
			before.Device, before.Epoch, before.Seq)
	}
}

// An old epoch's records, signed by the device's own key and linked to the new epoch's head, are
// refused: a verifier at epoch 8 takes no record of epoch 7, wherever it sits in the batch.
func TestOldEpochReplayedAfterNewEpochIsRefused(t *testing.T) {
	s := newSigner(t)
	e8 := s.run(dev, 8, 1, 2, ZeroHash)
	old := s.run(dev, 7, 3, 2, e8[1].Hash())
	mixed := s.run(dev, 8, 3, 2, e8[1].Hash())
	mixed = append(mixed, s.seal(dev, 7, 5, mixed[1].Hash()))
	// A large batch is checked by several decoders: its last record and its first are checked.
	bigLast := s.run(dev, 8, 3, 299, e8[1].Hash())
	bigLast = append(bigLast, s.seal(dev, 7, 302, bigLast[len(bigLast)-1].Hash()))
	bigFirst := s.run(dev, 7, 3, 1, e8[1].Hash())
	bigFirst = append(bigFirst, s.run(dev, 8, 4, 299, bigFirst[0].Hash())...)
	for _, workers := range []int{0, 1, 3} { // 0: as many decoders as GOMAXPROCS
		c := resumed(s.pub, 8, e8)
		c.Workers = workers
		wantRefused(t, "epoch 7 batch at epoch 8's head", c, old, 3, nil)
		wantRefused(t, "epoch 7 record third in an epoch 8 batch", c, mixed, 5, nil)
		if err := c.Append(mixed); err == nil || !strings.Contains(err.Error(), "epoch 7, chain is 8") {
			t.Errorf("epoch 7 record third in an epoch 8 batch: got %v, want it to say epoch 7, chain is 8", err)
		}
		wantRefused(t, "epoch 7 record last in a batch of 300", c, bigLast, 302, nil)
		wantRefused(t, "epoch 7 record first in a batch of 300", c, bigFirst, 3, nil)
		if err := c.Append(s.run(dev, 8, 3, 2, e8[1].Hash())); err != nil {
			t.Fatalf("epoch 8 continues after the refusals: %v", err)
		}
	}

	// The whole old epoch, from its own first record, is no more welcome at the new epoch's head.
	c := resumed(s.pub, 8, e8)
	wantRefused(t, "epoch 7 from seq 1", c, s.run(dev, 7, 1, 3, ZeroHash), 3, nil)
}

// Records of another device, even signed by the same key, do not join a device's chain.
func TestAnotherDevicesRecordsAreRefused(t *testing.T) {
	s := newSigner(t)
	head := s.run(dev, 8, 1, 2, ZeroHash)
	c := resumed(s.pub, 8, head)
	wantRefused(t, "records of r102", c, s.run("jn-0001-r102", 8, 3, 2, head[1].Hash()), 3, nil)
}

// A record's seq is its position: a batch whose records are signed and linked but say another
// seq (a gap, a repeat, a shift) is refused at the first record out of place.
func TestSeqOtherThanPositionIsRefused(t *testing.T) {
	s := newSigner(t)
	head := s.run(dev, 8, 1, 2, ZeroHash)
	c := resumed(s.pub, 8, head)
	wantRefused(t, "batch starting at seq 5 after seq 2", c, s.run(dev, 8, 5, 2, head[1].Hash()), 3, nil)
	wantRefused(t, "batch repeating seq 2", c, s.run(dev, 8, 2, 2, head[1].Hash()), 3, nil)

	skip := s.run(dev, 8, 3, 2, head[1].Hash())
	skip = append(skip, s.seal(dev, 8, 6, skip[1].Hash()))
	wantRefused(t, "seq 6 third in a batch from 3", c, skip, 5, nil)

	big := s.run(dev, 8, 3, 299, head[1].Hash())
	big = append(big, s.seal(dev, 8, 303, big[len(big)-1].Hash()))
	c.Workers = 4
	wantRefused(t, "seq 303 last in a batch of 300 from 3", c, big, 302, nil)

	fresh := &Chain{Pub: s.pub}
	wantRefused(t, "a new chain starting at seq 2", fresh, s.run(dev, 8, 2, 2, ZeroHash), 1, nil)
	if fresh.Device != "" || fresh.Epoch != 0 {
		t.Errorf("a chain refused on its first batch learnt device %q epoch %d, want none", fresh.Device, fresh.Epoch)
	}
	if err := fresh.Append(s.run(dev, 9, 1, 1, ZeroHash)); err != nil {
		t.Fatalf("a new chain of epoch 9 after the refusal: %v", err)
	}
	if fresh.Device != dev || fresh.Epoch != 9 || fresh.Seq != 1 {
		t.Errorf("after one record: got device %q epoch %d seq %d, want %q 9 1", fresh.Device, fresh.Epoch, fresh.Seq, dev)
	}
}

// A fork: two different records signed for the same seq. A batch continuing the other branch
// does not join at this chain's head, although every record in it verifies; the link is blamed
// on the first record of the batch, as a broken link, not an altered record.
func TestForkDoesNotJoinAtTheHead(t *testing.T) {
	s := newSigner(t)
	base := s.run(dev, 8, 1, 2, ZeroHash)
	a := s.seal(dev, 8, 3, base[1].Hash())
	b := s.seal(dev, 8, 3, base[1].Hash()) // another ID: another record for seq 3
	c := resumed(s.pub, 8, append(base[:2:2], a))
	wantRefused(t, "branch b joining at branch a's head", c, s.run(dev, 8, 4, 3, b.Hash()), 4, ErrBrokenLink)

	// The same inside a batch: record 5 continues branch b while 4 is branch a's.
	mid := s.run(dev, 8, 4, 1, a.Hash())
	mid = append(mid, s.run(dev, 8, 5, 2, b.Hash())...)
	wantRefused(t, "branch b inside a batch", c, mid, 5, ErrBrokenLink)
	if err := c.Append(mid); err == nil || !strings.Contains(err.Error(), "seq 4 hashes to "+short(mid[0].Hash())) {
		t.Errorf("branch b inside a batch: got %v, want it to name seq 4's hash %s", err, short(mid[0].Hash()))
	}

	// A new chain starts from the zero hash.
	fresh := &Chain{Pub: s.pub}
	wantRefused(t, "first record of an epoch not linked to zero", fresh, s.run(dev, 8, 1, 2, a.Hash()), 1, ErrBrokenLink)

	if err := c.Append(s.run(dev, 8, 4, 2, a.Hash())); err != nil {
		t.Fatalf("branch a continues: %v", err)
	}
}

// A record spliced in from another chain, with its own seq and its own prev, is reported as a
// broken link at its place: that it does not belong matters more than the number it carries.
func TestSplicedRecordIsABrokenLink(t *testing.T) {
	s := newSigner(t)
	recs := s.run(dev, 8, 1, 4, ZeroHash)
	other := s.run(dev, 8, 1, 9, ZeroHash)
	spliced := []Record{recs[0], other[8], recs[2], recs[3]}
	wantRefused(t, "seq 9 of another chain at seq 2", &Chain{Pub: s.pub}, spliced, 2, ErrBrokenLink)
}

// A record no longer than a signature is short to every reader; one too short to hold its prev is
// short to Prev (and never read past its end); one in another layout is read in full.
func TestShortAndOddRecords(t *testing.T) {
	bare := make(Record, SigSize)
	if _, err := bare.header(); !errors.Is(err, ErrShortRecord) {
		t.Errorf("header of a bare signature: got %v, want ErrShortRecord", err)
	}
	if err := bare.Verify(make(ed25519.PublicKey, ed25519.PublicKeySize)); !errors.Is(err, ErrShortRecord) {
		t.Errorf("Verify of a bare signature: got %v, want ErrShortRecord", err)
	}
	if _, err := bare.Event(); !errors.Is(err, ErrShortRecord) {
		t.Errorf("Event of a bare signature: got %v, want ErrShortRecord", err)
	}
	hex := strings.Repeat("ab", 32)
	whole := append(make(Record, SigSize), `{"prev":"`+hex+`"`...) // the shortest record with a prev
	if h, err := whole.Prev(); err != nil || h[0] != 0xab || h[31] != 0xab {
		t.Errorf("Prev of the shortest record: got %x, %v; want ab...ab", h, err)
	}
	for cut := 1; cut <= 20; cut++ {
		if _, err := whole[:len(whole)-cut].Prev(); !errors.Is(err, ErrShortRecord) {
			t.Errorf("Prev of the shortest record less %d bytes: got %v, want ErrShortRecord", cut, err)
		}
	}
	body := `{"seq":3,"epoch":8,"device":"d","v":1,"prev":"` + strings.Repeat("0", 64) + `"}`
	h, err := append(make(Record, SigSize), body...).header()
	if err != nil || h != (header{"d", 8, 3}) {
		t.Errorf("reordered body: got %+v, %v; want {d 8 3}", h, err)
	}
	for _, body := range []string{`{"seq":3,"epoch":8,"device":"d","v":2}`, `{"seq":3,`, `{"v":1,"device":"d","epoch":-1}`} {
		if h, err := append(make(Record, SigSize), body...).header(); err == nil {
			t.Errorf("%s: got %+v, want an error", body, h)
		}
	}
}

// Bodies sealed here are read without decoding the JSON (what makes verify fast), for any
// device name and any epoch and seq, zeros and 20 digits included.
func TestSealedBodiesTakeTheFastPath(t *testing.T) {
	s := newSigner(t)
	for _, tc := range []header{{dev, 1, 1}, {"r", 10, 100}, {dev, 18446744073709551615, 10203040506070809000}, {"教室-1", 907, 1000000}} {
		r := s.seal(tc.device, tc.epoch, tc.seq, ZeroHash)
		h, ok := fastHeader(r.Body())
		if !ok || h != tc {
			t.Errorf("sealed %+v: fast header got %+v, %v; want it, true", tc, h, ok)
		}
	}
}

func TestCountedKinds(t *testing.T) {
	for k, want := range map[Kind]bool{SignIn: true, SignOut: true, VoucherCheckin: true, Refusal: false,
		Duplicate: false, Enrollment: false, Alarm: false} {
		if got := k.Counted(); got != want {
			t.Errorf("%s.Counted() = %v, want %v", k, got, want)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	e := Event{Kind: SignIn, Session: "S1", Trainee: "T1", Flags: []Flag{FlagLate}, Time: Clock{Wall: at}}
	tests := []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Since: at}, true},
		{Filter{Since: at.Add(time.Second)}, false},
		{Filter{Until: at.Add(time.Second)}, true},
		{Filter{Until: at}, false},
		{Filter{Session: "S1"}, true},
		{Filter{Session: "S2"}, false},
		{Filter{Trainee: "T1"}, true},
		{Filter{Trainee: "T2"}, false},
		{Filter{Kind: SignIn}, true},
		{Filter{Kind: SignOut}, false},
		{Filter{Flag: FlagLate}, true},
		{Filter{Flag: FlagEarlyLeave}, false},
		{Filter{Since: at, Until: at.Add(time.Minute), Session: "S1", Trainee: "T1", Kind: SignIn, Flag: FlagLate}, true},
	}
	for _, tc := range tests {
		if got := tc.f.Match(&e); got != tc.want {
			t.Errorf("%+v.Match: got %v, want %v", tc.f, got, tc.want)
		}
	}
}
