package ledger

import (
	"crypto/ed25519"
	"errors"
	"regexp"
	"testing"
	"time"
)

func testChain(t testing.TB, n int) (ed25519.PublicKey, []Record) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	prev := ZeroHash
	at := time.Date(2026, 11, 27, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))
	for i := 1; i <= n; i++ {
		e := Event{Device: "jn-0001-r101", Epoch: 7, Seq: uint64(i), ID: NewID(at), Kind: SignIn,
			Time: Clock{Wall: at, Mono: int64(i) * 1e9, Boot: "b", Synced: true}, Trainee: "T001",
			Flags: []Flag{FlagLate}}
		r, err := Seal(&e, prev, priv)
		if err != nil {
			t.Fatal(err)
		}
		prev = r.Hash()
		recs = append(recs, r)
	}
	return pub, recs
}

func TestSealRoundTrip(t *testing.T) {
	pub, recs := testChain(t, 3)
	for i, r := range recs {
		if err := r.Verify(pub); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		e, err := r.Event()
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) || e.Kind != SignIn || !e.HasFlag(FlagLate) || e.Time.Wall.Location().String() == "UTC" {
			t.Errorf("record %d decoded as %+v", i, e)
		}
	}
	c := Chain{Pub: pub}
	if err := c.Append(recs); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	if c.Seq != 3 || c.Head != recs[2].Hash() || c.Device != "jn-0001-r101" || c.Epoch != 7 {
		t.Errorf("chain after append: seq %d device %q epoch %d", c.Seq, c.Device, c.Epoch)
	}
}

// Flipping any single byte of any record is caught and blamed on that record.
func TestEveryFlippedByteIsCaught(t *testing.T) {
	pub, recs := testChain(t, 4)
	for ri := range recs {
		for bi := range recs[ri] {
			for _, all := range []bool{false, true} {
				bad := make([]Record, len(recs))
				for i := range recs {
					bad[i] = append(Record(nil), recs[i]...)
				}
				bad[ri][bi] ^= 0x01
				c := Chain{Pub: pub, AllSignatures: all}
				err := c.Append(bad)
				var p *Problem
				if !errors.As(err, &p) {
					t.Fatalf("record %d byte %d flipped (all=%v): got %v, want a *Problem", ri, bi, all, err)
				}
				if p.Seq != uint64(ri+1) {
					t.Fatalf("record %d byte %d flipped (all=%v): blamed seq %d (%v), want %d", ri, bi, all, p.Seq, p.Err, ri+1)
				}
				if c.Seq != 0 {
					t.Fatalf("chain advanced to %d on a bad batch", c.Seq)
				}
			}
		}
	}
}

func TestMissingRecordBreaksLink(t *testing.T) {
	pub, recs := testChain(t, 4)
	c := Chain{Pub: pub}
	if err := c.Append(recs[:2]); err != nil {
		t.Fatal(err)
	}
	err := c.Append(recs[3:])
	var p *Problem
	if !errors.As(err, &p) || p.Seq != 3 {
		t.Fatalf("got %v, want a problem at seq 3 (seq 4 arrives where 3 belongs)", err)
	}
	if err := c.Append(recs[2:]); err != nil {
		t.Fatalf("resuming with the right record: %v", err)
	}
	if c.Seq != 4 {
		t.Errorf("chain at %d, want 4", c.Seq)
	}
}

func TestWrongKeyIsRefused(t *testing.T) {
	_, recs := testChain(t, 2)
	other, _, _ := ed25519.GenerateKey(nil)
	c := Chain{Pub: other}
	err := c.Append(recs)
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("got %v, want ErrSignature", err)
	}
}

func TestNewIDIsUUIDv7(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a := NewID(time.UnixMilli(1_700_000_000_000))
	b := NewID(time.UnixMilli(1_700_000_000_001))
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Fatalf("got %s and %s, want UUIDv7 form", a, b)
	}
	if a[:13] >= b[:13] {
		t.Errorf("ids do not sort by time: %s then %s", a, b)
	}
	if a[:8] != "018bcfe5" {
		t.Errorf("timestamp bits of %s: got %s, want 018bcfe5", a, a[:8])
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath, err := GenerateKeyFiles(dir, "device")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := GenerateKeyFiles(dir, "device"); err == nil {
		t.Fatal("second keygen overwrote the key")
	}
	sk, err := LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !pk.Equal(sk.Public()) {
		t.Fatal("public key file does not match the private key")
	}
	if _, err := LoadPublicKey(privPath); err == nil {
		t.Fatal("a private key file loaded as a public key")
	}
}

// Templates stay on the box: WithoutTemplate drops an enrolment's template and keeps every other
// kind's data (a spot check's counts), without touching the event it copies.
func TestWithoutTemplate(t *testing.T) {
	enrol := Event{Kind: Enrollment, Data: []byte("template")}
	if c := enrol.WithoutTemplate(); c.Data != nil || enrol.Data == nil {
		t.Errorf("enrolment: copy has data %q, original %q; want none in the copy, the original untouched", c.Data, enrol.Data)
	}
	spot := Event{Kind: SpotCheck, Data: []byte(`{"headcount":3}`)}
	if c := spot.WithoutTemplate(); string(c.Data) != `{"headcount":3}` {
		t.Errorf("spot check: copy has data %q, want its counts kept", c.Data)
	}
}
