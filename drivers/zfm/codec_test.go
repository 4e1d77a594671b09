package zfm_test

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/drivers/zfm"
)

// vectors are the test vectors of the protocol notes (docs/fingerprint-zfm.md).
var vectors = []struct {
	name string
	p    zfm.Packet
	wire string
}{
	{"VfyPwd(0)", cmd(0x13, 0, 0, 0, 0), "EF 01 FF FF FF FF 01 00 07 13 00 00 00 00 00 1B"},
	{"GenImg", cmd(0x01), "EF 01 FF FF FF FF 01 00 03 01 00 05"},
	{"Img2Tz(buffer 1)", cmd(0x02, 1), "EF 01 FF FF FF FF 01 00 04 02 01 00 08"},
	{"Search(1, 0, 200)", cmd(0x04, 1, 0, 0, 0, 200), "EF 01 FF FF FF FF 01 00 08 04 01 00 00 00 C8 00 D6"},
	{"Store(1, page 5)", cmd(0x06, 1, 0, 5), "EF 01 FF FF FF FF 01 00 06 06 01 00 05 00 13"},
	{"UpChar(1)", cmd(0x08, 1), "EF 01 FF FF FF FF 01 00 04 08 01 00 0E"},
	{"ReadSysPara", cmd(0x0F), "EF 01 FF FF FF FF 01 00 03 0F 00 13"},
	{"TemplateNum", cmd(0x1D), "EF 01 FF FF FF FF 01 00 03 1D 00 21"},
	{"HandShake", cmd(0x40), "EF 01 FF FF FF FF 01 00 03 40 00 44"},
	{"GetRandomCode", cmd(0x14), "EF 01 FF FF FF FF 01 00 03 14 00 18"},
	{"UpImage", cmd(0x0A), "EF 01 FF FF FF FF 01 00 03 0A 00 0E"},
	{"ack packet error", ack(0x01), "EF 01 FF FF FF FF 07 00 03 01 00 0B"},
	{"ack OK", ack(0x00), "EF 01 FF FF FF FF 07 00 03 00 00 0A"},
	{"ack no finger", ack(0x02), "EF 01 FF FF FF FF 07 00 03 02 00 0C"},
	{"ack search hit", ack(0x00, 0, 5, 0, 100), "EF 01 FF FF FF FF 07 00 07 00 00 05 00 64 00 77"},
	{"ack count = 3", ack(0x00, 0, 3), "EF 01 FF FF FF FF 07 00 05 00 00 03 00 0F"},
}

func cmd(b ...byte) zfm.Packet {
	return zfm.Packet{Address: zfm.DefaultAddress, PID: zfm.PIDCommand, Payload: b}
}

