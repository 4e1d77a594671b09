package camera

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// rtspServer is a tiny RTSP server on GStreamer's rtsp-server library (Debian's
// gir1.2-gst-rtsp-server-1.0 and python3-gi): it serves an MP4's H.264 track, as an IP camera does.
const rtspServer = `
import sys, gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
path, video = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address('127.0.0.1')
server.set_service('0')
f = GstRtspServer.RTSPMediaFactory()
f.set_launch('( filesrc location="%s" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )' % video)
f.set_shared(False)
server.get_mount_points().add_factory(path, f)
if server.attach(None) == 0:
    sys.exit('rtsp server: cannot listen')
print('listening', server.get_bound_port(), flush=True)
GLib.MainLoop().run()
`

// startRTSP serves video at rtsp://127.0.0.1:PORT/cam until the test ends.
func startRTSP(t *testing.T, video string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "rtsp.py")
	if err := os.WriteFile(script, []byte(rtspServer), 0o644); err != nil {
		t.Fatal(err)
	}
	// Debian's python3, which has python3-gi, whatever else is first in PATH.
	cmd := exec.Command("/usr/bin/python3", script, "/cam", video)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the RTSP server (make deps installs python3-gi and gir1.2-gst-rtsp-server-1.0): %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		port, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("RTSP server: got %q, want \"listening PORT\"; stderr: %s", l, stderr.String())
		}
		return "rtsp://127.0.0.1:" + port + "/cam"
	case <-time.After(20 * time.Second):
		t.Fatalf("RTSP server did not start within 20s")
	}
	return ""
}

