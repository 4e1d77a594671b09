package emu_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

func TestTemplate(t *testing.T) {
	a, b := emu.Template("T001/right-index"), emu.Template("T001/right-index")
	if len(a) != emu.TemplateSize || !bytes.Equal(a, b) {
		t.Fatalf("got %d bytes, deterministic %v; want %d deterministic bytes", len(a), bytes.Equal(a, b), emu.TemplateSize)
	}
	if bytes.Equal(a, emu.Template("T001/left-index")) {
		t.Errorf("two fingers got the same template, want different ones")
	}
	if f, ok := emu.FingerOf(a); !ok || f != "T001/right-index" {
		t.Errorf("FingerOf: got %q, %v, want T001/right-index", f, ok)
	}
	long := strings.Repeat("x", 300)
	if f, ok := emu.FingerOf(emu.Template(long)); !ok || !strings.HasPrefix(f, "#") {
		t.Errorf("FingerOf a long ID: got %q, %v, want its digest", f, ok)
	}
	if _, ok := emu.FingerOf(make([]byte, 512)); ok {
		t.Errorf("FingerOf zeros: got ok, want false")
	}
}

// module opens link through serialport and tarm/serial.
func module(t *testing.T, link string) *zfm.Module {
	t.Helper()
	port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
	if err != nil {
		t.Fatalf("serialport: %v", err)
	}
	m := zfm.NewModule(port, zfm.DefaultAddress, nil)
	t.Cleanup(func() {
		m.Close()
		port.Close()
	})
	return m
}

