package camera

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
)

// testdataDir is the shared photo set (testkit.Testdata).
func testdataDir(t testing.TB) string {
	t.Helper()
	dir, err := testkit.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	photos, _ := filepath.Glob(filepath.Join(dir, "faces", "*", "*.jpg"))
	if len(photos) == 0 {
		t.Fatalf("no photos in %s/faces/*/*.jpg: set KAOQIN_TESTDATA to the shared test data folder", dir)
	}
	return dir
}

// fixture is what the tests make from the shared photos with the real ffmpeg, once per run, in a
// folder of their own: never copies of the photos in the project.
type fixture struct {
	dir    string   // the folder holding everything below
	colour []string // 320x240 colour frames, one per photo, in order
	gray   []string // the same frames in grey (one channel)
	tinted []string // the same frames as an infrared camera at night sends them: grey with a tint, three channels
	video  string   // an H.264 MP4 of the photos, 10 fps, 2 photos a second, 320x240
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func fixtures(t testing.TB) fixture {
	t.Helper()
	src := testdataDir(t)
	fixOnce.Do(func() { fix, fixErr = makeFixtures(src) })
	if fixErr != nil {
		t.Fatalf("making test frames with ffmpeg: %v", fixErr)
	}
	return fix
}

func makeFixtures(src string) (fixture, error) {
	var f fixture
	dir, err := os.MkdirTemp("", "camera-test-")
	if err != nil {
		return f, err
	}
	f.dir = dir
	photos, _ := filepath.Glob(filepath.Join(src, "faces", "*", "*.jpg"))
	sort.Strings(photos)
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		return f, err
	}
	for i, p := range photos { // image2 wants numbered names
		abs, _ := filepath.Abs(p)
		if err := os.Symlink(abs, filepath.Join(in, fmt.Sprintf("p%03d.jpg", i))); err != nil {
			return f, err
		}
	}
	// The large photos are decoded once, into the colour frames; the rest is made from those.
	fit := "scale=320:240:force_original_aspect_ratio=decrease,pad=320:240:(ow-iw)/2:(oh-ih)/2"
	colour := filepath.Join(dir, "colour")
	outs := []struct {
		name, from, vf string
		list           *[]string
	}{
		{"colour", filepath.Join(in, "p%03d.jpg"), fit + ",format=yuvj420p", &f.colour},
		{"gray", filepath.Join(colour, "f%03d.jpg"), "format=gray", &f.gray},
		{"tinted", filepath.Join(colour, "f%03d.jpg"), "format=gray,format=rgb24,colorchannelmixer=rr=0.8:rg=0.1:gg=0.7:bb=0.95:br=0.05,format=yuvj420p", &f.tinted},
	}
	for _, o := range outs {
		d := filepath.Join(dir, o.name)
		if err := os.Mkdir(d, 0o755); err != nil {
			return f, err
		}
		if err := ffmpeg("-framerate", "1", "-i", o.from, "-vf", o.vf, "-q:v", "5", filepath.Join(d, "f%03d.jpg")); err != nil {
			return f, err
		}
		*o.list, _ = filepath.Glob(filepath.Join(d, "*.jpg"))
		if len(*o.list) != len(photos) {
			return f, fmt.Errorf("%s: got %d frames, want %d", o.name, len(*o.list), len(photos))
		}
	}
	f.video = filepath.Join(dir, "photos.mp4")
	err = ffmpeg("-framerate", "2", "-i", filepath.Join(colour, "f%03d.jpg"), "-vf", "format=yuv420p", "-r", "10",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-bf", "0", f.video)
	return f, err
}

func ffmpeg(args ...string) error {
	cmd := exec.Command("ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func readAll(t testing.TB, names []string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// syncBuffer is a bytes.Buffer for a logger written from the source's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is a valid config of the given mode with fast timings.
func testConfig(mode Mode) Config {
	c := DefaultConfig()
	c.Mode = mode
	c.FPS = 10
	c.Width = 320
	c.StallTimeout = drivers.Duration(time.Second)
	c.BackoffMax = drivers.Duration(time.Second)
	c.RequestTimeout = drivers.Duration(2 * time.Second)
	return c
}

// leftBehind lists what is left of the process group that pgid's leader started: its members
// that are not zombies (killed but not yet reaped: the fake ffmpeg's own child, once orphaned, is
// reaped by init, not by us), and the leader itself while it exists at all (we reap it).
func leftBehind(pgid int) []string {
	var out []string
	if syscall.Kill(pgid, 0) != syscall.ESRCH {
		out = append(out, fmt.Sprintf("leader %d not reaped", pgid))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, fmt.Sprintf("%s: state %s", p, f[0]))
		}
	}
	return out
}

// nextWithin calls Next with a timeout.
func nextWithin(t *testing.T, f Frames, d time.Duration) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fr, err := f.Next(ctx)
	if err != nil {
		t.Fatalf("Next: got %v, want a frame within %v (health %+v)", err, d, f.Health())
	}
	if !bytes.HasPrefix(fr.JPEG, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(fr.JPEG, []byte{0xFF, 0xD9}) {
		t.Fatalf("frame %d: got %d bytes not from FF D8 to FF D9", fr.Seq, len(fr.JPEG))
	}
	return fr
}
