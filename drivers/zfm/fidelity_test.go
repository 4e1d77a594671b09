package zfm_test

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

// A module that received a command corrupt answers 0x01. On a bare pty, the test plays that
// module: the driver must send the very same bytes again, take only the answer to the resend,
// and give up with ErrPacket after two resends.
func TestModuleResendsOnPacketError(t *testing.T) {
	t.Parallel()
	master, slave := openPty(t)
	m := openModule(t, slave.Name())
	ctx := ctxFor(t, 10*time.Second)
	read := func(want string) {
		t.Helper()
		w := unhex(t, want)
		got := make([]byte, len(w))
		master.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(master, got); err != nil || !bytes.Equal(got, w) {
			t.Fatalf("command on the wire: got % X, %v, want % X", got, err, w)
		}
	}
	write := func(wire string) {
		t.Helper()
		if _, err := master.Write(unhex(t, wire)); err != nil {
			t.Fatal(err)
		}
	}
	const (
		templateNum = "EF 01 FF FF FF FF 01 00 03 1D 00 21"
		ackPacket   = "EF 01 FF FF FF FF 07 00 03 01 00 0B"
		ackCount7   = "EF 01 FF FF FF FF 07 00 05 00 00 07 00 13"
	)
	type result struct {
		n   int
		err error
	}
	run := func() chan result {
		c := make(chan result, 1)
		go func() {
			n, err := m.TemplateNum(ctx)
			c <- result{n, err}
		}()
		return c
	}

	c := run()
	read(templateNum)
	write(ackPacket)
	read(templateNum) // the same command again
	write(ackCount7)
	if r := <-c; r.err != nil || r.n != 7 {
		t.Errorf("TemplateNum answered 0x01 then 7: got %d, %v, want 7 from the resend", r.n, r.err)
	}
	if s := m.Stats(); s.Resent != 1 || s.Commands != 2 {
		t.Errorf("got %d resent of %d commands, want 1 of 2", s.Resent, s.Commands)
	}

	c = run()
	for range 3 {
		read(templateNum)
		write(ackPacket)
	}
	r := <-c
	var ce *zfm.CodeError
	if !errors.Is(r.err, zfm.ErrPacket) || !errors.As(r.err, &ce) || ce.Code != zfm.CodePacket || r.n != 0 {
		t.Errorf("TemplateNum answered 0x01 three times: got %d, %v, want ErrPacket (code 0x01)", r.n, r.err)
	}
	if s := m.Stats(); s.Resent != 3 || s.Commands != 5 {
		t.Errorf("got %d resent of %d commands, want 3 of 5 (two resends, then give up)", s.Resent, s.Commands)
	}
	// The line is in step: the next command gets its own answer.
	c = run()
	read(templateNum)
	write(ackCount7)
	if r := <-c; r.err != nil || r.n != 7 {
		t.Errorf("TemplateNum after giving up: got %d, %v, want 7", r.n, r.err)
	}
}

// corruptingPort is a serial line that damages the checksum of the next commands of one
// instruction on their way to the module, as noise on the wire would.
type corruptingPort struct {
	*serialport.Port
	mu    sync.Mutex
	instr zfm.Instr
	left  int // commands still to corrupt
}

func (p *corruptingPort) corrupt(in zfm.Instr, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.instr, p.left = in, n
}

func (p *corruptingPort) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.left > 0 && len(b) > 9 && b[6] == byte(zfm.PIDCommand) && b[9] == byte(p.instr) {
		p.left--
		b = bytes.Clone(b)
		b[len(b)-1] ^= 0x10
	}
	p.mu.Unlock()
	return p.Port.Write(b)
}

func corruptingModule(t *testing.T, link string) (*zfm.Module, *corruptingPort) {
	t.Helper()
	port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
	if err != nil {
		t.Fatal(err)
	}
	cp := &corruptingPort{Port: port}
	m := zfm.NewModule(cp, zfm.DefaultAddress, quiet)
	t.Cleanup(func() {
		m.Close()
		port.Close()
	})
	return m, cp
}

