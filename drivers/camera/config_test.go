package camera

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/pelletier/go-toml/v2"
)

func TestConfigValid(t *testing.T) {
	for _, c := range []Config{
		func() Config {
			c := DefaultConfig()
			c.Mode, c.URL = RTSP, "rtsp://192.0.2.10:554/Streaming/Channels/102"
			return c
		}(),
		func() Config {
			c := DefaultConfig()
			c.Mode, c.URL, c.Username, c.PasswordFile = Snapshot, "http://192.0.2.10/onvif/snapshot", "viewer", "/etc/kaoqin/cam.password"
			return c
		}(),
		func() Config {
			c := DefaultConfig()
			c.Mode, c.Device, c.InputFormat, c.InputSize, c.Role = V4L2, "/dev/video0", "mjpeg", "1280x720", Door
			return c
		}(),
		func() Config { c := DefaultConfig(); c.Mode, c.Dir, c.FPS = Dir, "demo/faces", 0.5; return c }(),
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: got %v, want valid", c.Mode, err)
		}
	}
}

// TestConfigInvalid: every problem is reported, each as a *drivers.FieldError naming its key.
func TestConfigInvalid(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		keys []string
	}{
		{"no mode", func(c *Config) {}, []string{"mode"}},
		{"unknown mode", func(c *Config) { c.Mode = "hls" }, []string{"mode"}},
		{"rtsp without url", func(c *Config) { c.Mode = RTSP }, []string{"url"}},
		{"credentials in the url", func(c *Config) { c.Mode, c.URL = RTSP, "rtsp://admin:12345@192.0.2.1/" }, []string{"url"}},
		{"http url for rtsp", func(c *Config) { c.Mode, c.URL = RTSP, "http://192.0.2.1/" }, []string{"url"}},
		{"snapshot with device and dir", func(c *Config) { c.Mode, c.URL, c.Device, c.Dir = Snapshot, "http://h/s", "/dev/video0", "x" }, []string{"device", "dir"}},
		{"v4l2 without device", func(c *Config) { c.Mode = V4L2 }, []string{"device"}},
		{"v4l2 bad size, credentials", func(c *Config) { c.Mode, c.Device, c.InputSize, c.Username = V4L2, "/dev/video0", "720p", "u" }, []string{"input_size", "username"}},
		{"input size for rtsp", func(c *Config) { c.Mode, c.URL, c.InputSize = RTSP, "rtsp://h/", "640x480" }, []string{"input_size"}},
		{"keyframes for mjpeg", func(c *Config) { c.Mode, c.URL, c.KeyframesOnly = MJPEG, "http://h/", true }, []string{"keyframes_only"}},
		{"user without password", func(c *Config) { c.Mode, c.URL, c.Username = RTSP, "rtsp://h/", "u" }, []string{"password_file"}},
		{"dir without dir", func(c *Config) { c.Mode = Dir }, []string{"dir"}},
		{"everything out of range", func(c *Config) {
			c.Mode, c.Dir = Dir, "d"
			c.Role, c.FPS, c.Width, c.Quality, c.MaxFrameKiB, c.MinChroma = "hall", 0, 10, 40, 1, -1
			c.StallTimeout, c.RequestTimeout, c.BackoffMax = 0, drivers.Duration(time.Hour), 0
		}, []string{"backoff_max", "fps", "max_frame_kib", "min_chroma", "quality", "request_timeout", "role", "stall_timeout", "width"}},
		{"stall shorter than two frames", func(c *Config) { c.Mode, c.Dir, c.FPS = Dir, "d", 0.5 }, []string{"stall_timeout"}},
		{"no ffmpeg", func(c *Config) { c.Mode, c.URL, c.FFmpeg = RTSP, "rtsp://h/", "" }, []string{"ffmpeg"}},
		{"relative ffmpeg path", func(c *Config) { c.Mode, c.URL, c.FFmpeg = RTSP, "rtsp://h/", "bin/ffmpeg" }, []string{"ffmpeg"}},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		if c.name == "stall shorter than two frames" {
			cfg.StallTimeout = drivers.Duration(3 * time.Second)
		}
		c.edit(&cfg)
		err := cfg.Validate()
		var keys []string
		for _, fe := range drivers.FieldErrors(err) {
			if fe.Key == "" {
				t.Errorf("%s: %v is not a FieldError", c.name, fe.Err)
			}
			keys = append(keys, fe.Key)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, c.keys) {
			t.Errorf("%s: got keys %v (%v), want %v", c.name, keys, err, c.keys)
		}
		if err != nil && strings.Contains(err.Error(), "12345") {
			t.Errorf("%s: the error repeats the password: %v", c.name, err)
		}
	}
}

func TestFFmpegArgs(t *testing.T) {
	c := DefaultConfig()
	c.Mode, c.URL, c.Username, c.FPS, c.Width, c.KeyframesOnly = RTSP, "rtsp://192.0.2.1:554/ch1?x=1", "ad min", 0.5, 480, true
	got := strings.Join(c.ffmpegArgs("p@ss:w/rd"), " ")
	for _, want := range []string{
		"-rtsp_transport tcp -skip_frame nokey -i rtsp://ad%20min:p%40ss%3Aw%2Frd@192.0.2.1:554/ch1?x=1 ",
		"-vf fps=0.5,scale=w='min(480,iw)':h=-2 ",
		"-c:v mjpeg -q:v 5 -f image2pipe pipe:1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q, want it to contain %q", got, want)
		}
	}
	c.Width = 0
	if got := strings.Join(c.ffmpegArgs(""), " "); strings.Contains(got, "scale") {
		t.Errorf("width 0: got %q, want no scale filter", got)
	}
}

// TestExampleConfig decodes the commented camera source of configs/agent.example.toml strictly,
// as the agent decodes a [[source]] table, and checks that it is valid and that it shows every
// key with its default.
func TestExampleConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "agent.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "# [[source]]\n# name = \"room-cam\"\n# kind = \"camera\"\n")
	if !ok {
		t.Fatal("configs/agent.example.toml: no commented [[source]] named room-cam of kind camera")
	}
	// The example is a camera source of the agent: the face and spot-check keys of the source
	// kind (drivers/facecam) are not this package's, and are left out here.
	mine := map[string]bool{}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		mine[strings.Split(ct.Field(i).Tag.Get("toml"), ",")[0]] = true
	}
	var table strings.Builder
	for _, line := range strings.Split(block, "\n") {
		rest, ok := strings.CutPrefix(line, "# ")
		if !ok || strings.HasPrefix(rest, "[") {
			break
		}
		key, _, _ := strings.Cut(rest, " ")
		if !strings.HasPrefix(rest, " ") && mine[key] { // not a continued comment, a camera key
			table.WriteString(rest + "\n")
		}
	}
	cfg := DefaultConfig()
	dec := toml.NewDecoder(strings.NewReader(table.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decoding the example:\n%s\ngot %v", table.String(), err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the example: got %v, want valid", err)
	}
	def := DefaultConfig()
	def.Mode, def.URL = cfg.Mode, cfg.URL
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("the example's values:\ngot  %+v\nwant %+v (the defaults)", cfg, def)
	}
	rt := reflect.TypeOf(cfg)
	for i := range rt.NumField() {
		key := rt.Field(i).Tag.Get("toml")
		if !strings.Contains(table.String(), "\n"+key+" = ") && !strings.HasPrefix(table.String(), key+" = ") {
			t.Errorf("key %s: not in the example", key)
		}
	}
}
