package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

var testKeySeed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

func testKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	sk := ed25519.NewKeyFromSeed(testKeySeed)
	return sk.Public().(ed25519.PublicKey), sk
}

// testRecords seals n events of a device epoch from seq first.
func testRecords(t testing.TB, n int) []ledger.Record {
	t.Helper()
	_, sk := testKey()
	prev := ledger.ZeroHash
	at := time.Date(2026, 11, 27, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))
	var out []ledger.Record
	for i := 1; i <= n; i++ {
		e := ledger.Event{Device: "jn-0001-r101", Epoch: 7, Seq: uint64(i), ID: ledger.NewID(at), Kind: ledger.SignIn,
			Time: ledger.Clock{Wall: at, Mono: int64(i), Boot: "b", Synced: true}, Trainee: "T001"}
		r, err := ledger.Seal(&e, prev, sk)
		if err != nil {
			t.Fatal(err)
		}
		prev = r.Hash()
		out = append(out, r)
	}
	return out
}

func TestTopics(t *testing.T) {
	for _, tc := range []struct {
		topic string
		want  Topic
	}{
		{"kaoqin/v1/0001/jn-0001-r101/up/events", Topic{"0001", "jn-0001-r101", KindEvents, ""}},
		{"kaoqin/v1/0001/jn-0001-r101/state", Topic{"0001", "jn-0001-r101", KindState, ""}},
		{"kaoqin/v1/0001/d/down/ack", Topic{"0001", "d", KindAck, ""}},
		{"kaoqin/v1/0001/d/down/cmd", Topic{"0001", "d", KindCmd, ""}},
		{"kaoqin/v1/0001/d/up/applied", Topic{"0001", "d", KindApplied, ""}},
		{"kaoqin/v1/0001/d/down/data/roster", Topic{"0001", "d", KindData, "roster"}},
		{"kaoqin/v1/0001/d/up/evidence/" + strings.Repeat("ab", 32), Topic{"0001", "d", KindEvidence, strings.Repeat("ab", 32)}},
	} {
		got, err := ParseTopic(tc.topic)
		if err != nil || got != tc.want {
			t.Errorf("ParseTopic(%q) = %+v, %v; want %+v", tc.topic, got, err, tc.want)
		}
		if s := got.String(); s != tc.topic {
			t.Errorf("String of %q = %q", tc.topic, s)
		}
	}
	if got := EventsTopic("0001", "d"); got != "kaoqin/v1/0001/d/up/events" {
		t.Errorf("EventsTopic = %q", got)
	}
	if got := DownFilter("0001", "d"); got != "kaoqin/v1/0001/d/down/#" {
		t.Errorf("DownFilter = %q", got)
	}
	if got := CentralFilters("g", "0001"); !reflect.DeepEqual(got, []string{
		"$share/g/kaoqin/v1/0001/+/up/events", "$share/g/kaoqin/v1/0001/+/state", "$share/g/kaoqin/v1/0001/+/up/applied",
		"$share/g/kaoqin/v1/0001/+/up/evidence/+"}) {
		t.Errorf("CentralFilters = %q", got)
	}
	for _, bad := range []string{
		"kaoqin/v2/0001/d/up/events", "kaoqin/v1/0001/d", "kaoqin/v1/0001/d/up/other", "kaoqin/v1/+/d/up/events",
		"kaoqin/v1/0001/#/up/events", "kaoqin/v1/0001/d/down/data/Roster", "kaoqin/v1/0001/d/down/data/",
		"kaoqin/v1/0001/d/up/evidence/xyz", "kaoqin/v1//d/state", "kaoqin/v1/0001/d/up/events/extra",
	} {
		if _, err := ParseTopic(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseTopic(%q): got %v, want ErrMalformed", bad, err)
		}
	}
}

func TestBatchRoundTrip(t *testing.T) {
	recs := testRecords(t, 5)
	b := &Batch{Device: "jn-0001-r101", Epoch: 7, FirstSeq: 1, LastSeq: 5, Events: recs}
	p, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// The hand-written encoder writes what encoding/json would.
	std, _ := json.Marshal(b)
	if !bytes.Equal(p, std) {
		t.Fatalf("Encode differs from encoding/json:\n got %s\nwant %s", p[:80], std[:80])
	}
	got, err := DecodeBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("round trip: got %+v, want %+v", got, b)
	}
	c := ledger.Chain{Pub: ed25519.NewKeyFromSeed(testKeySeed).Public().(ed25519.PublicKey)}
	if err := c.Append(got.Events); err != nil {
		t.Fatalf("records after the round trip do not verify: %v", err)
	}
}