// The emulator sees a real bad checksum and answers 0x01 without running the command; the driver
// sends it again and gets the real result. A Search hit through a corrupted HiSpeedSearch is the
// right page, and the corruption does not make the driver believe the module lacks HiSpeedSearch.
func TestCorruptCommandOnTheWire(t *testing.T) {
	t.Parallel()
	cnt := newCounter()
	e, link := startEmu(t, emu.Config{Preload: []string{"T009/x", "T001/right-index"}, OnPacket: cnt.hook})
	m, cp := corruptingModule(t, link)
	ctx := ctxFor(t, 10*time.Second)

	e.Place("T001/right-index")
	if err := m.GenImg(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Img2Tz(ctx, zfm.Buffer1); err != nil {
		t.Fatal(err)
	}
	cp.corrupt(zfm.InstrHiSpeedSearch, 1)
	hit, err := m.Search(ctx, zfm.Buffer1, 0, 200)
	if err != nil || hit.Page != 1 {
		t.Fatalf("Search with HiSpeedSearch corrupted once: got %+v, %v, want page 1", hit, err)
	}
	s := m.Stats()
	if s.Resent != 1 || s.HiSpeedSearch != zfm.Supported {
		t.Errorf("got %d resent, HiSpeedSearch %v, want 1 resent and HiSpeedSearch supported", s.Resent, s.HiSpeedSearch)
	}
	if n, nSearch := cnt.count(zfm.InstrHiSpeedSearch), cnt.count(zfm.InstrSearch); n != 1 || nSearch != 0 {
		t.Errorf("the module ran HiSpeedSearch %d times and Search %d times, want 1 and 0 (the corrupt one not run)", n, nSearch)
	}

	// A corrupted Empty is not run: the library survives until the resend is.
	cp.corrupt(zfm.InstrEmpty, 3)
	if err := m.Empty(ctx); !errors.Is(err, zfm.ErrPacket) {
		t.Errorf("Empty corrupted three times: got %v, want ErrPacket", err)
	}
	if lib := e.Library(); len(lib) != 2 {
		t.Errorf("library after three corrupt Empty commands: got %d pages, want 2 (none run)", len(lib))
	}
	if n, err := m.TemplateNum(ctx); err != nil || n != 2 {
		t.Errorf("TemplateNum after: got %d, %v, want 2, in step", n, err)
	}
}

// The emulator answers a corrupt command with exactly the acknowledgement of the protocol notes.
func TestEmulatorAnswersCorruptCommand(t *testing.T) {
	t.Parallel()
	_, link := startEmu(t, emu.Config{})
	port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	if _, err := port.Write(unhex(t, "EF 01 FF FF FF FF 01 00 03 1D 00 22")); err != nil { // TemplateNum, checksum +1
		t.Fatal(err)
	}
	want := unhex(t, "EF 01 FF FF FF FF 07 00 03 01 00 0B")
	var got []byte
	buf := make([]byte, 64)
	for tries := 0; len(got) < len(want) && tries < 30; tries++ {
		n, err := port.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("answer to a corrupt command: got % X, want % X", got, want)
	}
}

func TestGetRandomCode(t *testing.T) {
	t.Parallel()
	_, link := startEmu(t, emu.Config{})
	m := openModule(t, link)
	ctx := ctxFor(t, 5*time.Second)
	seen := map[uint32]bool{}
	for range 4 {
		n, err := m.GetRandomCode(ctx)
		if err != nil {
			t.Fatalf("GetRandomCode: %v", err)
		}
		seen[n] = true
	}
	if len(seen) < 3 {
		t.Errorf("four GetRandomCode: got %d distinct values %v, want random ones", len(seen), seen)
	}
}

// UpImage streams the 256x288 image of the last capture in data packets of the configured size,
// ending with an end packet; before any capture the image is white.
func TestUpImage(t *testing.T) {
	t.Parallel()
	cnt := newCounter()
	e, link := startEmu(t, emu.Config{OnPacket: cnt.hook})
	m := openModule(t, link)
	ctx := ctxFor(t, 20*time.Second)

	blank, err := m.UpImage(ctx)
	if err != nil || !bytes.Equal(blank, emu.Image("")) || len(blank) != 36864 {
		t.Fatalf("UpImage before a capture: got %d bytes, %v, want the 36864-byte white image", len(blank), err)
	}
	e.Place("T001/right-index")
	if err := m.GenImg(ctx); err != nil {
		t.Fatal(err)
	}
	for code, size := range []int{32, 64, 128, 256} {
		if err := m.SetSysPara(ctx, zfm.RegPacketSize, uint8(code)); err != nil {
			t.Fatal(err)
		}
		cnt.reset()
		img, err := m.UpImage(ctx)
		if err != nil || !bytes.Equal(img, emu.Image("T001/right-index")) {
			t.Fatalf("UpImage in %d-byte packets: got %d bytes, %v, want the finger's image", size, len(img), err)
		}
		_, out := cnt.data()
		if len(out) != 36864/size {
			t.Errorf("UpImage in %d-byte packets: got %d data packets, want %d", size, len(out), 36864/size)
			continue
		}
		for i, p := range out {
			wantPID := zfm.PIDData
			if i == len(out)-1 {
				wantPID = zfm.PIDEndData
			}
			if p.PID != wantPID || len(p.Payload) != size {
				t.Errorf("packet %d of %d: got %v of %d bytes, want %v of %d", i, len(out), p.PID, len(p.Payload), wantPID, size)
				break
			}
		}
	}
	if bytes.Equal(emu.Image("T001/right-index"), emu.Image("T002/right-index")) || bytes.Equal(emu.Image("T001/right-index"), blank) {
		t.Errorf("two fingers, or a finger and nothing, give the same image; want different ones")
	}
}

// At a slow line the transfer takes longer than one command timeout: the acknowledgement comes
// first, at once, and each data packet in its own time.
func TestUpImageSlowLine(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{Latency: emu.Latency{Reply: 5 * time.Millisecond, Byte: 40 * time.Microsecond}})
	m := openModule(t, link)
	e.Place("T001/right-index")
	ctx := ctxFor(t, 20*time.Second)
	if err := m.GenImg(ctx); err != nil {
		t.Fatal(err)
	}
	img, err := m.UpImage(ctx)
	if err != nil || !bytes.Equal(img, emu.Image("T001/right-index")) {
		t.Errorf("UpImage over 1.5 s of line time: got %d bytes, %v, want the finger's image", len(img), err)
	}
}