func start(t *testing.T, cfg emu.Config) (*emu.Emulator, string) {
	t.Helper()
	link := filepath.Join(t.TempDir(), "ttyZFM")
	e := emu.New(cfg)
	if err := e.Start(link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, link
}

func TestBehavesLikeAModule(t *testing.T) {
	t.Parallel()
	e, link := start(t, emu.Config{Capacity: 300, Preload: []string{"T001/right-index"}})
	m := module(t, link)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	p, err := m.ReadSysPara(ctx)
	if err != nil || p.Capacity != 300 || p.PacketSize != 128 || p.SecurityLevel != 3 || p.Baud() != 57600 {
		t.Fatalf("ReadSysPara: got %+v, %v, want capacity 300, 128-byte packets, level 3, 57600 baud", p, err)
	}
	if err := m.GenImg(ctx); !errors.Is(err, zfm.ErrNoFinger) {
		t.Errorf("GenImg with no finger: got %v, want ErrNoFinger", err)
	}
	capture := func(finger string, buf zfm.Buffer) {
		t.Helper()
		e.Place(finger)
		if err := m.GenImg(ctx); err != nil {
			t.Fatalf("GenImg: %v", err)
		}
		if err := m.Img2Tz(ctx, buf); err != nil {
			t.Fatalf("Img2Tz: %v", err)
		}
		e.Lift()
	}
	capture("T001/right-index", zfm.Buffer1)
	hit, err := m.Search(ctx, zfm.Buffer1, 0, 300)
	if err != nil || hit.Page != 0 || hit.Score < 60 || hit.Score > 199 {
		t.Errorf("Search for a stored finger: got %+v, %v, want page 0 scoring 60..199", hit, err)
	}
	capture("T001/right-index", zfm.Buffer2)
	if score, err := m.Match(ctx); err != nil || score < 60 {
		t.Errorf("Match of two captures of one finger: got %d, %v, want a match", score, err)
	}
	capture("T002/right-index", zfm.Buffer2)
	if _, err := m.Match(ctx); !errors.Is(err, zfm.ErrNoMatch) {
		t.Errorf("Match of two fingers: got %v, want ErrNoMatch", err)
	}
	if _, err := m.Search(ctx, zfm.Buffer2, 0, 300); !errors.Is(err, zfm.ErrNotFound) {
		t.Errorf("Search for an unknown finger: got %v, want ErrNotFound", err)
	}
	if err := m.RegModel(ctx); !errors.Is(err, zfm.ErrCombine) {
		t.Errorf("RegModel of two fingers: got %v, want ErrCombine", err)
	}
	capture("T002/right-index", zfm.Buffer1)
	if err := m.RegModel(ctx); err != nil {
		t.Fatalf("RegModel: %v", err)
	}
	if err := m.Store(ctx, zfm.Buffer1, 299); err != nil {
		t.Fatalf("Store: %v", err)
	}
	if err := m.Store(ctx, zfm.Buffer1, 300); !errors.Is(err, zfm.ErrBadPage) {
		t.Errorf("Store beyond the library: got %v, want ErrBadPage", err)
	}
	if got := e.Library()[299]; !bytes.Equal(got, emu.Template("T002/right-index")) {
		t.Errorf("page 299 does not hold emu.Template(T002/right-index)")
	}
	idx, err := m.ReadIndex(ctx, 300)
	if err != nil || idx.Count() != 2 || !idx[0] || !idx[299] {
		t.Errorf("ReadIndex: got %d used (0: %v, 299: %v), %v, want pages 0 and 299", idx.Count(), idx[0], idx[299], err)
	}
	if n, err := m.TemplateNum(ctx); err != nil || n != 2 {
		t.Errorf("TemplateNum: got %d, %v, want 2", n, err)
	}
	if err := m.LoadChar(ctx, zfm.Buffer2, 5); !errors.Is(err, zfm.ErrBadTemplate) {
		t.Errorf("LoadChar of an empty page: got %v, want ErrBadTemplate", err)
	}
	if err := m.DeletChar(ctx, 299, 1); err != nil {
		t.Errorf("DeletChar: %v", err)
	}
	if err := m.Empty(ctx); err != nil {
		t.Errorf("Empty: %v", err)
	}
	if n, err := m.TemplateNum(ctx); err != nil || n != 0 {
		t.Errorf("TemplateNum after Empty: got %d, %v, want 0", n, err)
	}
	if err := m.VfyPwd(ctx, 7); !errors.Is(err, zfm.ErrWrongPassword) {
		t.Errorf("VfyPwd(7): got %v, want ErrWrongPassword", err)
	}
}

// The driver closes the port and opens it again: the emulator keeps serving.
func TestReopen(t *testing.T) {
	t.Parallel()
	_, link := start(t, emu.Config{})
	for i := range 3 {
		port, err := serialport.Open(serialport.Config{Path: link, Baud: 57600})
		if err != nil {
			t.Fatal(err)
		}
		m := zfm.NewModule(port, zfm.DefaultAddress, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = m.HandShake(ctx)
		cancel()
		m.Close()
		port.Close()
		if err != nil {
			t.Fatalf("open %d: HandShake: %v", i+1, err)
		}
	}
}

func TestStartRefusesAFile(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyZFM")
	if err := os.WriteFile(link, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := emu.New(emu.Config{}).Start(link); err == nil {
		t.Errorf("Start over a regular file: got nil, want an error")
	}
	if err := emu.New(emu.Config{PacketSize: 100}).Start(link + "2"); err == nil {
		t.Errorf("Start with 100-byte packets: got nil, want an error")
	}
}

func TestParseScript(t *testing.T) {
	sc, err := emu.ParseScript(strings.NewReader(`
# demo
preload T001/right-index T002/left-index
wait 2s
touch T001/right-index 800ms   # a touch
place X/y
lift
store 7 T003/x
erase 7
fault drop search
fault code 0x06 img2tz
fault hangup 0x08
repeat
`))
	if err != nil {
		t.Fatalf("ParseScript: %v", err)
	}
	if !sc.Repeat || len(sc.Steps) != 10 {
		t.Fatalf("got %d steps, repeat %v, want 10 and true", len(sc.Steps), sc.Repeat)
	}
	if st := sc.Steps[2]; st.Op != "touch" || st.Finger != "T001/right-index" || st.Wait != 800*time.Millisecond || st.Line != 5 {
		t.Errorf("touch: got %+v, want T001/right-index for 800ms on line 5", st)
	}
	if f := sc.Steps[8].Fault; f.Kind != emu.FaultCode || f.Code != zfm.CodeMessy || f.Instr != zfm.InstrImg2Tz {
		t.Errorf("fault code: got %+v, want code 0x06 on img2tz", f)
	}
	if f := sc.Steps[9].Fault; f.Kind != emu.FaultHangUp || f.Instr != zfm.InstrUpChar {
		t.Errorf("fault hangup: got %+v, want hangup on upchar", f)
	}
	for _, bad := range []struct{ script, want string }{
		{"wait", "line 1"},
		{"\nwait soon", "line 2"},
		{"place", "line 1"},
		{"jump", `unknown command "jump"`},
		{"lift\nrepeat", "needs a wait"},
		{"wait 1s\nrepeat\nlift", "nothing may follow"},
		{"fault melt", "unknown fault"},
		{"fault drop nosuch", "not an instruction"},
		{"store x T1", "not a page"},
	} {
		if _, err := emu.ParseScript(strings.NewReader(bad.script)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseScript(%q): got %v, want an error with %q", bad.script, err, bad.want)
		}
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "ttyZFM")
	ctx, cancel := context.WithCancel(context.Background())
	e := emu.New(emu.Config{})
	done := make(chan error, 1)
	go func() {
		done <- e.Run(ctx, link, strings.NewReader("preload T001/right-index\nplace T001/right-index\n"), nil)
	}()
	deadline := time.Now().Add(2 * time.Second)
	for e.Path() == "" || len(e.Library()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the script did not start in 2s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := module(t, link)
	mctx, mcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer mcancel()
	if err := m.GenImg(mctx); err != nil {
		t.Errorf("GenImg with the script's finger placed: got %v, want nil", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v, want nil when ctx ends", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return 2s after ctx ended")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after Run: got %v, want it removed", err)
	}
}
