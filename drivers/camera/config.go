package camera

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Mode is how frames are fetched.
type Mode string

// Modes. The first three run ffmpeg; snapshot and dir need no video decoding.
const (
	RTSP     Mode = "rtsp"     // an IP camera's RTSP stream (H.264/H.265/MJPEG), over TCP
	V4L2     Mode = "v4l2"     // a USB camera (/dev/videoN)
	MJPEG    Mode = "mjpeg"    // an HTTP multipart MJPEG stream
	Snapshot Mode = "snapshot" // an HTTP snapshot URL (ONVIF GetSnapshotUri), polled
	Dir      Mode = "dir"      // JPEG files in a folder, replayed in name order
)

// Role is what the agent does with a camera's faces.
type Role string

// Roles.
const (
	// Door cameras watch an entrance: a face they are sure of is a sign-in or sign-out.
	Door Role = "door"
	// Room cameras watch the classroom: their faces are sightings and spot checks, never a
	// sign-in.
	Room Role = "room"
)

// Config is one camera, as a [[source]] table of kind "camera" writes it. DefaultConfig gives the
// defaults; the agent decodes the table over them, makes the paths absolute and calls Validate.
type Config struct {
	Mode Mode `toml:"mode"`
	// URL is the stream or snapshot address (rtsp://, http://, https://), without credentials.
	URL string `toml:"url"`
	// Device is the V4L2 device for mode v4l2.
	Device drivers.Path `toml:"device"`
	// Dir is the folder of JPEG files for mode dir.
	Dir drivers.Path `toml:"dir"`
	// Loop replays the folder from its first file after the last (mode dir); without it Next
	// returns io.EOF after the last file.
	Loop bool `toml:"loop"`
	Role Role `toml:"role"`
	// FPS is the frames per second delivered (ffmpeg's fps filter, the snapshot poll rate, the
	// replay rate): 0.1 to 30.
	FPS float64 `toml:"fps"`
	// Width scales frames to this width, keeping the aspect ratio; never up: ffmpeg's, and the
	// replay's files. Snapshots are passed as the camera sends them. 0 keeps every frame's size.
	Width int `toml:"width"`
	// Quality is ffmpeg's JPEG quality scale, 2 (best, largest) to 31.
	Quality int `toml:"quality"`
	// InputFormat and InputSize ask a V4L2 camera for a pixel format ("mjpeg", "yuyv422") and a
	// size ("1280x720"); empty leaves the camera's default.
	InputFormat string `toml:"input_format"`
	InputSize   string `toml:"input_size"`
	// KeyframesOnly makes ffmpeg decode only an RTSP stream's key frames: far less CPU, at the
	// stream's key frame interval (often 1-4 s) at best.
	KeyframesOnly bool `toml:"keyframes_only"`
	// Username and PasswordFile are the camera's credentials (RTSP and HTTP, Digest or Basic as
	// the camera asks). The password file holds the password alone; a final newline is ignored.
	Username     string       `toml:"username"`
	PasswordFile drivers.Path `toml:"password_file"`
	// StallTimeout restarts ffmpeg when it has written no frame for this long, and bounds how long
	// the first frame may take after a start.
	StallTimeout drivers.Duration `toml:"stall_timeout"`
	// RequestTimeout bounds one snapshot request.
	RequestTimeout drivers.Duration `toml:"request_timeout"`
	// BackoffMax caps the wait between restarts (it doubles from half a second, with jitter).
	BackoffMax drivers.Duration `toml:"backoff_max"`
	// FFmpeg is the ffmpeg program: a name looked up in PATH, or an absolute path. A string, not a
	// drivers.Path, so that the agent leaves the bare name "ffmpeg" alone.
	FFmpeg string `toml:"ffmpeg"`
	// MaxFrameKiB drops frames larger than this many KiB as corrupt.
	MaxFrameKiB int `toml:"max_frame_kib"`
	// MinChroma is the colour check's floor (see inspect): frames with less colour than this are
	// counted as grey and skipped. 0 turns the check off and checks only the JPEG headers, which
	// saves decoding every frame.
	MinChroma float64 `toml:"min_chroma"`
}

// Defaults.
const (
	DefaultFPS            = 2
	DefaultWidth          = 640
	DefaultQuality        = 5
	DefaultStallTimeout   = 10 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultBackoffMax     = 30 * time.Second
	DefaultMaxFrameKiB    = 4096
	DefaultMinChroma      = 4.0
)

// DefaultConfig is a config with every default set and no mode.
func DefaultConfig() Config {
	return Config{
		Loop:           true,
		Role:           Room,
		FPS:            DefaultFPS,
		Width:          DefaultWidth,
		Quality:        DefaultQuality,
		StallTimeout:   drivers.Duration(DefaultStallTimeout),
		RequestTimeout: drivers.Duration(DefaultRequestTimeout),
		BackoffMax:     drivers.Duration(DefaultBackoffMax),
		FFmpeg:         "ffmpeg",
		MaxFrameKiB:    DefaultMaxFrameKiB,
		MinChroma:      DefaultMinChroma,
	}
}

