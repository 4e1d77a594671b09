package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Frame is one JPEG image from a camera.
type Frame struct {
	JPEG []byte
	// At is when the frame reached this process (cameras' own timestamps are not trusted).
	At time.Time
	// Seq numbers the frames the source received, from 1; a gap means frames were dropped
	// because the consumer was slower than the camera, or were corrupt or grey.
	Seq           uint64
	Width, Height int
}

// Frames is a camera: a source of frames.
type Frames interface {
	// Next blocks until a frame that passed the checks (whole, colour) is available, ctx is done,
	// or the source is closed or has failed for good. It returns the newest frame: frames the
	// caller was too slow to take are dropped, not queued. An error other than ctx's means the
	// source is unusable until it is closed and opened again; sources that can recover (ffmpeg's
	// restarts, a snapshot URL that times out) keep trying inside Next instead.
	Next(ctx context.Context) (Frame, error)
	// Health returns the source's counters.
	Health() Health
	// Close stops the source and releases everything it started (the ffmpeg process group, HTTP
	// connections). It waits for that, but no longer than a few seconds.
	Close() error
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("camera: closed")

// Health is a source's counters since Open.
type Health struct {
	State drivers.State `json:"state"`
	// Frames is the number of frames Next returned.
	Frames uint64 `json:"frames"`
	// Dropped is frames the consumer was too slow to take (overwritten in the one-slot mailbox).
	Dropped uint64 `json:"dropped"`
	// Corrupt is frames that were truncated, malformed or could not be decoded.
	Corrupt uint64 `json:"corrupt"`
	// Gray is frames without colour (a grayscale JPEG, or an infrared night image in three
	// channels): no use for face matching, skipped.
	Gray uint64 `json:"gray"`
	// Restarts is how often the ffmpeg process was restarted (stalled or dead), or a snapshot or
	// replay failed and was retried.
	Restarts  uint64    `json:"restarts"`
	LastFrame time.Time `json:"last_frame,omitzero"`
	LastErr   string    `json:"last_error,omitempty"`
}

// Source turns the counters into the agent's health record: readings are frames, dropped are all
// skipped frames, reopens are restarts.
func (h Health) Source(since time.Time) drivers.Health {
	return drivers.Health{State: h.State, Since: since, LastErr: h.LastErr, Readings: h.Frames,
		Dropped: h.Dropped + h.Corrupt + h.Gray, Reopens: h.Restarts}
}

// counters are a source's Health, updated from its goroutines.
type counters struct {
	frames, dropped, corrupt, gray, restarts atomic.Uint64
	mu                                       sync.Mutex
	state                                    drivers.State
	lastFrame                                time.Time
	lastErr                                  string
}

func (c *counters) health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Health{State: c.state, Frames: c.frames.Load(), Dropped: c.dropped.Load(),
		Corrupt: c.corrupt.Load(), Gray: c.gray.Load(), Restarts: c.restarts.Load(),
		LastFrame: c.lastFrame, LastErr: c.lastErr}
}

func (c *counters) setState(s drivers.State, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = s
	if err != nil {
		c.lastErr = err.Error()
	}
}

func (c *counters) delivered(at time.Time) {
	c.frames.Add(1)
	c.mu.Lock()
	c.lastFrame, c.state = at, drivers.StateOK
	c.mu.Unlock()
}

// verdict is what inspect found in a frame.
type verdict int

const (
	frameOK verdict = iota
	frameCorrupt
	frameGray
)

// inspect checks that b is a whole JPEG image and has colour. With minChroma zero it reads only the
// headers (image/jpeg's DecodeConfig); otherwise it decodes the image and measures the spread of
// its chroma on a sample of pixels: below minChroma the frame counts as grey. An infrared camera's
// night image is three-channel but has (almost) no chroma spread, whatever its tint.
func inspect(b []byte, minChroma float64) (w, h int, v verdict, err error) {
	_, w, h, v, err = inspectImage(b, minChroma)
	return w, h, v, err
}