func TestStrictDecoding(t *testing.T) {
	recs := testRecords(t, 2)
	b := &Batch{Device: "d", Epoch: 7, FirstSeq: 1, LastSeq: 2, Events: recs}
	good, _ := b.Encode()
	for _, tc := range []struct {
		name string
		p    string
		want error
	}{
		{"version 2", strings.Replace(string(good), `"v":1`, `"v":2`, 1), ErrVersion},
		{"version string", strings.Replace(string(good), `"v":1`, `"v":"1"`, 1), ErrVersion},
		{"no version", strings.Replace(string(good), `"v":1,`, ``, 1), ErrMalformed},
		{"unknown field", strings.Replace(string(good), `"v":1,`, `"v":1,"extra":true,`, 1), ErrMalformed},
		{"trailing", string(good) + `{}`, ErrMalformed},
		{"count mismatch", strings.Replace(string(good), `"last_seq":2`, `"last_seq":3`, 1), ErrMalformed},
		{"first 0", strings.Replace(strings.Replace(string(good), `"first_seq":1`, `"first_seq":0`, 1), `"last_seq":2`, `"last_seq":1`, 1), ErrMalformed},
		{"epoch 0", strings.Replace(string(good), `"epoch":7`, `"epoch":0`, 1), ErrMalformed},
		{"bad device", strings.Replace(string(good), `"device":"d"`, `"device":"a/b"`, 1), ErrMalformed},
		{"short record", `{"v":1,"device":"d","epoch":7,"first_seq":1,"last_seq":1,"events":["AAAA"]}`, ErrMalformed},
		{"not base64", `{"v":1,"device":"d","epoch":7,"first_seq":1,"last_seq":1,"events":["!!"]}`, ErrMalformed},
		{"array", `[1,2]`, ErrMalformed},
		{"null", `null`, ErrMalformed},
		{"empty", ``, ErrMalformed},
	} {
		got, err := DecodeBatch([]byte(tc.p))
		if !errors.Is(err, tc.want) || got != nil {
			t.Errorf("%s: got %v, %v; want nil, %v", tc.name, got, err, tc.want)
		}
	}
	pub, _ := testKey()
	if _, err := DecodeAck([]byte(`{"v":1,"epoch":5,"acked_through":9}`), pub); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "unsigned") {
		t.Errorf("unsigned ack: got %v, want ErrMalformed naming it unsigned", err)
	}
	if _, err := DecodeAck([]byte(`{"v":1,"epoch":5,"acked_through":-1}`), pub); !errors.Is(err, ErrMalformed) {
		t.Errorf("ack with a negative seq: got %v, want ErrMalformed", err)
	}
	if _, err := DecodeState([]byte(`{"v":1,"device":"d","online":true,"epoch":3,"head_seq":5,"acked_through":2,"backlog":1}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("state with an inconsistent backlog: got %v, want ErrMalformed", err)
	}
	if _, err := DecodeApplied([]byte(`{"v":1,"dataset":"roster","version":3,"status":"refused"}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("refused without a reason: got %v, want ErrMalformed", err)
	}
}

func TestSmallPayloadsRoundTrip(t *testing.T) {
	pub, sk := testKey()
	a := &Ack{Device: "d", Epoch: 9, AckedThrough: 100, Hash: SHA256Hex([]byte("x")), Time: time.Unix(7, 0).UTC()}
	p, err := SealAck(a, sk)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAck(p, pub)
	if err != nil || got.Device != a.Device || got.Epoch != 9 || got.AckedThrough != 100 || got.Hash != a.Hash || !got.Time.Equal(a.Time) || !bytes.Equal(got.Signed, p) {
		t.Errorf("ack round trip: got %+v, %v; want %+v with the payload kept", got, err, a)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if forged, _ := SealAck(a, other); forged != nil {
		if _, err := DecodeAck(forged, pub); !errors.Is(err, ErrSignature) {
			t.Errorf("ack signed by another key: got %v, want ErrSignature", err)
		}
	}
	s := &State{Device: "d", Online: true, Epoch: 3, HeadSeq: 10, AckedThrough: 4, Backlog: 6, OldestUnackedAge: 1.5,
		Disk: &Disk{FreeBytes: 1, TotalBytes: 2}, DatasetVersions: map[string]uint64{"roster": 4},
		Drivers: map[string]DriverHealth{"fp1": {State: "ok", Since: time.Unix(5, 0).UTC(), Readings: 3}},
		Clock:   &Clock{Wall: time.Unix(9, 0).UTC(), Synced: true, Boot: "b"}}
	p, _ = s.Encode()
	if got, err := DecodeState(p); err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("state round trip: got %+v, %v", got, err)
	}
	will, _ := (&State{Device: "d"}).Encode()
	if string(will) != `{"v":1,"device":"d","online":false}` {
		t.Errorf("will: got %s", will)
	}
	ap := &Applied{Dataset: "roster", Version: 3, SHA256: strings.Repeat("0", 64), Status: StatusApplied}
	p, _ = ap.Encode()
	if got, err := DecodeApplied(p); err != nil || *got != *ap {
		t.Errorf("applied round trip: got %+v, %v", got, err)
	}
}

