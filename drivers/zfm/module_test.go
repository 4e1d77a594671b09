package zfm_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/internal/ptydev"
	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

func encode(t testing.TB, p zfm.Packet) []byte {
	t.Helper()
	b, err := zfm.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openPty opens a pseudo-terminal whose master side takes read deadlines, for a test that plays
// the module itself.
func openPty(t testing.TB) (master, slave *os.File) {
	t.Helper()
	p, err := ptydev.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.Master, p.Slave
}

// TestModuleWireVectors drives a Module over a bare pty and checks the bytes it writes against the
// test vectors of the protocol notes, answering with the vectors' acknowledgements.
func TestModuleWireVectors(t *testing.T) {
	t.Parallel()
	master, slave := openPty(t)
	m := openModule(t, slave.Name())
	ctx := ctxFor(t, 10*time.Second)

	// expect reads what the module wrote and compares it with want, then writes reply.
	expect := func(name, want string, reply []byte) {
		t.Helper()
		w := unhex(t, want)
		got := make([]byte, len(w))
		if err := master.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(master, got); err != nil {
			t.Fatalf("%s: reading the command: %v", name, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("%s: got % X, want % X", name, got, w)
		}
		if _, err := master.Write(reply); err != nil {
			t.Fatal(err)
		}
	}
	run := func(fn func() error) chan error {
		c := make(chan error, 1)
		go func() { c <- fn() }()
		return c
	}
	ackOK := unhex(t, "EF 01 FF FF FF FF 07 00 03 00 00 0A")

	c := run(func() error { return m.VfyPwd(ctx, 0) })
	expect("VfyPwd(0)", "EF 01 FF FF FF FF 01 00 07 13 00 00 00 00 00 1B", ackOK)
	if err := <-c; err != nil {
		t.Errorf("VfyPwd: got %v, want nil", err)
	}

	c = run(func() error { return m.GenImg(ctx) })
	expect("GenImg", "EF 01 FF FF FF FF 01 00 03 01 00 05", unhex(t, "EF 01 FF FF FF FF 07 00 03 02 00 0C"))
	if err := <-c; !errors.Is(err, zfm.ErrNoFinger) {
		t.Errorf("GenImg: got %v, want ErrNoFinger", err)
	}
	var ce *zfm.CodeError
	c = run(func() error { return m.GenImg(ctx) })
	expect("GenImg", "EF 01 FF FF FF FF 01 00 03 01 00 05", unhex(t, "EF 01 FF FF FF FF 07 00 03 02 00 0C"))
	if err := <-c; !errors.As(err, &ce) || ce.Code != zfm.CodeNoFinger || err.Error() != "zfm: genimg: no finger on the sensor (code 0x02)" {
		t.Errorf("GenImg: got %v, want *CodeError 0x02 reading zfm: genimg: no finger on the sensor (code 0x02)", err)
	}

	c = run(func() error { return m.Img2Tz(ctx, zfm.Buffer1) })
	expect("Img2Tz(1)", "EF 01 FF FF FF FF 01 00 04 02 01 00 08", ackOK)
	if err := <-c; err != nil {
		t.Errorf("Img2Tz: got %v, want nil", err)
	}

	// Search tries HiSpeedSearch first; this module answers "unsupported command".
	var hit zfm.Hit
	c = run(func() (err error) { hit, err = m.Search(ctx, zfm.Buffer1, 0, 200); return err })
	expect("HiSpeedSearch(1, 0, 200)", "EF 01 FF FF FF FF 01 00 08 1B 01 00 00 00 C8 00 ED", unhex(t, "EF 01 FF FF FF FF 07 00 03 FC 01 06"))
	expect("Search(1, 0, 200)", "EF 01 FF FF FF FF 01 00 08 04 01 00 00 00 C8 00 D6", unhex(t, "EF 01 FF FF FF FF 07 00 07 00 00 05 00 64 00 77"))
	if err := <-c; err != nil || hit != (zfm.Hit{Page: 5, Score: 100}) {
		t.Errorf("Search: got %+v, %v, want page 5 score 100", hit, err)
	}
	c = run(func() (err error) { hit, err = m.Search(ctx, zfm.Buffer1, 0, 200); return err })
	expect("Search(1, 0, 200) again", "EF 01 FF FF FF FF 01 00 08 04 01 00 00 00 C8 00 D6", unhex(t, "EF 01 FF FF FF FF 07 00 03 09 00 13"))
	if err := <-c; !errors.Is(err, zfm.ErrNotFound) {
		t.Errorf("Search: got %v, want ErrNotFound", err)
	}

	c = run(func() error { return m.Store(ctx, zfm.Buffer1, 5) })
	expect("Store(1, 5)", "EF 01 FF FF FF FF 01 00 06 06 01 00 05 00 13", ackOK)
	if err := <-c; err != nil {
		t.Errorf("Store: got %v, want nil", err)
	}

	var data []byte
	c = run(func() (err error) { data, err = m.UpChar(ctx, zfm.Buffer1); return err })
	reply := slices.Concat(ackOK,
		encode(t, zfm.Packet{Address: zfm.DefaultAddress, PID: zfm.PIDData, Payload: []byte{1, 2, 3, 4}}),
		encode(t, zfm.Packet{Address: zfm.DefaultAddress, PID: zfm.PIDEndData, Payload: []byte{5, 6, 7, 8}}))
	expect("UpChar(1)", "EF 01 FF FF FF FF 01 00 04 08 01 00 0E", reply)
	if err := <-c; err != nil || !bytes.Equal(data, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("UpChar: got % X, %v, want 01..08", data, err)
	}

	var para zfm.SysPara
	want := zfm.SysPara{Capacity: 300, SecurityLevel: 5, Address: zfm.DefaultAddress, PacketSize: 64, BaudN: 6}
	block, _ := want.MarshalBinary()
	c = run(func() (err error) { para, err = m.ReadSysPara(ctx); return err })
	expect("ReadSysPara", "EF 01 FF FF FF FF 01 00 03 0F 00 13", encode(t, ack(append([]byte{0}, block...)...)))
	if err := <-c; err != nil || para != want {
		t.Errorf("ReadSysPara: got %+v, %v, want %+v", para, err, want)
	}

	var n int
	c = run(func() (err error) { n, err = m.TemplateNum(ctx); return err })
	expect("TemplateNum", "EF 01 FF FF FF FF 01 00 03 1D 00 21", unhex(t, "EF 01 FF FF FF FF 07 00 05 00 00 03 00 0F"))
	if err := <-c; err != nil || n != 3 {
		t.Errorf("TemplateNum: got %d, %v, want 3", n, err)
	}

	c = run(func() error { return m.HandShake(ctx) })
	expect("HandShake", "EF 01 FF FF FF FF 01 00 03 40 00 44", ackOK)
	if err := <-c; err != nil {
		t.Errorf("HandShake: got %v, want nil", err)
	}
}

func TestTransfersChunked(t *testing.T) {
	t.Parallel()
	cnt := newCounter()
	_, link := startEmu(t, emu.Config{OnPacket: cnt.hook})
	m := openModule(t, link)
	ctx := ctxFor(t, 10*time.Second)
	template := emu.Template("T001/right-index")
	for code, size := range []int{32, 64, 128, 256} {
		if err := m.SetSysPara(ctx, zfm.RegPacketSize, uint8(code)); err != nil {
			t.Fatalf("SetSysPara(packet size %d): %v", code, err)
		}
		p, err := m.ReadSysPara(ctx)
		if err != nil || p.PacketSize != size {
			t.Fatalf("ReadSysPara: got packet size %d, %v, want %d", p.PacketSize, err, size)
		}
		cnt.reset()
		if err := m.DownChar(ctx, zfm.Buffer2, template); err != nil {
			t.Fatalf("DownChar at %d: %v", size, err)
		}
		back, err := m.UpChar(ctx, zfm.Buffer2)
		if err != nil || !bytes.Equal(back, template) {
			t.Fatalf("UpChar at %d: got %d bytes, %v, want the %d bytes sent", size, len(back), err, len(template))
		}
		in, out := cnt.data()
		for dir, pkts := range map[string][]zfm.Packet{"host to module": in, "module to host": out} {
			if len(pkts) != len(template)/size {
				t.Errorf("packet size %d, %s: got %d data packets, want %d", size, dir, len(pkts), len(template)/size)
				continue
			}
			for i, p := range pkts {
				wantPID := zfm.PIDData
				if i == len(pkts)-1 {
					wantPID = zfm.PIDEndData
				}
				if len(p.Payload) != size || p.PID != wantPID {
					t.Errorf("packet size %d, %s, packet %d: got %d bytes id %v, want %d bytes id %v", size, dir, i, len(p.Payload), p.PID, size, wantPID)
				}
			}
		}
	}
	if err := m.DownChar(ctx, zfm.Buffer1, make([]byte, 500)); err == nil {
		t.Errorf("DownChar of 500 bytes in 256-byte packets: got nil, want an error")
	}
}

func TestModuleFaults(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*emu.Emulator, *zfm.Module, context.Context) {
		e, link := startEmu(t, emu.Config{Preload: []string{"T001/right-index"}})
		return e, openModule(t, link), ctxFor(t, 10*time.Second)
	}
	t.Run("dropped reply", func(t *testing.T) {
		t.Parallel()
		e, m, ctx := setup(t)
		e.Inject(emu.Fault{Kind: emu.FaultDrop, Instr: zfm.InstrGenImg})
		start := time.Now()
		err := m.GenImg(ctx)
		if took := time.Since(start); !errors.Is(err, zfm.ErrTimeout) || took < time.Second || took > 1500*time.Millisecond {
			t.Errorf("GenImg with its reply dropped: got %v after %v, want ErrTimeout after 1s", err, took)
		}
		if err := m.GenImg(ctx); !errors.Is(err, zfm.ErrNoFinger) {
			t.Errorf("GenImg after the timeout: got %v, want ErrNoFinger (recovered)", err)
		}
		if s := m.Stats(); s.Timeouts != 1 {
			t.Errorf("got %d timeouts, want 1", s.Timeouts)
		}
	})
	t.Run("bad checksum", func(t *testing.T) {
		t.Parallel()
		e, m, ctx := setup(t)
		e.Inject(emu.Fault{Kind: emu.FaultBadChecksum, Instr: zfm.InstrTemplateNum})
		if _, err := m.TemplateNum(ctx); !errors.Is(err, zfm.ErrTimeout) {
			t.Errorf("TemplateNum with a bad checksum: got %v, want ErrTimeout", err)
		}
		if s := m.Stats(); s.Dropped == 0 {
			t.Errorf("got %d dropped, want the corrupt packet counted", s.Dropped)
		}
		if n, err := m.TemplateNum(ctx); err != nil || n != 1 {
			t.Errorf("TemplateNum after: got %d, %v, want 1", n, err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		t.Parallel()
		e, m, ctx := setup(t)
		e.Inject(emu.Fault{Kind: emu.FaultGarbage, Instr: zfm.InstrTemplateNum})
		if n, err := m.TemplateNum(ctx); err != nil || n != 1 {
			t.Errorf("TemplateNum after garbage: got %d, %v, want 1", n, err)
		}
		if s := m.Stats(); s.Dropped < 2 {
			t.Errorf("got %d dropped, want the garbage and the bad frames counted", s.Dropped)
		}
	})
	t.Run("split", func(t *testing.T) {
		t.Parallel()
		e, m, ctx := setup(t)
		e.Inject(emu.Fault{Kind: emu.FaultSplit, Instr: zfm.InstrUpChar})
		if err := m.LoadChar(ctx, zfm.Buffer1, 0); err != nil {
			t.Fatalf("LoadChar: %v", err)
		}
		data, err := m.UpChar(ctx, zfm.Buffer1)
		if err != nil || !bytes.Equal(data, emu.Template("T001/right-index")) {
			t.Errorf("UpChar one byte at a time: got %d bytes, %v, want the template", len(data), err)
		}
	})
	t.Run("hang-up during UpChar", func(t *testing.T) {
		t.Parallel()
		e, m, ctx := setup(t)
		e.Inject(emu.Fault{Kind: emu.FaultHangUp, Instr: zfm.InstrUpChar})
		if err := m.LoadChar(ctx, zfm.Buffer1, 0); err != nil {
			t.Fatalf("LoadChar: %v", err)
		}
		start := time.Now()
		data, err := m.UpChar(ctx, zfm.Buffer1)
		if !errors.Is(err, serialport.ErrHangup) || data != nil || time.Since(start) > 500*time.Millisecond {
			t.Errorf("UpChar cut by a hang-up: got %d bytes, %v after %v, want ErrHangup at once", len(data), err, time.Since(start))
		}
		if err := m.GenImg(ctx); !errors.Is(err, serialport.ErrHangup) {
			t.Errorf("GenImg after the hang-up: got %v, want ErrHangup", err)
		}
	})
	t.Run("hang-up during DownChar", func(t *testing.T) {
		t.Parallel()
		e, m, ctx := setup(t)
		e.Inject(emu.Fault{Kind: emu.FaultHangUp, Instr: zfm.InstrDownChar})
		err := m.DownChar(ctx, zfm.Buffer1, emu.Template("T002/x"))
		if err == nil {
			// The data may be in the line before it goes: then the next command finds out.
			err = m.GenImg(ctx)
		}
		if !errors.Is(err, serialport.ErrHangup) {
			t.Errorf("DownChar cut by a hang-up: got %v, want ErrHangup", err)
		}
	})
}

func TestModuleCloseAbandonsCommand(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{})
	port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	m := zfm.NewModule(port, zfm.DefaultAddress, quiet)
	e.Inject(emu.Fault{Kind: emu.FaultDrop})
	errc := make(chan error, 1)
	go func() { errc <- m.GenImg(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	m.Close()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Close took %v, want under one read timeout or so", took)
	}
	if err := <-errc; !errors.Is(err, zfm.ErrClosed) {
		t.Errorf("GenImg cut by Close: got %v, want ErrClosed", err)
	}
	if err := m.GenImg(context.Background()); !errors.Is(err, zfm.ErrClosed) {
		t.Errorf("GenImg after Close: got %v, want ErrClosed", err)
	}
}

// A context cancelled while a command waits ends the wait; the next command is not confused by
// the late reply.
func TestModuleContext(t *testing.T) {
	t.Parallel()
	_, link := startEmu(t, emu.Config{Latency: emu.Latency{Reply: 300 * time.Millisecond}})
	m := openModule(t, link)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.TemplateNum(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("TemplateNum with a short context: got %v, want DeadlineExceeded", err)
	}
	time.Sleep(400 * time.Millisecond) // the late reply arrives
	if err := m.GenImg(ctxFor(t, 3*time.Second)); !errors.Is(err, zfm.ErrNoFinger) {
		t.Errorf("GenImg after the late reply: got %v, want ErrNoFinger", err)
	}
}
