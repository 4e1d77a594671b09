package camera

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"golang.org/x/sys/unix"
)

// Restart timing of the ffmpeg watchdog.
const (
	firstBackoff = 500 * time.Millisecond
	termGrace    = time.Second // between SIGTERM and SIGKILL to the process group
	drainGrace   = time.Second // for the readers to drain the pipes of a process group that is gone
	tailLines    = 12          // lines of ffmpeg's stderr kept for the log
	logEvery     = time.Minute // at most one failure report per minute
)

// stream runs ffmpeg (RTSP, V4L2, HTTP MJPEG) and keeps its newest frame. One goroutine, run,
// owns the process: it starts it, watches it, kills and reaps it, and starts it again.
type stream struct {
	cfg    Config
	log    *slog.Logger
	prog   string   // the ffmpeg program, resolved
	args   []string // with the password, never logged
	shown  string   // the command line as logged, password replaced
	box    *mailbox
	c      counters
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	// Written only by run; read by tests after Close.
	pgids []int
	// maxBackoff is the longest backoff a restart waited on (its wait is half to all of it).
	maxBackoff atomic.Int64
}

var _ Frames = (*stream)(nil)

func openStream(cfg Config, password string, log *slog.Logger) (*stream, error) {
	prog, err := exec.LookPath(cfg.FFmpeg)
	if err != nil {
		return nil, fmt.Errorf("camera: ffmpeg: %w (install Debian's ffmpeg package, or set ffmpeg to its path)", err)
	}
	s := &stream{cfg: cfg, log: log, prog: prog, args: cfg.ffmpegArgs(password), box: newMailbox(), done: make(chan struct{})}
	shown := cfg.ffmpegArgs("")
	if password != "" {
		shown = cfg.ffmpegArgs("xxxxx")
	}
	s.shown = prog + " " + strings.Join(shown, " ")
	s.c.setState(drivers.StateStarting, nil)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s, nil
}

// ffmpegArgs is ffmpeg's command line: read the camera, keep FPS frames a second scaled to Width,
// write them as JPEG images to stdout.
func (c Config) ffmpegArgs(password string) []string {
	// A second of probing is plenty for one video stream and starts (and restarts) 2-3 s sooner
	// than ffmpeg's default five.
	a := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
		"-analyzeduration", "1000000", "-probesize", "1000000"}
	switch c.Mode {
	case RTSP:
		a = append(a, "-rtsp_transport", "tcp")
		if c.KeyframesOnly {
			a = append(a, "-skip_frame", "nokey")
		}
		a = append(a, "-i", withUser(c.URL, c.Username, password))
	case V4L2:
		a = append(a, "-f", "v4l2")
		if c.InputFormat != "" {
			a = append(a, "-input_format", c.InputFormat)
		}
		if c.InputSize != "" {
			a = append(a, "-video_size", c.InputSize)
		}
		a = append(a, "-i", string(c.Device))
	case MJPEG:
		a = append(a, "-f", "mpjpeg", "-i", withUser(c.URL, c.Username, password))
	}
	vf := "fps=" + strconv.FormatFloat(c.FPS, 'f', -1, 64)
	if c.Width > 0 {
		vf += fmt.Sprintf(",scale=w='min(%d,iw)':h=-2", c.Width)
	}
	return append(a, "-an", "-sn", "-dn", "-vf", vf, "-pix_fmt", "yuvj420p",
		"-c:v", "mjpeg", "-q:v", strconv.Itoa(c.Quality), "-f", "image2pipe", "pipe:1")
}

// withUser puts the credentials into the URL for ffmpeg, which reads them from there only.
func withUser(raw, user, password string) string {
	if user == "" {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func (s *stream) Next(ctx context.Context) (Frame, error) {
	return nextChecked(ctx, s.box, &s.c, s.cfg.MinChroma, s.log)
}

// nextChecked takes frames from box until one passes inspect.
func nextChecked(ctx context.Context, box *mailbox, c *counters, minChroma float64, log *slog.Logger) (Frame, error) {
	for {
		b, at, seq, err := box.take(ctx)
		if err != nil {
			return Frame{}, err
		}
		w, h, v, err := inspect(b, minChroma)
		switch v {
		case frameCorrupt:
			c.corrupt.Add(1)
			log.Debug("camera: corrupt frame skipped", "seq", seq, "err", err)
			continue
		case frameGray:
			c.gray.Add(1)
			continue
		}
		c.delivered(at)
		return Frame{JPEG: b, At: at, Seq: seq, Width: w, Height: h}, nil
	}
}

func (s *stream) Health() Health { return s.c.health() }

// Close stops ffmpeg (SIGTERM to its process group, SIGKILL after a second), reaps it and waits
// for the watchdog to end.
func (s *stream) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.box.close()
	})
	<-s.done
	return nil
}

