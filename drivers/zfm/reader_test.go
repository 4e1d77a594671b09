package zfm_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	"github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

func errorsIsDeadline(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

func TestConfigValidate(t *testing.T) {
	good := zfm.Config{Port: serialport.Config{Path: "/dev/ttyUSB0"}}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v): got %v, want nil (defaults fill the rest)", good, err)
	}
	bad := []zfm.Config{
		{},
		{Port: serialport.Config{Path: "/dev/ttyUSB0", Baud: 56000}},
		{Port: serialport.Config{Path: "/dev/ttyUSB0"}, PollInterval: time.Millisecond},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "zfm: ") {
			t.Errorf("Validate(%+v): got %v, want an error starting with zfm:", c, err)
		}
	}
}

func TestIdentifyOneReadingPerTouch(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{})
	r := openReader(t, link, zfm.Config{})
	rep, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{tmpl("T001", "right-index"), tmpl("T002", "left-index")})
	if err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	if !slices.Equal(rep.Stored, []int{0, 1}) {
		t.Fatalf("SyncTemplates stored %v, want [0 1]", rep.Stored)
	}

	e.Place("T002/left-index")
	rd := next(t, r)
	if rd.Subject != "T002" || rd.Detail != "page 1" || rd.Source != "door" || rd.Method != drivers.Fingerprint {
		t.Errorf("got reading %+v, want T002 from page 1 of door by fingerprint", rd)
	}
	if rd.Score < 60 || rd.Score >= 200 {
		t.Errorf("got score %v, want the module's 60..199", rd.Score)
	}
	noReading(t, r, 300*time.Millisecond) // the finger stays: still one touch

	lift(t, e, r)
	e.Place("T001/right-index")
	if rd := next(t, r); rd.Subject != "T001" || rd.Detail != "page 0" {
		t.Errorf("got reading %+v, want T001 from page 0", rd)
	}
	lift(t, e, r)
	e.Place("X999/right-thumb")
	rd = next(t, r)
	if rd.Subject != "" || rd.Detail != "no match in the library" || rd.Score != 0 {
		t.Errorf("got reading %+v, want no subject, no match in the library", rd)
	}
	e.Lift()
	if s := r.Stats(); s.Readings != 3 || s.Unmatched != 1 {
		t.Errorf("got stats %+v, want 3 readings, 1 unmatched", s)
	}
	if h := r.Health(); h.State != drivers.StateOK || h.Readings != 3 {
		t.Errorf("got health %+v, want ok with 3 readings", h)
	}
}

func TestPageNotAssigned(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{Preload: []string{"T009/right-index"}})
	r := openReader(t, link, zfm.Config{})
	e.Place("T009/right-index")
	rd := next(t, r)
	if rd.Subject != "" || rd.Detail != "page 0 is not assigned to a trainee" || rd.Score == 0 {
		t.Errorf("got reading %+v, want no subject, page 0 not assigned, the module's score", rd)
	}
}

// The driver reports the module's score as it is: the one score threshold is the rules'
// ([checkin.min_score] fingerprint), which records a low score as a refusal with its reason.
func TestScoreIsReportedNotJudged(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{MatchScore: 70})
	r := openReader(t, link, zfm.Config{})
	if _, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{tmpl("T001", "right-index")}); err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	e.Place("T001/right-index")
	if rd := next(t, r); rd.Subject != "T001" || rd.Score != 70 {
		t.Errorf("got reading %+v, want subject T001 with the module's score 70", rd)
	}
}

func TestImageErrorsAreNotReadings(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{})
	r := openReader(t, link, zfm.Config{})
	if _, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{tmpl("T001", "right-index")}); err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	e.Inject(emu.Fault{Kind: emu.FaultCode, Instr: zfm.InstrImg2Tz, Code: zfm.CodeMessy})
	e.Inject(emu.Fault{Kind: emu.FaultCode, Instr: zfm.InstrImg2Tz, Code: zfm.CodeFewPoints})
	e.Place("T001/right-index")
	if rd := next(t, r); rd.Subject != "T001" {
		t.Errorf("got reading %+v, want T001 once the image is good", rd)
	}
	noReading(t, r, 200*time.Millisecond)
	if s := r.Stats(); s.ImageErrors != 2 || s.Readings != 1 {
		t.Errorf("got stats %+v, want 2 image errors and 1 reading", s)
	}
}