// inspectImage is inspect that also returns the decoded image (nil when only the headers were
// read).
func inspectImage(b []byte, minChroma float64) (img image.Image, w, h int, v verdict, err error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, 0, 0, frameCorrupt, err
	}
	w, h = cfg.Width, cfg.Height
	if w <= 0 || h <= 0 || w > 1<<14 || h > 1<<14 {
		return nil, w, h, frameCorrupt, fmt.Errorf("size %dx%d", w, h)
	}
	if minChroma <= 0 {
		return nil, w, h, frameOK, nil
	}
	img, err = jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, w, h, frameCorrupt, err
	}
	switch m := img.(type) {
	case *image.Gray:
		return img, w, h, frameGray, nil
	case *image.YCbCr:
		if chromaSpread(m) < minChroma {
			return img, w, h, frameGray, nil
		}
	}
	// CMYK: no camera sends it; decoded, so whole, and in colour as far as we can tell.
	return img, w, h, frameOK, nil
}

// chromaSpread measures how much colour an image has beyond a tint: over a grid of about 4,096
// pixels it fits Cb and Cr each as a straight line of Y and returns the mean absolute residual of
// the two, summed. A grey image has 0; so, nearly, has an infrared image in three channels, whose
// chroma is a tint that follows the brightness; a colour scene with people in it has 8 or more.
func chromaSpread(m *image.YCbCr) float64 {
	r := m.Rect
	if r.Empty() {
		return 0
	}
	sx, sy := max(1, r.Dx()/64), max(1, r.Dy()/64)
	var ys, cbs, crs []float64
	for y := r.Min.Y; y < r.Max.Y; y += sy {
		for x := r.Min.X; x < r.Max.X; x += sx {
			yi, ci := m.YOffset(x, y), m.COffset(x, y)
			if yi >= len(m.Y) || ci >= len(m.Cb) || ci >= len(m.Cr) {
				continue
			}
			ys = append(ys, float64(m.Y[yi]))
			cbs = append(cbs, float64(m.Cb[ci]))
			crs = append(crs, float64(m.Cr[ci]))
		}
	}
	return residual(ys, cbs) + residual(ys, crs)
}

// residual fits v = a + b*u by least squares and returns the mean absolute residual.
func residual(u, v []float64) float64 {
	n := float64(len(u))
	if n == 0 {
		return 0
	}
	var su, sv, suu, suv float64
	for i := range u {
		su += u[i]
		sv += v[i]
		suu += u[i] * u[i]
		suv += u[i] * v[i]
	}
	b := 0.0
	if d := n*suu - su*su; d > 1e-9 {
		b = (n*suv - su*sv) / d
	}
	a := (sv - b*su) / n
	var dev float64
	for i := range u {
		dev += abs(v[i] - a - b*u[i])
	}
	return dev / n
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// mailbox holds the newest frame: put overwrites, take waits. A slow consumer never holds up the
// producer; the overwritten frames are counted as dropped.
type mailbox struct {
	mu     sync.Mutex
	frame  []byte
	at     time.Time
	seq    uint64
	full   bool
	ready  chan struct{} // one token while full
	closed chan struct{}
}

func newMailbox() *mailbox {
	return &mailbox{ready: make(chan struct{}, 1), closed: make(chan struct{})}
}

// put stores b as the newest frame and reports whether it overwrote one not yet taken.
func (m *mailbox) put(b []byte, at time.Time) (overwrote bool) {
	m.mu.Lock()
	overwrote = m.full
	m.frame, m.at, m.full = b, at, true
	m.seq++
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
	return overwrote
}

// take waits for a frame, ctx or close.
func (m *mailbox) take(ctx context.Context) ([]byte, time.Time, uint64, error) {
	for {
		select {
		case <-m.closed:
			return nil, time.Time{}, 0, ErrClosed
		default:
		}
		select {
		case <-ctx.Done():
			return nil, time.Time{}, 0, ctx.Err()
		case <-m.closed:
			return nil, time.Time{}, 0, ErrClosed
		case <-m.ready:
		}
		m.mu.Lock()
		if m.full {
			b, at, seq := m.frame, m.at, m.seq
			m.frame, m.full = nil, false
			m.mu.Unlock()
			return b, at, seq, nil
		}
		m.mu.Unlock()
	}
}

func (m *mailbox) close() { close(m.closed) }