// TestRTSP reads an H.264 stream from a real RTSP server through the real ffmpeg, scaled to the
// configured width, and leaves no process behind.
func TestRTSP(t *testing.T) {
	fx := fixtures(t)
	url := startRTSP(t, fx.video)
	cfg := testConfig(RTSP)
	cfg.URL = url
	cfg.Width = 160
	cfg.FPS = 5
	cfg.StallTimeout = drivers.Duration(5 * time.Second)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := f.(*stream)
	var last uint64
	for i := 0; i < 4; i++ {
		fr := nextWithin(t, f, 15*time.Second)
		if fr.Width != 160 || fr.Height != 120 {
			t.Fatalf("frame %d: got %dx%d, want 160x120 (scaled from 320x240)", fr.Seq, fr.Width, fr.Height)
		}
		if fr.Seq <= last {
			t.Fatalf("got seq %d after %d, want it increasing", fr.Seq, last)
		}
		last = fr.Seq
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h := f.Health()
	if h.Frames != 4 || h.Corrupt != 0 || h.Gray != 0 {
		t.Errorf("health: got %+v, want 4 frames, none corrupt or grey", h)
	}
	for _, pg := range s.pgids {
		if left := leftBehind(pg); left != nil {
			t.Errorf("process group %d after Close: got %v left, want nothing", pg, left)
		}
	}
	if _, err := f.Next(context.Background()); err != ErrClosed {
		t.Errorf("Next after Close: got %v, want ErrClosed", err)
	}
}

// mjpegServer serves the frames as a multipart MJPEG stream at 20 frames a second, behind Digest
// authentication (MD5, qop=auth) as ffmpeg's HTTP client answers it.
func mjpegServer(t *testing.T, frames [][]byte, user, password string) *httptest.Server {
	const realm, nonce = "camera", "0123456789abcdef"
	h := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := parseParams(strings.TrimPrefix(r.Header.Get("Authorization"), "Digest "))
		want := h(h(user+":"+realm+":"+password) + ":" + nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + h(r.Method+":"+p["uri"]))
		if p["username"] != user || p["response"] != want {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="%s", nonce="%s", qop="auth", algorithm=MD5`, realm, nonce))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary=frame")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 600; i++ {
			f := frames[i%len(frames)]
			if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(f)); err != nil {
				return
			}
			if _, err := w.Write(append(f, "\r\n"...)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func passwordFile(t *testing.T, password string) drivers.Path {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return drivers.Path(p)
}

// TestMJPEGDigest reads an HTTP MJPEG stream that asks for Digest credentials through the real
// ffmpeg; with the wrong password ffmpeg gets nothing and is restarted, and the failure is in Health.
func TestMJPEGDigest(t *testing.T) {
	fx := fixtures(t)
	srv := mjpegServer(t, readAll(t, fx.colour), "admin", "s3cret pass")

	cfg := testConfig(MJPEG)
	cfg.URL = srv.URL + "/video"
	cfg.Username = "admin"
	cfg.PasswordFile = passwordFile(t, "s3cret pass")
	cfg.StallTimeout = drivers.Duration(5 * time.Second)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if fr := nextWithin(t, f, 15*time.Second); fr.Width != 320 || fr.Height != 240 {
			t.Fatalf("got %dx%d, want 320x240", fr.Width, fr.Height)
		}
	}
	if s := f.(*stream).shown; strings.Contains(s, "s3cret") || !strings.Contains(s, "admin:xxxxx@") {
		t.Errorf("logged command line: got %q, want the password replaced by xxxxx", s)
	}
	f.Close()

	cfg.PasswordFile = passwordFile(t, "wrong")
	var logs syncBuffer
	f, err = Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitFor(t, "a restart", 15*time.Second, func() bool { return f.Health().Restarts >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if fr, err := f.Next(ctx); err != context.DeadlineExceeded {
		t.Fatalf("wrong password: got frame %d, err %v; want no frame (deadline exceeded)", fr.Seq, err)
	}
	h := f.Health()
	if h.Frames != 0 || h.Restarts == 0 || h.State != drivers.StateDown || !strings.Contains(h.LastErr, "exit status") {
		t.Errorf("wrong password: got health %+v, want no frames, restarts, state down, ffmpeg's exit status", h)
	}
	if !strings.Contains(logs.String(), "401") {
		t.Errorf("log: got %q, want ffmpeg's 401 from its stderr", logs.String())
	}
}

// TestV4L2MissingDevice runs the real ffmpeg on a device that does not exist: no frame, restarts
// with backoff, and the reason in Health.
func TestV4L2MissingDevice(t *testing.T) {
	cfg := testConfig(V4L2)
	cfg.Device = drivers.Path(filepath.Join(t.TempDir(), "video9"))
	cfg.InputFormat, cfg.InputSize = "mjpeg", "1280x720"
	args := strings.Join(cfg.ffmpegArgs(""), " ")
	if want := "-f v4l2 -input_format mjpeg -video_size 1280x720 -i " + string(cfg.Device); !strings.Contains(args, want) {
		t.Fatalf("args: got %q, want it to contain %q", args, want)
	}
	var logs syncBuffer
	start := time.Now()
	f, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitFor(t, "three restarts", 15*time.Second, func() bool { return f.Health().Restarts >= 3 })
	// Backoff, not a hot loop: the waits after the first two failures are at least 0.25 s and
	// 0.5 s (half of 0.5 s and of 1 s).
	if d := time.Since(start); d < 750*time.Millisecond {
		t.Errorf("three restarts took %v, want at least 750ms of backoff", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := f.Next(ctx); err != context.DeadlineExceeded {
		t.Fatalf("got %v, want no frame (deadline exceeded)", err)
	}
	if h := f.Health(); h.State != drivers.StateDown || h.Frames != 0 {
		t.Errorf("health: got %+v, want down, no frames", h)
	}
	if !strings.Contains(logs.String(), "video9") || strings.Count(logs.String(), "ffmpeg restarting") != 1 {
		t.Errorf("log: got %q, want one report (rate-limited) naming the device", logs.String())
	}
}

// fakeFFmpeg writes a shell script that stands in for ffmpeg and returns its path and the file in
// fakeConfig is an RTSP camera run by the fake ffmpeg prog (the URL is never opened).
func fakeConfig(prog drivers.Path) Config {
	cfg := testConfig(RTSP)
	cfg.URL = "rtsp://127.0.0.1:9/unused"
	cfg.FFmpeg = string(prog)
	return cfg
}

// catFrames is a shell command writing n of the colour fixtures, one after another, at once.
func catFrames(fx fixture, n int) string {
	var files []string
	for i := range n {
		files = append(files, fmt.Sprintf("%q", fx.colour[i%len(fx.colour)]))
	}
	return "cat " + strings.Join(files, " ")
}

// which each run appends its process id.
func fakeFFmpeg(t *testing.T, body string) (drivers.Path, string) {
	t.Helper()
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	script := filepath.Join(dir, "ffmpeg")
	text := "#!/bin/sh\necho $$ >> " + pids + "\n" + body + "\n"
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return drivers.Path(script), pids
}

func readPids(t *testing.T, file string) []int {
	t.Helper()
	b, _ := os.ReadFile(file)
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchdogStall: an ffmpeg that writes two frames and hangs, ignoring SIGTERM, with a child
// of its own, is killed with its whole group, reaped and started again.
func TestWatchdogStall(t *testing.T) {
	fx := fixtures(t)
	prog, pids := fakeFFmpeg(t, fmt.Sprintf(`trap '' TERM
sleep 1000 &
cat %q %q
echo "fake ffmpeg: stalling" >&2
while :; do sleep 1; done`, fx.colour[0], fx.colour[1]))
	cfg := fakeConfig(prog)
	var logs syncBuffer
	f, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	nextWithin(t, f, 5*time.Second)
	waitFor(t, "a second run of the fake ffmpeg", 8*time.Second, func() bool { return len(readPids(t, pids)) >= 2 })
	first := readPids(t, pids)[:1]
	if left := leftBehind(first[0]); left != nil {
		t.Errorf("first run's process group %d after the restart: got %v left, want nothing", first[0], left)
	}
	if h := f.Health(); h.Restarts < 1 || !strings.Contains(h.LastErr, "stalled") {
		t.Errorf("health: got %+v, want a restart for a stall", h)
	}
	if !strings.Contains(logs.String(), "fake ffmpeg: stalling") {
		t.Errorf("log: got %q, want the fake's stderr line", logs.String())
	}
	f.Close()
	for _, pg := range readPids(t, pids) {
		if left := leftBehind(pg); left != nil {
			t.Errorf("process group %d after Close: got %v left, want nothing", pg, left)
		}
	}
}

// TestWatchdogLatestFrameWins: ffmpeg writes 40 frames at once to a consumer that takes none
// until later: it gets the 40th, and 39 are counted as dropped.
func TestWatchdogLatestFrameWins(t *testing.T) {
	fx := fixtures(t)
	prog, _ := fakeFFmpeg(t, catFrames(fx, 40)+"\nexec sleep 1000")
	cfg := fakeConfig(prog)
	cfg.StallTimeout = drivers.Duration(30 * time.Second)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitFor(t, "39 frames dropped", 10*time.Second, func() bool { return f.Health().Dropped == 39 })
	fr := nextWithin(t, f, time.Second)
	want, _ := os.ReadFile(fx.colour[39%len(fx.colour)])
	if fr.Seq != 40 || !bytes.Equal(fr.JPEG, want) {
		t.Errorf("got frame %d (%d bytes), want the newest, 40 (%d bytes)", fr.Seq, len(fr.JPEG), len(want))
	}
}

// TestBadFramesSkipped: truncated, undecodable, grey and infrared frames are counted and skipped;
// the colour frame after them is delivered.
func TestBadFramesSkipped(t *testing.T) {
	fx := fixtures(t)
	dir := t.TempDir()
	good, _ := os.ReadFile(fx.colour[3])
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	half := write("half", good[:len(good)/2])                                   // cut by the next SOI: the splitter drops it
	short := write("short", append(good[:len(good)/2:len(good)/2], 0xFF, 0xD9)) // well framed, scan data cut short
	var body strings.Builder
	for _, p := range []string{half, short, fx.gray[3], fx.tinted[3], fx.colour[3]} {
		fmt.Fprintf(&body, "cat %q; sleep 0.3\n", p)
	}
	body.WriteString("exec sleep 1000")
	prog, _ := fakeFFmpeg(t, body.String())
	cfg := fakeConfig(prog)
	cfg.StallTimeout = drivers.Duration(30 * time.Second)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr := nextWithin(t, f, 10*time.Second)
	if !bytes.Equal(fr.JPEG, good) {
		t.Errorf("got a frame of %d bytes, want the colour frame (%d bytes)", len(fr.JPEG), len(good))
	}
	h := f.Health()
	if h.Corrupt != 2 || h.Gray != 2 || h.Frames != 1 || h.Dropped != 0 {
		t.Errorf("health: got %+v, want 2 corrupt, 2 grey, 1 frame, none dropped", h)
	}
}

// TestCloseWhileStarting: Close returns promptly while ffmpeg is still waiting for its camera,
// and kills it.
func TestCloseWhileStarting(t *testing.T) {
	prog, pids := fakeFFmpeg(t, "exec sleep 1000")
	cfg := fakeConfig(prog)
	cfg.StallTimeout = drivers.Duration(30 * time.Second)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fake ffmpeg to start", 5*time.Second, func() bool { return len(readPids(t, pids)) == 1 })
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := f.Next(context.Background()); err != ErrClosed {
			t.Errorf("pending Next: got %v, want ErrClosed", err)
		}
	})
	closed := make(chan struct{})
	go func() { f.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s")
	}
	wg.Wait()
	if pg := readPids(t, pids)[0]; leftBehind(pg) != nil {
		t.Errorf("process group %d after Close: got %v left, want nothing", pg, leftBehind(pg))
	}
}

func TestOpenMissingFFmpeg(t *testing.T) {
	cfg := fakeConfig(drivers.Path(filepath.Join(t.TempDir(), "no-ffmpeg")))
	if _, err := Open(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "camera: ffmpeg") {
		t.Errorf("got %v, want an error naming ffmpeg", err)
	}
}

// TestWatchdogDies: an ffmpeg that sends one frame and exits is restarted each time, the backoff
// starting over after each run that had a frame, and each run is reaped.
func TestWatchdogDies(t *testing.T) {
	fx := fixtures(t)
	prog, pids := fakeFFmpeg(t, fmt.Sprintf("cat %q\necho 'fake ffmpeg: connection lost' >&2\nexit 1", fx.colour[6]))
	cfg := fakeConfig(prog)
	cfg.BackoffMax = drivers.Duration(time.Minute)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// With the reset every restart backs off by the first step; without it the 5th would wait on
	// 4 s. Judged by the backoff the watchdog chose, not by a clock: a loaded machine is slow.
	for i := 0; i < 5; i++ {
		nextWithin(t, f, 20*time.Second)
	}
	f.Close()
	if got := time.Duration(f.(*stream).maxBackoff.Load()); got > firstBackoff {
		t.Errorf("longest backoff over 5 runs that each had a frame: got %v, want %v (reset after every run with a frame)", got, firstBackoff)
	}
	h := f.Health()
	if h.Restarts < 4 || h.State == drivers.StateDown || !strings.Contains(h.LastErr, "exit status 1") {
		t.Errorf("health: got %+v, want 4 or more restarts, not down (frames come), exit status 1", h)
	}
	for _, pg := range readPids(t, pids) {
		if left := leftBehind(pg); left != nil {
			t.Errorf("process group %d: got %v left, want nothing", pg, left)
		}
	}
}

// TestFramesWrittenBeforeExitCount: ffmpeg writes 40 frames and dies at once. The frames still
// in the pipe when it is reaped are read all the same: the run counts 40 (the newest kept, 39
// dropped), so it counts as a run with frames, whatever the reader's pace.
func TestFramesWrittenBeforeExitCount(t *testing.T) {
	fx := fixtures(t)
	prog, _ := fakeFFmpeg(t, catFrames(fx, 40)+"\nexit 1")
	cfg := fakeConfig(prog)
	cfg.BackoffMax = drivers.Duration(time.Minute)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitFor(t, "the first run over", 10*time.Second, func() bool { return f.Health().Restarts >= 1 })
	if h := f.Health(); h.Restarts != 1 || h.Dropped != 39 {
		t.Errorf("after the first run: %d restarts, %d frames dropped; want 1 and 39 (all 40 read, the newest kept)", h.Restarts, h.Dropped)
	}
}