func TestHiSpeedSearchFallback(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		unsupported []zfm.Instr
		hi, plain   int
		support     zfm.Support
	}{
		{"R503", nil, 2, 0, zfm.Supported},
		{"R551", []zfm.Instr{zfm.InstrHiSpeedSearch}, 1, 2, zfm.Unsupported},
	} {
		cnt := newCounter()
		e, link := startEmu(t, emu.Config{Unsupported: c.unsupported, OnPacket: cnt.hook})
		r := openReader(t, link, zfm.Config{})
		if _, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{tmpl("T001", "right-index")}); err != nil {
			t.Fatalf("SyncTemplates: %v", err)
		}
		for range 2 {
			e.Place("T001/right-index")
			if rd := next(t, r); rd.Subject != "T001" {
				t.Errorf("%s: got reading %+v, want T001", c.name, rd)
			}
			lift(t, e, r)
		}
		if hi, plain := cnt.count(zfm.InstrHiSpeedSearch), cnt.count(zfm.InstrSearch); hi != c.hi || plain != c.plain {
			t.Errorf("%s: got %d HiSpeedSearch and %d Search, want %d and %d", c.name, hi, plain, c.hi, c.plain)
		}
		if got := r.Stats().Module.HiSpeedSearch; got != c.support {
			t.Errorf("%s: got HiSpeedSearch %v, want %v", c.name, got, c.support)
		}
	}
}

func TestSyncTemplates(t *testing.T) {
	t.Parallel()
	cnt := newCounter()
	a, b, c, x := tmpl("T001", "right-index"), tmpl("T002", "left-index"), tmpl("T003", "right-thumb"), tmpl("X", "stale")
	e, link := startEmu(t, emu.Config{Preload: []string{"T001/right-index", "T002/left-index", "X/stale"}, OnPacket: cnt.hook})
	r := openReader(t, link, zfm.Config{})
	ctx := ctxFor(t, 10*time.Second)

	rep, err := r.SyncTemplates(ctx, []drivers.Template{a, b, c})
	if err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	if rep.Kept != 2 || !slices.Equal(rep.Deleted, []int{2}) || !slices.Equal(rep.Stored, []int{2}) || len(rep.Failed) != 0 || rep.Free != 197 || rep.Capacity != 200 {
		t.Fatalf("got report %+v, want 2 kept, page 2 deleted and stored again, 197 free of 200", rep)
	}
	lib := e.Library()
	for page, want := range map[int][]byte{0: a.Data, 1: b.Data, 2: c.Data} {
		if !slices.Equal(lib[page], want) {
			t.Errorf("page %d: got %.12q..., want %.12q...", page, lib[page], want)
		}
	}
	if slices.ContainsFunc(slices.Collect(mapValues(lib)), func(d []byte) bool { return slices.Equal(d, x.Data) }) {
		t.Errorf("the stale template is still in the library")
	}
	e.Place("T003/right-thumb")
	if rd := next(t, r); rd.Subject != "T003" || rd.Detail != "page 2" {
		t.Errorf("got reading %+v, want T003 from page 2", rd)
	}
	lift(t, e, r)

	// In step: nothing to do, and nothing read back.
	cnt.reset()
	rep, err = r.SyncTemplates(ctx, []drivers.Template{a, b, c})
	if err != nil || rep.Kept != 3 || len(rep.Stored)+len(rep.Deleted)+len(rep.Failed) != 0 {
		t.Fatalf("second sync: got %+v, %v, want 3 kept and nothing else", rep, err)
	}
	if n := cnt.count(zfm.InstrUpChar); n != 0 {
		t.Errorf("second sync: got %d UpChar, want 0", n)
	}

	// A trainee leaves the roster: the page goes, the finger no longer matches.
	rep, err = r.SyncTemplates(ctx, []drivers.Template{a, c})
	if err != nil || !slices.Equal(rep.Deleted, []int{1}) {
		t.Fatalf("third sync: got %+v, %v, want page 1 deleted", rep, err)
	}
	e.Place("T002/left-index")
	if rd := next(t, r); rd.Subject != "" {
		t.Errorf("got reading %+v, want no subject for a deleted template", rd)
	}
	lift(t, e, r)

	// A template reassigned to another trainee (same bytes) moves with the roster.
	moved := a
	moved.Trainee = "T100"
	if _, err := r.SyncTemplates(ctx, []drivers.Template{moved, c}); err != nil {
		t.Fatalf("fourth sync: %v", err)
	}
	e.Place("T001/right-index")
	if rd := next(t, r); rd.Subject != "T100" {
		t.Errorf("got reading %+v, want T100 after the reassignment", rd)
	}
}

