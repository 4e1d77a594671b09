package zfm_test

import (
	"context"
	"io"
	"testing"

	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

// BenchmarkIdentify is one identification as the Reader does it (GenImg, Img2Tz, HiSpeedSearch
// over 200 pages, in one Do) against the emulator answering at once, over a pty opened with
// tarm/serial. Compare with BenchmarkBareRoundTrip, the same bytes with no driver or emulator
// logic: the difference is what the codec, the owner goroutine and the emulator cost.
func BenchmarkIdentify(b *testing.B) {
	e, link := startEmuB(b, emu.Config{Preload: []string{"T001/right-index"}})
	m := openModule(b, link)
	e.Place("T001/right-index")
	ctx := context.Background()
	identify := func(s *zfm.Session) error {
		if err := s.GenImg(ctx); err != nil {
			return err
		}
		if err := s.Img2Tz(ctx, zfm.Buffer1); err != nil {
			return err
		}
		hit, err := s.Search(ctx, zfm.Buffer1, 0, 200)
		if err == nil && hit.Page != 0 {
			b.Fatalf("got page %d, want 0", hit.Page)
		}
		return err
	}
	if err := m.Do(ctx, identify); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := m.Do(ctx, identify); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareRoundTrip writes the three commands of an identification and reads the three
// replies, as raw bytes, over the same kind of pty: a peer goroutine answers each request with a
// canned reply.
func BenchmarkBareRoundTrip(b *testing.B) {
	exchanges := []struct{ req, rep []byte }{
		{unhex(b, "EF 01 FF FF FF FF 01 00 03 01 00 05"), unhex(b, "EF 01 FF FF FF FF 07 00 03 00 00 0A")},
		{unhex(b, "EF 01 FF FF FF FF 01 00 04 02 01 00 08"), unhex(b, "EF 01 FF FF FF FF 07 00 03 00 00 0A")},
		{unhex(b, "EF 01 FF FF FF FF 01 00 08 1B 01 00 00 00 C8 00 ED"), unhex(b, "EF 01 FF FF FF FF 07 00 07 00 00 00 00 64 00 72")},
	}
	master, slave := openPty(b)
	go func() {
		buf := make([]byte, 64)
		for {
			for _, x := range exchanges {
				if _, err := io.ReadFull(master, buf[:len(x.req)]); err != nil {
					return
				}
				if _, err := master.Write(x.rep); err != nil {
					return
				}
			}
		}
	}()
	port, err := serialport.Open(serialport.Config{Path: slave.Name(), Baud: 57600})
	if err != nil {
		b.Fatal(err)
	}
	defer port.Close()
	buf := make([]byte, 64)
	roundTrip := func() {
		for _, x := range exchanges {
			if _, err := port.Write(x.req); err != nil {
				b.Fatal(err)
			}
			for got := 0; got < len(x.rep); {
				n, err := port.Read(buf[got:len(x.rep)])
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
		}
	}
	roundTrip()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		roundTrip()
	}
}

func startEmuB(b *testing.B, cfg emu.Config) (*emu.Emulator, string) {
	b.Helper()
	link := b.TempDir() + "/ttyZFM"
	e := emu.New(cfg)
	if err := e.Start(link); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e, link
}
