// Package facecam is the camera source: a camera (drivers/camera: RTSP, USB, MJPEG, snapshot or a
// folder replay) whose frames go through the face pipeline (drivers/face, dlib). Importing it
// registers the [[source]] kind "camera"; it needs cgo (dlib), so the daemon selects it behind a
// build tag (agent/cmd/kaoqin/driver_camera.go).
//
// A camera has a role. A door camera signs trainees in: Next pulls frames and pushes them through
// a face.Stream, returning its readings (k of n frames must agree). A room camera never signs
// anyone in: its Next only waits, and the agent's spot checks call Capture (drivers.Capturer),
// which takes a short burst and returns one reading per face of the fullest frame (Intent
// Sighting, identified or not): the headcount.
//
//	[[source]]
//	name = "room-cam"
//	kind = "camera"
//	mode = "rtsp"
//	url  = "rtsp://192.168.1.64:554/Streaming/Channels/102"
//	role = "room"
//	burst = 3
//	[source.face]
//	models = "/var/lib/kaoqin/face-models"
package facecam

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/camera"
	"github.com/kaoqin/kaoqin/drivers/face"
	"github.com/kaoqin/kaoqin/drivers/face/dlib"
)

// Kind is the [[source]] kind of a camera.
const Kind = "camera"

func init() {
	drivers.Register(drivers.Driver{Kind: Kind, Config: func() drivers.SourceConfig { return DefaultConfig() }})
}

// Defaults of the spot-check keys.
const (
	DefaultBurst         = 3
	DefaultCaptureWithin = 20 * time.Second
)

// Config is a [[source]] table of kind "camera": the camera's keys (camera.Config, at the table's
// own level), the face pipeline's as the nested table [source.face], and a room camera's burst.
type Config struct {
	camera.Config
	Face face.Config `toml:"face"`
	// Burst is how many frames a room camera's spot check takes (1..10); the headcount is the
	// fullest frame's, and a face is identified only when k of them agree (face.Policy).
	Burst int `toml:"burst"`
	// CaptureWithin bounds one spot check: the burst's frames and their faces.
	CaptureWithin drivers.Duration `toml:"capture_within"`
}

// DefaultConfig is a camera config with every default set. Frames keep the camera's own width
// (width = 0): the detector finds no face narrower than about 80 pixels, so a room camera's spot
// check needs the full frame (docs/face.md); a door camera may set width = 640 to go faster.
func DefaultConfig() *Config {
	c := &Config{Config: camera.DefaultConfig(), Burst: DefaultBurst, CaptureWithin: drivers.Duration(DefaultCaptureWithin)}
	c.Width = 0
	return c
}

// Validate implements drivers.SourceConfig: every problem of the camera's keys, the face table's
// (named face.KEY) and the burst's.
func (c *Config) Validate() error {
	errs := []error{c.Config.Validate()}
	for _, fe := range drivers.FieldErrors(c.Face.Validate()) {
		key := "face"
		if fe.Key != "" {
			key += "." + fe.Key
		}
		errs = append(errs, drivers.Field(key, "%v", fe.Err))
	}
	if c.Burst < 1 || c.Burst > 10 {
		errs = append(errs, drivers.Field("burst", "%d is outside 1..10", c.Burst))
	}
	if d := time.Duration(c.CaptureWithin); d < time.Second || d > 5*time.Minute {
		errs = append(errs, drivers.Field("capture_within", "%v is outside 1s..5m", d))
	}
	return errors.Join(errs...)
}

// Open implements drivers.SourceConfig: the face models (shared by every camera of the process)
// and then the camera. A build without cgo fails here with dlib.ErrNoDlib.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Source, error) {
	p, err := dlib.NewPipeline(&c.Face)
	if err != nil {
		return nil, fmt.Errorf("facecam: %w", err)
	}
	return OpenWith(ctx, c, env, p)
}

// OpenWith opens the camera with a pipeline made by the caller (tests give one over any
// face.Recognizer). A room camera's source is a *Room (a drivers.Capturer); a door camera's is a
// *Source, which takes no spot checks: its frames belong to the door stream.
func OpenWith(ctx context.Context, c *Config, env drivers.Env, p *face.Pipeline) (drivers.Source, error) {
	frames, err := camera.Open(ctx, c.Config, env.Log)
	if err != nil {
		return nil, fmt.Errorf("facecam: %w", err)
	}
	s := &Source{cfg: c, env: env, p: p, frames: frames, since: time.Now(), closed: make(chan struct{})}
	if c.Role == camera.Door {
		s.stream = p.NewStream(env, drivers.Auto)
		return s, nil
	}
	return &Room{s}, nil
}

// Room is an open room camera: a Source that takes spot checks.
type Room struct{ *Source }

var _ drivers.Capturer = (*Room)(nil)