func mapValues(m map[int][]byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func TestSyncFailures(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{Capacity: 3})
	r := openReader(t, link, zfm.Config{})
	ctx := ctxFor(t, 10*time.Second)

	// The read-back differs: the page is freed and the template reported.
	e.Inject(emu.Fault{Kind: emu.FaultFlipBit, Instr: zfm.InstrDownChar})
	rep, err := r.SyncTemplates(ctx, []drivers.Template{tmpl("T001", "right-index")})
	if err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	if len(rep.Failed) != 1 || !errors.Is(rep.Failed[0].Err, zfm.ErrVerify) || len(rep.Stored) != 0 || rep.Free != 3 {
		t.Fatalf("got report %+v, want T001 failed with ErrVerify, nothing stored, 3 free", rep)
	}
	if lib := e.Library(); len(lib) != 0 {
		t.Errorf("got %d pages in the library, want the corrupt one deleted", len(lib))
	}

	// Library full, a size that is not whole packets, one template listed for two trainees.
	twin := tmpl("T001", "right-index")
	twin.Trainee = "T099"
	odd := drivers.Template{Trainee: "T050", Data: make([]byte, 500)}
	roster := []drivers.Template{tmpl("T001", "right-index"), twin, odd,
		tmpl("T002", "a"), tmpl("T003", "b"), tmpl("T004", "c"), tmpl("T005", "d")}
	rep, err = r.SyncTemplates(ctx, roster)
	if err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	failed := map[string]error{}
	for _, f := range rep.Failed {
		failed[f.Trainee] = f.Err
	}
	if len(rep.Stored) != 3 || rep.Free != 0 || len(failed) != 4 ||
		!errors.Is(failed["T005"], zfm.ErrLibraryFull) || failed["T001"] == nil || failed["T099"] == nil || failed["T050"] == nil {
		t.Errorf("got report %+v, want 3 stored, T005 library full, T001/T099 duplicates and T050 odd size failed", rep)
	}
}

