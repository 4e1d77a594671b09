package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// Every decoder either refuses a payload with ErrVersion or ErrMalformed (or ErrSignature), or
// returns a value that passes its own Check and survives a round trip unchanged. The seed corpus
// is in testdata/fuzz/<FuzzName>; `go test -fuzz FuzzDecodeBatch ./sync/wire` explores further.

func refused(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrSignature) {
		t.Fatalf("refusal does not wrap a wire error: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	recs := testRecords(f, 2)
	good, _ := (&Batch{Device: "d", Epoch: 7, FirstSeq: 1, LastSeq: 2, Events: recs}).Encode()
	f.Add(good)
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := DecodeBatch(p)
		// The fast path and the general decoder agree.
		var slow Batch
		slowErr := decode(p, &slow)
		if slowErr == nil {
			slowErr = slow.Check()
		}
		if (err == nil) != (slowErr == nil) {
			t.Fatalf("fast path: %v, general decoder: %v", err, slowErr)
		}
		if err == nil && !reflect.DeepEqual(b, &slow) {
			t.Fatalf("fast path %+v, general decoder %+v", b, &slow)
		}
		if err != nil {
			refused(t, err)
			return
		}
		q, err := b.Encode()
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
		b2, err := DecodeBatch(q)
		if err != nil || !reflect.DeepEqual(b, b2) {
			t.Fatalf("round trip: %+v, %v", b2, err)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	s, _ := (&State{Device: "d", Online: true, Epoch: 3, HeadSeq: 9, AckedThrough: 4, Backlog: 5,
		DatasetVersions: map[string]uint64{"roster": 2}, Clock: &Clock{Wall: time.Unix(1, 0).UTC()}}).Encode()
	f.Add(s)
	_, sk := testKey()
	signed := &State{Device: "d", Online: true, Epoch: 3, HeadSeq: 9, AckedThrough: 4, Backlog: 5}
	signed.SignHead([32]byte{9}, sk)
	s, _ = signed.Encode()
	f.Add(s)
	f.Fuzz(func(t *testing.T, p []byte) {
		st, err := DecodeState(p)
		if err != nil {
			refused(t, err)
			return
		}
		q, err := st.Encode()
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		if _, err := DecodeState(q); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	pub, sk := testKey()
	seed, err := SealAck(&Ack{Device: "jn-0001-r101", Epoch: 9, AckedThrough: 100, Hash: SHA256Hex(nil), Time: time.Unix(5, 0).UTC()}, sk)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"v":1,"epoch":9,"acked_through":100}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := DecodeAck(p, pub)
		if err != nil {
			refused(t, err)
			return
		}
		q, err := SealAck(a, sk)
		if err != nil {
			t.Fatalf("decoded ack does not seal: %v", err)
		}
		a2, err := DecodeAck(q, pub)
		if err != nil || a2.Epoch != a.Epoch || a2.AckedThrough != a.AckedThrough || a2.Hash != a.Hash || !a2.Time.Equal(a.Time) {
			t.Fatalf("round trip: got %+v, %v; want %+v", a2, err, a)
		}
	})
}

func FuzzDecodeApplied(f *testing.F) {
	f.Add([]byte(`{"v":1,"dataset":"roster","version":3,"sha256":"` + SHA256Hex(nil) + `","status":"applied"}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := DecodeApplied(p)
		if err != nil {
			refused(t, err)
			return
		}
		q, err := a.Encode()
		if err != nil {
			t.Fatalf("decoded applied does not encode: %v", err)
		}
		if a2, err := DecodeApplied(q); err != nil || *a2 != *a {
			t.Fatalf("round trip: %+v, %v", a2, err)
		}
	})
}

func FuzzDecodeData(f *testing.F) {
	pub, sk := testKey()
	m, chunks, _ := Split("roster", 3, "d", []byte(`{"version":3}`), 8, time.Unix(1, 0).UTC())
	mp, _ := SealManifest(m, sk)
	cp, _ := chunks[0].Encode()
	f.Add(mp)
	f.Add(cp)
	f.Fuzz(func(t *testing.T, p []byte) {
		d, err := DecodeData(p)
		if err != nil {
			refused(t, err)
			return
		}
		if (d.Manifest == nil) == (d.Chunk == nil) {
			t.Fatalf("DecodeData set %v manifest and %v chunk", d.Manifest != nil, d.Chunk != nil)
		}
		if d.Chunk != nil {
			if _, err := d.Chunk.Encode(); err != nil {
				t.Fatalf("decoded chunk does not encode: %v", err)
			}
			return
		}
		if _, err := OpenManifest(d.Manifest, pub); err != nil {
			refused(t, err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	m, _, _ := Split("roster", 3, "d", []byte(`{"version":3}`), 8, time.Unix(1, 0).UTC())
	m.V = Version
	body, _ := json.Marshal(m)
	f.Add(body)
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := parseManifest(p)
		if err != nil {
			refused(t, err)
			return
		}
		_, sk := testKey()
		if _, err := SealManifest(m, sk); err != nil {
			t.Fatalf("decoded manifest does not seal: %v", err)
		}
	})
}

func FuzzDecodeCommand(f *testing.F) {
	pub, sk := testKey()
	c, _ := SealCommand(&Command{ID: 5, Device: "d", Issued: time.Unix(1, 0).UTC(), Cmd: CmdResync, Epoch: 3, FromSeq: 9}, sk)
	f.Add(c)
	f.Fuzz(func(t *testing.T, p []byte) {
		if _, err := DecodeCommand(p, pub); err != nil {
			refused(t, err)
		}
	})
}

func FuzzParseCommand(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":5,"device":"d","issued":"2026-11-27T08:30:00+08:00","cmd":"resync","epoch":3,"from_seq":9}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := parseCommand(p)
		if err != nil {
			refused(t, err)
			return
		}
		_, sk := testKey()
		if _, err := SealCommand(c, sk); err != nil {
			t.Fatalf("decoded command does not seal: %v", err)
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	f.Add("kaoqin/v1/0001/jn-0001-r101/down/data/roster")
	f.Add("kaoqin/v1/0001/jn-0001-r101/up/events")
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTopic(s)
		if err != nil {
			refused(t, err)
			return
		}
		if tp.String() != s {
			t.Fatalf("ParseTopic(%q).String() = %q", s, tp.String())
		}
	})
}

func FuzzDecodeEvidenceAck(f *testing.F) {
	f.Add([]byte(`{"v":1,"sha256":"abababababababababababababababababababababababababababababababab"}`))
	f.Add([]byte(`{"v":1,"sha256":"AB"}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := DecodeEvidenceAck(p)
		if err != nil {
			refused(t, err)
			return
		}
		q, err := a.Encode()
		if err != nil {
			t.Fatalf("decoded evidence ack does not encode: %v", err)
		}
		if a2, err := DecodeEvidenceAck(q); err != nil || *a2 != *a {
			t.Fatalf("round trip: %+v, %v", a2, err)
		}
	})
}