// Source is an open camera.
type Source struct {
	cfg    *Config
	env    drivers.Env
	p      *face.Pipeline
	frames camera.Frames
	stream *face.Stream // door cameras only; owned by Next's goroutine
	since  time.Time

	queue []drivers.Reading // a door frame's readings not yet returned

	capMu    sync.Mutex // one spot check at a time
	closed   chan struct{}
	once     sync.Once
	readings atomic.Uint64
	bad      atomic.Uint64 // frames the pipeline could not decode, evidence refused
	checks   atomic.Uint64
	lastErr  atomic.Pointer[string]
}

var (
	_ drivers.Source         = (*Source)(nil)
	_ drivers.TemplateSyncer = (*Source)(nil)
	_ drivers.HealthReporter = (*Source)(nil)
)

// Next implements drivers.Source. A door camera returns its sign-in readings; a room camera
// returns nothing and waits for ctx or Close (its readings come from Capture).
func (s *Source) Next(ctx context.Context) (drivers.Reading, error) {
	if s.stream == nil {
		select {
		case <-ctx.Done():
			return drivers.Reading{}, ctx.Err()
		case <-s.closed:
			return drivers.Reading{}, camera.ErrClosed
		}
	}
	for len(s.queue) == 0 {
		f, err := s.frames.Next(ctx)
		if err != nil {
			return drivers.Reading{}, err
		}
		rds, err := s.stream.Push(ctx, f.JPEG, f.At)
		if err != nil {
			if ctx.Err() != nil {
				return drivers.Reading{}, ctx.Err()
			}
			// A frame that does not decode, or evidence the store refused (its budget is full):
			// counted and skipped; a later frame makes the reading again.
			s.fail(err)
			continue
		}
		s.queue = rds
	}
	rd := s.queue[0]
	s.queue = s.queue[1:]
	s.readings.Add(1)
	return rd, nil
}

// Capture implements drivers.Capturer: a burst of Burst frames through Pipeline.SpotCheck, one
// reading per face of the fullest frame (identified or not), each with its crop and the frame.
func (r *Room) Capture(ctx context.Context) ([]drivers.Reading, error) {
	s := r.Source
	s.capMu.Lock()
	defer s.capMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.CaptureWithin))
	defer cancel()
	go func() { // Close ends a capture in progress
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var burst [][]byte
	var at time.Time
	for len(burst) < s.cfg.Burst {
		f, err := s.frames.Next(ctx)
		if err != nil {
			if len(burst) > 0 && ctx.Err() != nil {
				break // the time is up: decide the frames taken
			}
			s.fail(err)
			return nil, fmt.Errorf("facecam: capture: %w", err)
		}
		if at.IsZero() {
			at = f.At
		}
		burst = append(burst, f.JPEG)
	}
	rds, err := s.p.SpotCheck(context.WithoutCancel(ctx), s.env, burst, at)
	if err != nil && s.env.Evidence != nil && !errors.Is(err, face.ErrBadFrame) {
		// The evidence store refused the photos (its budget or the disk reserve is reached): the
		// headcount is still taken, without photos, and said loudly.
		s.fail(fmt.Errorf("evidence refused; the spot check goes on without photos: %w", err))
		noPhotos := s.env
		noPhotos.Evidence = nil
		rds, err = s.p.SpotCheck(context.WithoutCancel(ctx), noPhotos, burst, at)
	}
	if err != nil {
		s.fail(err)
		return nil, fmt.Errorf("facecam: capture: %w", err)
	}
	s.checks.Add(1)
	return rds, nil
}

// SyncTemplates implements drivers.TemplateSyncer: the pipeline's gallery becomes the roster's
// face templates; templates of another model refuse the set and keep the old gallery.
func (s *Source) SyncTemplates(ctx context.Context, ts []drivers.Template) (string, error) {
	return s.p.SyncTemplates(ctx, ts)
}

// Health implements drivers.HealthReporter: the camera's counters, with the pipeline's in Info.
func (s *Source) Health() drivers.Health {
	ch := s.frames.Health()
	h := ch.Source(s.since)
	h.Readings = s.readings.Load()
	h.Dropped += s.bad.Load()
	if e := s.lastErr.Load(); e != nil {
		h.LastErr = *e
		if h.State == drivers.StateOK {
			h.State = drivers.StateDegraded
		}
	}
	h.Info = map[string]string{
		"role":        string(s.cfg.Role),
		"frames":      strconv.FormatUint(ch.Frames, 10),
		"spot_checks": strconv.FormatUint(s.checks.Load(), 10),
		"model":       s.p.Model().Name,
	}
	return h
}

// Close implements drivers.Source: the camera stops (its ffmpeg reaped); a capture in progress
// ends.
func (s *Source) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.frames.Close()
}

func (s *Source) fail(err error) {
	s.bad.Add(1)
	msg := err.Error()
	s.lastErr.Store(&msg)
	if s.env.Log != nil {
		s.env.Log.Warn("camera frame skipped", "err", err)
	}
}