func TestEnroll(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{Preload: []string{"T001/right-index"}})
	r := openReader(t, link, zfm.Config{})
	var said []string
	progress := func(msg string) {
		said = append(said, msg)
		switch {
		case strings.HasPrefix(msg, "place"):
			e.Place("T005/left-thumb")
		case msg == "lift finger":
			e.Lift()
		}
	}
	data, err := r.Enroll(ctxFor(t, 5*time.Second), progress)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if want := emu.Template("T005/left-thumb"); !slices.Equal(data, want) {
		t.Errorf("got a template of %d bytes that is not the finger's, want emu.Template(T005/left-thumb)", len(data))
	}
	if want := []string{"place finger", "lift finger", "place the same finger again", "stored at page 1"}; !slices.Equal(said, want) {
		t.Errorf("got progress %q, want %q", said, want)
	}
	if got := e.Library()[1]; !slices.Equal(got, data) {
		t.Errorf("page 1 does not hold the enrolled template")
	}
	noReading(t, r, 200*time.Millisecond) // the second touch is still on the sensor: not a reading

	// Until the roster carries it, the page belongs to nobody; then it does.
	lift(t, e, r)
	e.Place("T005/left-thumb")
	if rd := next(t, r); rd.Subject != "" || !strings.Contains(rd.Detail, "not assigned") {
		t.Errorf("got reading %+v, want the enrolled page not assigned yet", rd)
	}
	lift(t, e, r)
	rep, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{
		tmpl("T001", "right-index"), {Trainee: "T005", Finger: "left-thumb", Data: data}})
	if err != nil || rep.Kept != 2 || len(rep.Stored) != 0 {
		t.Fatalf("SyncTemplates: got %+v, %v, want both kept", rep, err)
	}
	e.Place("T005/left-thumb")
	if rd := next(t, r); rd.Subject != "T005" || rd.Detail != "page 1" {
		t.Errorf("got reading %+v, want T005 from page 1", rd)
	}
}

func TestEnrollDifferentFingers(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{})
	r := openReader(t, link, zfm.Config{})
	touches := 0
	_, err := r.Enroll(ctxFor(t, 5*time.Second), func(msg string) {
		switch {
		case strings.HasPrefix(msg, "place"):
			touches++
			e.Place([]string{"", "T001/right-index", "T001/left-index"}[touches])
		case msg == "lift finger":
			e.Lift()
		}
	})
	if !errors.Is(err, zfm.ErrCombine) {
		t.Errorf("Enroll with two fingers: got %v, want ErrCombine", err)
	}
	if lib := e.Library(); len(lib) != 0 {
		t.Errorf("got %d pages stored, want none", len(lib))
	}
}

// SyncTemplates and Next share the line; run them together under the race detector.
func TestSyncWhileIdentifying(t *testing.T) {
	t.Parallel()
	e, link := startEmu(t, emu.Config{})
	r := openReader(t, link, zfm.Config{})
	var roster []drivers.Template
	for i := range 40 {
		roster = append(roster, tmpl("T"+string(rune('A'+i%26))+string(rune('a'+i/26)), "right-index"))
	}
	if _, err := r.SyncTemplates(ctxFor(t, 5*time.Second), roster[:1]); err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	ctx := ctxFor(t, 10*time.Second)
	var wg sync.WaitGroup
	var rep zfm.SyncReport
	var serr error
	wg.Go(func() { rep, serr = r.SyncTemplates(ctx, roster) })
	first := roster[0].Trainee + "/right-index"
	for range 3 {
		e.Place(first)
		if rd := next(t, r); rd.Subject != roster[0].Trainee {
			t.Errorf("during the sync: got reading %+v, want %s", rd, roster[0].Trainee)
		}
		lift(t, e, r)
	}
	wg.Wait()
	if serr != nil || len(rep.Stored) != 39 || rep.Kept != 1 {
		t.Fatalf("SyncTemplates: got %d stored, %d kept, %v; want 39 and 1", len(rep.Stored), rep.Kept, serr)
	}
}

