package zfm_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

// identifying returns an emulator and a reader that knows T001/right-index at page 0.
func identifying(t *testing.T) (*emu.Emulator, *zfm.Reader, string) {
	t.Helper()
	e, link := startEmu(t, emu.Config{})
	r := openReader(t, link, zfm.Config{})
	if _, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{tmpl("T001", "right-index")}); err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	return e, r, link
}

func TestNextFaults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		fault    emu.Fault
		failures uint64
		dropped  bool
		resent   uint64
	}{
		{"dropped reply", emu.Fault{Kind: emu.FaultDrop, Instr: zfm.InstrImg2Tz}, 1, false, 0},
		{"bad checksum", emu.Fault{Kind: emu.FaultBadChecksum, Instr: zfm.InstrImg2Tz}, 1, true, 0},
		{"garbage", emu.Fault{Kind: emu.FaultGarbage, Instr: zfm.InstrHiSpeedSearch}, 0, true, 0},
		{"split", emu.Fault{Kind: emu.FaultSplit, Instr: zfm.InstrHiSpeedSearch}, 0, false, 0},
		// A 0x01 answer says the module received the command corrupt: the driver sends it again,
		// and the poll does not fail.
		{"packet error", emu.Fault{Kind: emu.FaultCode, Instr: zfm.InstrGenImg, Code: zfm.CodePacket}, 0, false, 1},
		{"packet error on search", emu.Fault{Kind: emu.FaultCode, Instr: zfm.InstrHiSpeedSearch, Code: zfm.CodePacket}, 0, false, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e, r, _ := identifying(t)
			e.Inject(c.fault)
			e.Place("T001/right-index")
			if rd := next(t, r); rd.Subject != "T001" || rd.Detail != "page 0" {
				t.Errorf("got reading %+v, want T001 from page 0 after recovering", rd)
			}
			noReading(t, r, 200*time.Millisecond)
			s, h := r.Stats(), r.Health()
			if s.Readings != 1 || s.Failures != c.failures {
				t.Errorf("got %d readings and %d failed polls, want 1 and %d", s.Readings, s.Failures, c.failures)
			}
			if s.Module.Resent != c.resent {
				t.Errorf("got %d commands resent, want %d", s.Module.Resent, c.resent)
			}
			if (h.Dropped > 0) != c.dropped {
				t.Errorf("got %d dropped, want dropped input: %v", h.Dropped, c.dropped)
			}
			if c.failures > 0 && h.LastErr == "" {
				t.Errorf("got no last error in health %+v, want the failed poll", h)
			}
			if h.State != drivers.StateOK {
				t.Errorf("got state %s after clean polls, want ok", h.State)
			}
		})
	}
}

func TestNextGivesUp(t *testing.T) {
	t.Parallel()
	e, r, _ := identifying(t)
	for range 3 {
		e.Inject(emu.Fault{Kind: emu.FaultDrop, Instr: zfm.InstrGenImg})
	}
	rd, err := r.Next(ctxFor(t, 10*time.Second))
	if !errors.Is(err, zfm.ErrTimeout) || !reflect.DeepEqual(rd, drivers.Reading{}) {
		t.Errorf("Next with three replies dropped in a row: got %+v, %v, want no reading and ErrTimeout", rd, err)
	}
	if h := r.Health(); h.State != drivers.StateDown || !strings.Contains(h.LastErr, "3 polls failed") {
		t.Errorf("got health %+v, want down, 3 polls failed", h)
	}
}

func TestNextHangUp(t *testing.T) {
	t.Parallel()
	e, r, link := identifying(t)
	e.Inject(emu.Fault{Kind: emu.FaultHangUp, Instr: zfm.InstrHiSpeedSearch})
	e.Place("T001/right-index")
	start := time.Now()
	rd, err := r.Next(ctxFor(t, 5*time.Second))
	if !errors.Is(err, serialport.ErrHangup) || !reflect.DeepEqual(rd, drivers.Reading{}) || time.Since(start) > time.Second {
		t.Fatalf("Next cut by a hang-up: got %+v, %v after %v, want no reading and ErrHangup at once", rd, err, time.Since(start))
	}
	if h := r.Health(); h.State != drivers.StateDown {
		t.Errorf("got state %s, want down", h.State)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after the hang-up: %v", err)
	}
	// The module comes back behind the same link; the agent reopens.
	r = openReader(t, link, zfm.Config{})
	if rd := next(t, r); rd.Detail != "page 0 is not assigned to a trainee" {
		t.Errorf("after reopening: got %+v, want page 0 (not assigned until the next sync)", rd)
	}
}

func TestSyncHangUpMidTransfer(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{Preload: []string{"T001/right-index", "T002/left-index"}})
	r := openReader(t, link, zfm.Config{})
	e.Inject(emu.Fault{Kind: emu.FaultHangUp, Instr: zfm.InstrUpChar})
	rep, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{tmpl("T001", "right-index")})
	if !errors.Is(err, serialport.ErrHangup) {
		t.Errorf("SyncTemplates cut by a hang-up: got %+v, %v, want ErrHangup", rep, err)
	}
	e.Place("T001/right-index")
	if rd, err := r.Next(ctxFor(t, 2*time.Second)); err == nil {
		t.Errorf("Next on the hung-up line: got reading %+v, want an error", rd)
	}
}

func TestCloseNeverHangs(t *testing.T) {
	t.Parallel()
	closeWithin := func(t *testing.T, r *zfm.Reader) {
		t.Helper()
		start := time.Now()
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("Close took %v, want well under a second", took)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: got %v, want nil", err)
		}
	}
	pending := func(r *zfm.Reader) chan error {
		c := make(chan error, 1)
		go func() {
			_, err := r.Next(context.Background())
			c <- err
		}()
		time.Sleep(150 * time.Millisecond)
		return c
	}
	wantClosed := func(t *testing.T, c chan error) {
		t.Helper()
		select {
		case err := <-c:
			if !errors.Is(err, zfm.ErrClosed) {
				t.Errorf("Next cut by Close: got %v, want ErrClosed", err)
			}
		case <-time.After(time.Second):
			t.Errorf("Next still blocked 1s after Close")
		}
	}
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		_, r, _ := identifying(t)
		c := pending(r)
		closeWithin(t, r)
		wantClosed(t, c)
	})
	t.Run("waiting for a dropped reply", func(t *testing.T) {
		t.Parallel()
		e, r, _ := identifying(t)
		e.Inject(emu.Fault{Kind: emu.FaultDrop, Instr: zfm.InstrGenImg})
		c := pending(r)
		closeWithin(t, r)
		wantClosed(t, c)
	})
	t.Run("enrolling", func(t *testing.T) {
		t.Parallel()
		_, r, _ := identifying(t)
		c := make(chan error, 1)
		go func() {
			_, err := r.Enroll(context.Background(), nil)
			c <- err
		}()
		time.Sleep(150 * time.Millisecond)
		closeWithin(t, r)
		wantClosed(t, c)
	})
	t.Run("emulator gone", func(t *testing.T) {
		t.Parallel()
		e, r, _ := identifying(t)
		c := pending(r)
		e.Close()
		select {
		case err := <-c:
			if !errors.Is(err, serialport.ErrHangup) {
				t.Errorf("Next when the emulator closes: got %v, want ErrHangup", err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("Next still blocked 2s after the line went")
		}
		closeWithin(t, r)
	})
}