// run is the watchdog: it runs ffmpeg until ctx is done, restarting it with exponential backoff
// and jitter whenever it dies or stalls.
func (s *stream) run(ctx context.Context) {
	defer close(s.done)
	s.log.Info("camera: starting ffmpeg", "cmd", s.shown)
	backoff := firstBackoff
	var lastReport time.Time
	suppressed := 0
	for {
		frames, tail, err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.c.restarts.Add(1)
		state := drivers.StateDegraded
		if frames == 0 {
			state = drivers.StateDown
		} else {
			backoff = firstBackoff
		}
		s.c.setState(state, err)
		if now := time.Now(); now.Sub(lastReport) >= logEvery {
			s.log.Warn("camera: ffmpeg restarting", "err", err, "frames", frames, "backoff", backoff,
				"suppressed", suppressed, "stderr", strings.Join(tail, "\n"))
			lastReport, suppressed = now, 0
		} else {
			suppressed++
		}
		if int64(backoff) > s.maxBackoff.Load() {
			s.maxBackoff.Store(int64(backoff))
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Duration(s.cfg.BackoffMax))
	}
}

// errStalled is why a running ffmpeg was stopped: it wrote no frame within the stall timeout.
var errStalled = errors.New("stalled")

// runOnce starts ffmpeg, moves its frames into the mailbox until it exits, stalls or ctx is done,
// then kills its whole process group and reaps it. It returns the frames it read, the last lines of
// ffmpeg's stderr and why it ended.
func (s *stream) runOnce(ctx context.Context) (frames uint64, tail []string, why error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("camera: pipe: %w", err)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return 0, nil, fmt.Errorf("camera: pipe: %w", err)
	}
	cmd := exec.Command(s.prog, s.args...)
	cmd.Stdout, cmd.Stderr = pw, ew
	// Its own process group, so that killing it kills whatever it started; and killed with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	pw.Close()
	ew.Close()
	if err != nil {
		pr.Close()
		er.Close()
		return 0, nil, fmt.Errorf("camera: start ffmpeg: %w", err)
	}
	pid := cmd.Process.Pid
	s.pgids = append(s.pgids, pid)

	exited := make(chan struct{})
	go func() { // ends when the process exits, which the end of this function ensures
		waitExited(pid)
		close(exited)
	}()
	var wg sync.WaitGroup
	lines := &ring{max: tailLines}
	wg.Go(func() { lines.read(er) })
	progress := make(chan struct{}, 1)
	readDone := make(chan error, 1)
	var got uint64
	wg.Go(func() {
		sp := NewSplitter(pr, s.cfg.MaxFrameKiB<<10)
		var corrupt uint64
		for {
			b, err := sp.Next()
			if c := sp.Corrupt(); c != corrupt {
				s.c.corrupt.Add(c - corrupt)
				corrupt = c
			}
			if err != nil {
				readDone <- err
				return
			}
			got++
			if s.box.put(b, time.Now()) {
				s.c.dropped.Add(1)
			}
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	})

	stall := time.NewTimer(time.Duration(s.cfg.StallTimeout))
	defer stall.Stop()
wait:
	for {
		select {
		case <-progress:
			stall.Reset(time.Duration(s.cfg.StallTimeout))
		case err := <-readDone:
			why = fmt.Errorf("ffmpeg closed its output: %w", err)
			break wait
		case <-exited:
			why = errors.New("ffmpeg exited")
			break wait
		case <-stall.C:
			why = fmt.Errorf("%w: no frame for %v", errStalled, time.Duration(s.cfg.StallTimeout))
			break wait
		case <-ctx.Done():
			why = ctx.Err()
			break wait
		}
	}

	// Stop it: politely (ffmpeg ends an RTSP session with TEARDOWN), then for sure. The group is
	// killed before the leader is reaped, so its id cannot have been reused.
	select {
	case <-exited:
	default:
		syscall.Kill(-pid, syscall.SIGTERM) // an error (ESRCH) means it is already gone
		select {
		case <-exited:
		case <-time.After(termGrace):
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL) // an error (ESRCH) means the group is already gone
	<-exited
	werr := cmd.Wait()
	// The group is gone, but what it wrote before it went may still be in the pipes: the readers
	// drain them to their end, so that the last frames count (a run that showed a frame resets
	// the backoff). Closing our ends after drainGrace unblocks them even if something outside the
	// group holds the pipes.
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainGrace):
	}
	pr.Close()
	er.Close()
	<-drained
	if werr != nil && !errors.Is(why, errStalled) && ctx.Err() == nil {
		why = fmt.Errorf("%w (%v)", why, werr)
	}
	return got, lines.lines(), fmt.Errorf("camera: %w", why)
}

// waitExited blocks until process pid has exited, without reaping it (WNOWAIT): the zombie keeps
// its process group id ours until cmd.Wait.
func waitExited(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// ring keeps the last lines of a stream, each cut to 300 bytes.
type ring struct {
	mu  sync.Mutex
	max int
	buf []string
}

func (r *ring) read(f *os.File) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 300 {
			line = line[:300] + "..."
		}
		if line == "" {
			continue
		}
		r.mu.Lock()
		r.buf = append(r.buf, line)
		if len(r.buf) > r.max {
			r.buf = r.buf[len(r.buf)-r.max:]
		}
		r.mu.Unlock()
	}
	// A line past the scanner's buffer ends the scan: keep draining, or ffmpeg blocks writing.
	io.Copy(io.Discard, f) // ends with our own close of the pipe
}

func (r *ring) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.buf...)
}