func TestAuraLed(t *testing.T) {
	t.Parallel()
	cnt := newCounter()
	e, link := startEmu(t, emu.Config{})
	r := openReader(t, link, zfm.Config{})
	want := zfm.Aura{Control: zfm.AuraFlash, Speed: 20, Colour: zfm.AuraBlue, Times: 3}
	if err := r.Module().AuraLedConfig(ctxFor(t, 2*time.Second), want); err != nil {
		t.Fatalf("AuraLedConfig: %v", err)
	}
	if got := e.LED(); got != want {
		t.Errorf("LED: got %+v, want %+v", got, want)
	}

	_, link = startEmu(t, emu.Config{Unsupported: []zfm.Instr{zfm.InstrAuraLedConfig}, OnPacket: cnt.hook})
	r = openReader(t, link, zfm.Config{})
	for range 2 {
		if err := r.Module().AuraLedConfig(ctxFor(t, 2*time.Second), want); !errors.Is(err, zfm.ErrUnsupported) {
			t.Errorf("AuraLedConfig without a ring: got %v, want ErrUnsupported", err)
		}
	}
	if n := cnt.count(zfm.InstrAuraLedConfig); n != 1 {
		t.Errorf("got %d AuraLedConfig sent, want 1 (the answer is remembered)", n)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	t.Run("power-up", func(t *testing.T) {
		t.Parallel()
		e, link := startEmu(t, emu.Config{PowerUp: 400 * time.Millisecond, WakeByte: true, Preload: []string{"T001/x"}})
		r := openReader(t, link, zfm.Config{})
		if h := r.Health(); h.Dropped == 0 || h.State != drivers.StateOK {
			t.Errorf("got health %+v, want ok with the stray 0x55 dropped", h)
		}
		if p := r.SysPara(); p.Capacity != 200 || p.PacketSize != 128 || p.Address != zfm.DefaultAddress {
			t.Errorf("got parameters %+v, want capacity 200, packets of 128, default address", p)
		}
		e.Place("T001/x")
		if rd := next(t, r); rd.Detail != "page 0 is not assigned to a trainee" {
			t.Errorf("got reading %+v after power-up, want page 0", rd)
		}
	})
	t.Run("password", func(t *testing.T) {
		t.Parallel()
		_, link := startEmu(t, emu.Config{Password: 0x1234})
		_, err := zfm.Open(ctxFor(t, 5*time.Second), "door", zfm.Config{Port: serialport.Config{Path: link}}, quiet)
		if !errors.Is(err, zfm.ErrWrongPassword) {
			t.Errorf("Open with password 0: got %v, want ErrWrongPassword", err)
		}
		openReader(t, link, zfm.Config{Password: 0x1234})
	})
	t.Run("address", func(t *testing.T) {
		t.Parallel()
		_, link := startEmu(t, emu.Config{Address: 0x00C0FFEE})
		start := time.Now()
		_, err := zfm.Open(ctxFor(t, 5*time.Second), "door", zfm.Config{Port: serialport.Config{Path: link}}, quiet)
		if !errors.Is(err, zfm.ErrTimeout) || time.Since(start) > 3500*time.Millisecond {
			t.Errorf("Open at the wrong address: got %v after %v, want ErrTimeout within 3.5s", err, time.Since(start))
		}
		openReader(t, link, zfm.Config{Address: 0x00C0FFEE})
	})
	t.Run("no device", func(t *testing.T) {
		t.Parallel()
		_, err := zfm.Open(ctxFor(t, time.Second), "door", zfm.Config{Port: serialport.Config{Path: t.TempDir() + "/none"}}, quiet)
		if err == nil || !strings.HasPrefix(err.Error(), "zfm: ") {
			t.Errorf("Open of a missing device: got %v, want an error starting with zfm:", err)
		}
	})
}

// TestRunScript runs the emulator as `kaoqin emulate zfm` does, with a script and realistic
// timing, and identifies the finger the script places.
func TestRunScript(t *testing.T) {
	t.Parallel()
	link := t.TempDir() + "/ttyZFM"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	script := "# demo\npreload T001/right-index\nwait 500ms\ntouch T001/right-index 2s\n"
	go func() { done <- emu.Run(ctx, link, strings.NewReader(script), quiet) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil when ctx ends", err)
		}
	}()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(link); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no link after 2s")
		}
	}
	r := openReader(t, link, zfm.Config{})
	if _, err := r.SyncTemplates(ctxFor(t, 5*time.Second), []drivers.Template{tmpl("T001", "right-index")}); err != nil {
		t.Fatalf("SyncTemplates: %v", err)
	}
	if rd := next(t, r); rd.Subject != "T001" {
		t.Errorf("got reading %+v, want T001 from the script's touch", rd)
	}
}