func TestDatasetSignAndSplit(t *testing.T) {
	pub, sk := testKey()
	content := bytes.Repeat([]byte("roster data "), 1000)
	m, chunks, err := Split("roster", 3, "d", content, 4096, time.Unix(1, 0).UTC())
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 3 || len(m.Chunks) != 3 || m.ChunkLen(2) != len(content)-8192 {
		t.Fatalf("split %d bytes in 4096: %d chunks, last %d", len(content), len(chunks), m.ChunkLen(2))
	}
	p, err := SealManifest(m, sk)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeData(p)
	if err != nil || d.Manifest == nil || d.Chunk != nil {
		t.Fatalf("DecodeData(manifest) = %+v, %v", d, err)
	}
	got, err := OpenManifest(d.Manifest, pub)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("OpenManifest = %+v, %v; want %+v", got, err, m)
	}
	var whole []byte
	for i := range chunks {
		cp, err := chunks[i].Encode()
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeData(cp)
		if err != nil || d.Chunk == nil {
			t.Fatalf("DecodeData(chunk %d) = %+v, %v", i, d, err)
		}
		if err := got.CheckChunk(d.Chunk.Index, d.Chunk.Data); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		whole = append(whole, d.Chunk.Data...)
	}
	if err := got.CheckContent(whole); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(chunks[1].Data)
	bad[7] ^= 1
	if err := got.CheckChunk(1, bad); err == nil || !strings.Contains(err.Error(), "chunk 1 is corrupt") {
		t.Errorf("corrupt chunk: got %v, want 'chunk 1 is corrupt'", err)
	}

	// A manifest signed by another key, or altered after signing, is refused.
	_, other, _ := ed25519.GenerateKey(nil)
	p2, _ := SealManifest(m, other)
	d2, _ := DecodeData(p2)
	if _, err := OpenManifest(d2.Manifest, pub); !errors.Is(err, ErrSignature) {
		t.Errorf("manifest signed by another key: got %v, want ErrSignature", err)
	}
	d.Manifest.Body = bytes.Replace(d.Manifest.Body, []byte(`"version":3`), []byte(`"version":4`), 1)
	if _, err := OpenManifest(d.Manifest, pub); !errors.Is(err, ErrSignature) {
		t.Errorf("altered manifest: got %v, want ErrSignature", err)
	}
}

func TestCommands(t *testing.T) {
	pub, sk := testKey()
	c := &Command{ID: 17, Device: "d", Issued: time.Unix(100, 0).UTC(), Cmd: CmdResync, Epoch: 3, FromSeq: 42}
	p, err := SealCommand(c, sk)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(p, pub)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("DecodeCommand = %+v, %v; want %+v", got, err, c)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	p2, _ := SealCommand(c, other)
	if _, err := DecodeCommand(p2, pub); !errors.Is(err, ErrSignature) {
		t.Errorf("command signed by another key: got %v, want ErrSignature", err)
	}
	if _, err := SealCommand(&Command{ID: 1, Device: "d", Issued: time.Now(), Cmd: "reboot"}, sk); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown command: got %v, want ErrMalformed", err)
	}
	// A manifest envelope is not a command, even when signed by the central key.
	m, _, _ := Split("roster", 1, "d", []byte("x"), 10, time.Now())
	mp, _ := SealManifest(m, sk)
	if _, err := DecodeCommand(mp, pub); !errors.Is(err, ErrMalformed) {
		t.Errorf("manifest on the command topic: got %v, want ErrMalformed", err)
	}
}

func TestStateHeadSignature(t *testing.T) {
	pub, sk := testKey()
	s := &State{Device: "d", Online: true, Epoch: 3, HeadSeq: 10, AckedThrough: 4, Backlog: 6}
	s.SignHead([32]byte{1, 2}, sk)
	p, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.VerifyHead(pub); err != nil {
		t.Errorf("signed head: got %v, want it to verify", err)
	}
	got.HeadSeq, got.Backlog = 9, 5 // a head claimed at another seq under the same signature
	if err := got.VerifyHead(pub); !errors.Is(err, ErrSignature) {
		t.Errorf("head moved under the signature: got %v, want ErrSignature", err)
	}
	if err := (&State{Device: "d", Online: true, Epoch: 3, HeadSeq: 1, Backlog: 1}).VerifyHead(pub); !errors.Is(err, ErrSignature) {
		t.Errorf("unsigned head: got %v, want ErrSignature", err)
	}
	if _, err := DecodeState([]byte(`{"v":1,"device":"d","online":true,"epoch":3,"head_seq":5,"backlog":5,"head_hash":"zz","head_sig":"AA=="}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad head hash: got %v, want ErrMalformed", err)
	}
}
