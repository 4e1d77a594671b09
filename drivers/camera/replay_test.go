package camera

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

func link(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Symlink(from, to); err != nil {
		t.Fatal(err)
	}
}

// TestReplay plays a folder in name order, skipping what is not a usable JPEG, and loops.
func TestReplay(t *testing.T) {
	fx := fixtures(t)
	dir := t.TempDir()
	link(t, fx.colour[0], filepath.Join(dir, "a.jpg"))
	link(t, fx.gray[1], filepath.Join(dir, "b.jpg"))
	link(t, fx.colour[2], filepath.Join(dir, "c.JPEG"))
	if err := os.WriteFile(filepath.Join(dir, "d.jpg"), []byte("not a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	link(t, fx.tinted[4], filepath.Join(dir, "e.jpg"))
	link(t, fx.colour[5], filepath.Join(dir, "f.jpg"))
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(Dir)
	cfg.Dir = drivers.Path(dir)
	cfg.FPS = 30
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := []struct {
		file string
		seq  uint64
	}{{fx.colour[0], 1}, {fx.colour[2], 3}, {fx.colour[5], 6}, {fx.colour[0], 7}}
	var last Frame
	for _, w := range want {
		fr := nextWithin(t, f, 2*time.Second)
		last = fr
		b, _ := os.ReadFile(w.file)
		if string(fr.JPEG) != string(b) || fr.Seq != w.seq || fr.Width != 320 || fr.Height != 240 {
			t.Fatalf("got seq %d, %d bytes, %dx%d; want seq %d, %s (%d bytes), 320x240", fr.Seq, len(fr.JPEG), fr.Width, fr.Height, w.seq, filepath.Base(w.file), len(b))
		}
	}
	if h := f.Health(); h.Frames != 4 || h.Gray != 2 || h.Corrupt != 1 || !h.LastFrame.Equal(last.At) || h.State != drivers.StateOK {
		t.Errorf("health: got %+v, want 4 frames, 2 grey, 1 corrupt, ok, last frame at %v", h, last.At)
	}
}

func TestReplayOnceAndFailures(t *testing.T) {
	fx := fixtures(t)
	dir := t.TempDir()
	link(t, fx.colour[0], filepath.Join(dir, "a.jpg"))
	cfg := testConfig(Dir)
	cfg.Dir = drivers.Path(dir)
	cfg.Loop = false
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	nextWithin(t, f, time.Second)
	if _, err := f.Next(context.Background()); err != io.EOF {
		t.Errorf("after the last file without loop: got %v, want io.EOF", err)
	}
	f.Close()
	if _, err := f.Next(context.Background()); !errors.Is(err, io.EOF) && !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: got %v, want EOF or ErrClosed", err)
	}

	cfg.Dir = drivers.Path(t.TempDir())
	if _, err := Open(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "no .jpg files") {
		t.Errorf("empty folder: got %v, want \"no .jpg files\"", err)
	}
	bad := t.TempDir()
	link(t, fx.gray[0], filepath.Join(bad, "a.jpg"))
	cfg.Dir, cfg.Loop = drivers.Path(bad), true
	f, err = Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Next(context.Background()); err == nil || !strings.Contains(err.Error(), "no usable frame") {
		t.Errorf("only grey files: got %v, want \"no usable frame\"", err)
	}
}

// TestInspect: the colour check passes every colour frame made from the shared photos and refuses
// their grey and infrared-tinted versions; with the check off, only the headers are read.
func TestInspect(t *testing.T) {
	fx := fixtures(t)
	for i := range fx.colour {
		for _, c := range []struct {
			file string
			min  float64
			want verdict
		}{
			{fx.colour[i], DefaultMinChroma, frameOK},
			{fx.gray[i], DefaultMinChroma, frameGray},
			{fx.tinted[i], DefaultMinChroma, frameGray},
			{fx.gray[i], 0, frameOK},
		} {
			b, _ := os.ReadFile(c.file)
			if _, _, v, err := inspect(b, c.min); v != c.want {
				t.Errorf("%s with min_chroma %v: got verdict %d (%v), want %d", filepath.Base(filepath.Dir(c.file))+"/"+filepath.Base(c.file), c.min, v, err, c.want)
			}
		}
	}
	b, _ := os.ReadFile(fx.colour[0])
	if _, _, v, _ := inspect(append(b[:len(b)/2:len(b)/2], 0xFF, 0xD9), DefaultMinChroma); v != frameCorrupt {
		t.Errorf("scan data cut short: got verdict %d, want corrupt", v)
	}
	if _, _, v, _ := inspect([]byte{0xFF, 0xD8, 0xFF, 0xD9}, 0); v != frameCorrupt {
		t.Errorf("empty image: got verdict %d, want corrupt", v)
	}
}

// TestReplayScales: files wider than width are scaled down once (a 320-pixel frame to 160, the
// shared photos, up to 3,000 pixels wide, to 640) and stay colour frames.
func TestReplayScales(t *testing.T) {
	fx := fixtures(t)
	dir := t.TempDir()
	link(t, fx.colour[0], filepath.Join(dir, "a.jpg"))
	big := filepath.Join(testdataDir(t), "faces", "group", "pristin.jpg")
	abs, _ := filepath.Abs(big)
	link(t, abs, filepath.Join(dir, "b.jpg"))
	bw, bh := jpegSize(t, abs)
	cfg := testConfig(Dir)
	cfg.Dir = drivers.Path(dir)
	cfg.FPS = 30
	cfg.Width = 160
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var first [][]byte
	for i := 0; i < 4; i++ {
		fr := nextWithin(t, f, 5*time.Second)
		wantH := 120
		if i%2 == 1 {
			wantH = (bh*160 + bw/2) / bw
		}
		if fr.Width != 160 || fr.Height != wantH {
			t.Fatalf("frame %d: got %dx%d, want 160x%d", fr.Seq, fr.Width, fr.Height, wantH)
		}
		if w, h, v, err := inspect(fr.JPEG, DefaultMinChroma); v != frameOK || w != fr.Width || h != fr.Height {
			t.Fatalf("frame %d: got %dx%d verdict %d (%v), want a %dx%d colour JPEG", fr.Seq, w, h, v, err, fr.Width, fr.Height)
		}
		if i < 2 {
			first = append(first, bytes.Clone(fr.JPEG))
		} else if !bytes.Equal(fr.JPEG, first[i-2]) {
			t.Errorf("frame %d: the second loop's bytes differ from the first's", fr.Seq)
		}
		fr.JPEG[0] = 0 // the consumer's copy: the next loop must not see this
	}
}

func jpegSize(t *testing.T, name string) (int, int) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return c.Width, c.Height
}