var inputSize = regexp.MustCompile(`^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$`)

// usesFFmpeg reports whether the mode runs ffmpeg.
func (m Mode) usesFFmpeg() bool { return m == RTSP || m == V4L2 || m == MJPEG }

// Validate checks every key without opening anything and returns every problem, each a
// *drivers.FieldError naming the key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, drivers.Field(key, format, a...)) }
	notFor := func(key string, set bool) {
		if set {
			bad(key, "does not apply to mode %s", c.Mode)
		}
	}
	switch c.Mode {
	case RTSP, MJPEG, Snapshot:
		schemes := map[Mode][]string{RTSP: {"rtsp", "rtsps"}, MJPEG: {"http", "https"}, Snapshot: {"http", "https"}}[c.Mode]
		if err := checkURL(c.URL, schemes); err != nil {
			bad("url", "%v", err)
		}
		notFor("device", c.Device != "")
		notFor("dir", c.Dir != "")
	case V4L2:
		if c.Device == "" {
			bad("device", "required for mode v4l2 (\"/dev/video0\")")
		}
		notFor("url", c.URL != "")
		notFor("dir", c.Dir != "")
	case Dir:
		if c.Dir == "" {
			bad("dir", "required for mode dir (a folder of .jpg files)")
		}
		notFor("url", c.URL != "")
		notFor("device", c.Device != "")
	case "":
		bad("mode", "required: rtsp, v4l2, mjpeg, snapshot or dir")
	default:
		bad("mode", "%q: want rtsp, v4l2, mjpeg, snapshot or dir", c.Mode)
	}
	if c.Mode != V4L2 {
		notFor("input_format", c.InputFormat != "")
		notFor("input_size", c.InputSize != "")
	} else if c.InputSize != "" && !inputSize.MatchString(c.InputSize) {
		bad("input_size", "%q: want WIDTHxHEIGHT (\"1280x720\")", c.InputSize)
	}
	if c.Mode != RTSP {
		notFor("keyframes_only", c.KeyframesOnly)
	}
	if c.Mode == Dir || c.Mode == V4L2 {
		notFor("username", c.Username != "")
		notFor("password_file", c.PasswordFile != "")
	} else if (c.Username == "") != (c.PasswordFile == "") {
		bad("password_file", "username and password_file go together")
	}
	if c.Role != Door && c.Role != Room {
		bad("role", "%q: want door (sign-ins) or room (spot checks)", c.Role)
	}
	if !(c.FPS >= 0.1 && c.FPS <= 30) {
		bad("fps", "%v is outside 0.1..30", c.FPS)
	}
	if c.Width != 0 && (c.Width < 64 || c.Width > 8192) {
		bad("width", "%d: want 0 (the camera's own) or 64..8192", c.Width)
	}
	if c.Quality < 2 || c.Quality > 31 {
		bad("quality", "%d is outside 2 (best)..31", c.Quality)
	}
	stall := time.Duration(c.StallTimeout)
	if stall < time.Second || stall > 10*time.Minute {
		bad("stall_timeout", "%v is outside 1s..10m", stall)
	} else if c.FPS > 0 && float64(stall) < 2*float64(time.Second)/c.FPS {
		bad("stall_timeout", "%v is shorter than two frames at %v fps", stall, c.FPS)
	}
	if d := time.Duration(c.RequestTimeout); d < 100*time.Millisecond || d > time.Minute {
		bad("request_timeout", "%v is outside 100ms..1m", d)
	}
	if d := time.Duration(c.BackoffMax); d < time.Second || d > time.Hour {
		bad("backoff_max", "%v is outside 1s..1h", d)
	}
	if c.Mode.usesFFmpeg() && c.FFmpeg == "" {
		bad("ffmpeg", "required: the ffmpeg program (\"ffmpeg\" looks in PATH)")
	} else if strings.Contains(c.FFmpeg, "/") && !filepath.IsAbs(c.FFmpeg) {
		bad("ffmpeg", "%q: want a name looked up in PATH or an absolute path", c.FFmpeg)
	}
	if c.MaxFrameKiB < 16 || c.MaxFrameKiB > 65536 {
		bad("max_frame_kib", "%d is outside 16..65536", c.MaxFrameKiB)
	}
	if !(c.MinChroma >= 0 && c.MinChroma <= 64) {
		bad("min_chroma", "%v is outside 0 (off)..64", c.MinChroma)
	}
	return errors.Join(errs...)
}

func checkURL(s string, schemes []string) error {
	if s == "" {
		return fmt.Errorf("required: %s://host/path", schemes[0])
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	switch {
	case !ok:
		return fmt.Errorf("scheme %q: want %v", u.Scheme, schemes)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return errors.New("credentials do not belong in the url (it is logged): use username and password_file")
	}
	return nil
}

// interval is the time between frames at c.FPS.
func (c Config) interval() time.Duration {
	return time.Duration(float64(time.Second) / c.FPS)
}