func ack(b ...byte) zfm.Packet {
	return zfm.Packet{Address: zfm.DefaultAddress, PID: zfm.PIDAck, Payload: b}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestEncodeVectors(t *testing.T) {
	for _, v := range vectors {
		got, err := zfm.Encode(v.p)
		if err != nil {
			t.Fatalf("%s: Encode: %v", v.name, err)
		}
		if want := unhex(t, v.wire); !bytes.Equal(got, want) {
			t.Errorf("%s: got % X, want % X", v.name, got, want)
		}
	}
}

func TestDecodeVectors(t *testing.T) {
	for _, v := range vectors {
		d := zfm.NewDecoder(zfm.DefaultAddress)
		d.Write(unhex(t, v.wire))
		got, ok := d.Next()
		if !ok {
			t.Fatalf("%s: no packet decoded (stats %+v)", v.name, d.Stats())
		}
		if got.Address != v.p.Address || got.PID != v.p.PID || !bytes.Equal(got.Payload, v.p.Payload) {
			t.Errorf("%s: got %+v, want %+v", v.name, got, v.p)
		}
		if _, more := d.Next(); more || d.Buffered() != 0 || d.Stats().Dropped() != 0 {
			t.Errorf("%s: got more=%v buffered=%d dropped=%d, want nothing left", v.name, more, d.Buffered(), d.Stats().Dropped())
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, p := range []zfm.Packet{
		{PID: zfm.PIDCommand},
		{PID: zfm.PIDData, Payload: make([]byte, zfm.MaxPayload+1)},
		{PID: 0x05, Payload: []byte{1}},
	} {
		if _, err := zfm.Encode(p); err == nil {
			t.Errorf("Encode(pid %v, %d bytes): got no error, want one", p.PID, len(p.Payload))
		}
	}
}

func TestDecoderResync(t *testing.T) {
	hit := "EF 01 FF FF FF FF 07 00 07 00 00 05 00 64 00 77"
	ok := "EF 01 FF FF FF FF 07 00 03 00 00 0A"
	cases := []struct {
		name  string
		wire  string
		want  int // packets decoded
		check func(zfm.DecoderStats) bool
	}{
		{"power-up 0x55", "55 " + hit, 1, func(s zfm.DecoderStats) bool { return s.GarbageRuns == 1 && s.GarbageBytes == 1 }},
		{"garbage around", "00 EF 13 EF " + hit + " 01 EF EF 02 " + ok, 2, func(s zfm.DecoderStats) bool { return s.GarbageRuns == 2 && s.GarbageBytes == 8 }},
		{"truncated packet", "EF 01 FF FF FF FF 07 00 07 00 " + hit, 1, func(s zfm.DecoderStats) bool { return s.BadChecksum == 1 }},
		{"bad checksum", "EF 01 FF FF FF FF 07 00 03 00 00 0B " + ok, 1, func(s zfm.DecoderStats) bool { return s.BadChecksum == 1 }},
		{"wrong address", "EF 01 12 34 56 78 07 00 03 00 00 0A " + ok, 1, func(s zfm.DecoderStats) bool { return s.WrongAddress == 1 }},
		{"unknown packet id", "EF 01 FF FF FF FF 05 00 03 00 00 08 " + ok, 1, func(s zfm.DecoderStats) bool { return s.UnknownPID == 1 }},
		{"length too long", "EF 01 FF FF FF FF 07 01 03 00 " + ok, 1, func(s zfm.DecoderStats) bool { return s.BadLength == 1 }},
		{"length too short", "EF 01 FF FF FF FF 07 00 02 00 09 " + ok, 1, func(s zfm.DecoderStats) bool { return s.BadLength == 1 }},
		{"header split at end", hit + " EF", 1, func(s zfm.DecoderStats) bool { return s.Dropped() == 0 }},
	}
	for _, c := range cases {
		wire := unhex(t, c.wire)
		for _, split := range []string{"whole", "bytewise"} {
			d := zfm.NewDecoder(zfm.DefaultAddress)
			var got []zfm.Packet
			feed := func(b []byte) {
				d.Write(b)
				for p, ok := d.Next(); ok; p, ok = d.Next() {
					got = append(got, p)
				}
			}
			if split == "whole" {
				feed(wire)
			} else {
				for i := range wire {
					feed(wire[i : i+1])
				}
			}
			if len(got) != c.want {
				t.Errorf("%s (%s): got %d packets, want %d (stats %+v)", c.name, split, len(got), c.want, d.Stats())
				continue
			}
			if !c.check(d.Stats()) {
				t.Errorf("%s (%s): got stats %+v, not what the case expects", c.name, split, d.Stats())
			}
			for _, p := range got {
				if p.PID != zfm.PIDAck || p.Payload[0] != 0 {
					t.Errorf("%s (%s): got packet %+v, want an OK ack", c.name, split, p)
				}
			}
		}
	}
}

// OnBadChecksum reports each frame dropped for its checksum, with its packet id, in stream order
// and only those: not garbage, not frames for another address.
func TestDecoderOnBadChecksum(t *testing.T) {
	ok := "EF 01 FF FF FF FF 07 00 03 00 00 0A"
	wire := unhex(t, "55 "+ok+
		" EF 01 FF FF FF FF 01 00 03 01 00 06"+ // GenImg with its checksum off by one
		" EF 01 12 34 56 78 01 00 03 01 00 06"+ // another address
		" "+ok+
		" EF 01 FF FF FF FF 02 00 05 01 02 03 00 0E"+ // a data packet, checksum off by one
		" "+ok)
	for _, step := range []int{len(wire), 1, 5} {
		d := zfm.NewDecoder(zfm.DefaultAddress)
		var events []string
		d.OnBadChecksum(func(pid zfm.PID) { events = append(events, "bad "+pid.String()) })
		for off := 0; off < len(wire); off += step {
			d.Write(wire[off:min(off+step, len(wire))])
			for p, ok := d.Next(); ok; p, ok = d.Next() {
				events = append(events, p.PID.String())
			}
		}
		want := []string{"ack", "bad command", "ack", "bad data", "ack"}
		if !slices.Equal(events, want) {
			t.Errorf("fed in %d-byte pieces: got %q, want %q", step, events, want)
		}
	}
}

func TestDecoderReset(t *testing.T) {
	d := zfm.NewDecoder(zfm.DefaultAddress)
	d.Write(unhex(t, "EF 01 FF FF FF FF 07 00"))
	if _, ok := d.Next(); ok {
		t.Fatal("got a packet from 8 bytes, want none")
	}
	if n := d.Reset(); n != 8 {
		t.Errorf("Reset: got %d bytes discarded, want 8", n)
	}
	d.Write(unhex(t, "EF 01 FF FF FF FF 07 00 03 00 00 0A"))
	if _, ok := d.Next(); !ok {
		t.Errorf("after Reset: got no packet, want the OK ack")
	}
}

// FuzzDecoder checks that the decoder never panics, that what it returns is exactly a frame of
// the input, and that splitting the input differently changes nothing.
func FuzzDecoder(f *testing.F) {
	for _, v := range vectors {
		f.Add(unhex(f, v.wire), uint8(3))
	}
	f.Add(unhex(f, "55 EF 01 FF FF FF FF 07 00 03 00 00 0A"), uint8(1))
	f.Add(unhex(f, "EF 01 FF FF FF FF 07 00 07 00 EF 01 FF FF FF FF 07 00 03 00 00 0A"), uint8(7))
	f.Add(unhex(f, "EF 01 FF FF FF FF 02 00 05 01 02 03 00 0D EF 01 FF FF FF FF 08 00 03 AA 00 B5"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		var wantBad, gotBad []zfm.PID
		whole := zfm.NewDecoder(zfm.DefaultAddress)
		whole.OnBadChecksum(func(pid zfm.PID) { wantBad = append(wantBad, pid) })
		whole.Write(data)
		var want []zfm.Packet
		for p, ok := whole.Next(); ok; p, ok = whole.Next() {
			want = append(want, p)
		}
		for _, p := range want {
			b, err := zfm.Encode(p)
			if err != nil {
				t.Fatalf("decoded packet %+v does not encode: %v", p, err)
			}
			if !bytes.Contains(data, b) {
				t.Fatalf("decoded packet % X is not in the input", b)
			}
		}
		n := int(step%16) + 1
		pieces := zfm.NewDecoder(zfm.DefaultAddress)
		pieces.OnBadChecksum(func(pid zfm.PID) { gotBad = append(gotBad, pid) })
		var got []zfm.Packet
		for off := 0; off < len(data); off += n {
			pieces.Write(data[off:min(off+n, len(data))])
			for p, ok := pieces.Next(); ok; p, ok = pieces.Next() {
				got = append(got, p)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("fed in %d-byte pieces: got %d packets, want %d", n, len(got), len(want))
		}
		for i := range got {
			if got[i].PID != want[i].PID || !bytes.Equal(got[i].Payload, want[i].Payload) {
				t.Fatalf("packet %d fed in %d-byte pieces: got %+v, want %+v", i, n, got[i], want[i])
			}
		}
		if gs, ws := pieces.Stats(), whole.Stats(); gs != ws {
			t.Fatalf("stats fed in %d-byte pieces: got %+v, want %+v", n, gs, ws)
		}
		if !slices.Equal(gotBad, wantBad) || uint64(len(wantBad)) != whole.Stats().BadChecksum {
			t.Fatalf("bad checksums reported fed in %d-byte pieces: got %v, whole %v, want %d of them", n, gotBad, wantBad, whole.Stats().BadChecksum)
		}
		if whole.Buffered() > 266 {
			t.Fatalf("decoder holds %d bytes, want at most one packet", whole.Buffered())
		}
	})
}
