package lineterm

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

const facePattern = `^FACE:(?P<id>[^:]*):(?P<score>[^:]*):(?P<kind>[^:]*)$`

func validConfig() Config {
	return Config{
		Port:         serialport.Config{Path: "/dev/ttyUSB0", Baud: 9600},
		Pattern:      facePattern,
		Method:       drivers.Face,
		PassUnmapped: true,
	}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("Validate(valid config): got %v, want nil", err)
	}
	voucher := Config{Port: serialport.Config{Path: "/dev/ttyACM0", Baud: 115200}, Method: drivers.Voucher, Map: map[string]string{"QR1": "V1"}}
	if err := voucher.Validate(); err != nil {
		t.Fatalf("Validate(voucher config with default pattern): got %v, want nil", err)
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // the error must start with "lineterm: " + field + ":"
	}{
		{"no path", func(c *Config) { c.Port.Path = "" }, "path"},
		{"bad baud", func(c *Config) { c.Port.Baud = 1234 }, "baud"},
		{"bad framing", func(c *Config) { c.Framing = Framing(7) }, "framing"},
		{"bad regexp", func(c *Config) { c.Pattern = `(?P<id>[a-` }, "pattern"},
		{"no id group", func(c *Config) { c.Pattern = `^(?P<score>\d+)$` }, "pattern"},
		{"unknown group", func(c *Config) { c.Pattern = `^(?P<id>\w+):(?P<scor>\d+)$` }, "pattern"},
		{"duplicate group", func(c *Config) { c.Pattern = `^(?P<id>\w+)|(?P<id>\d+)$` }, "pattern"},
		{"bad wiegand", func(c *Config) { c.Wiegand = Wiegand(37) }, "wiegand"},
		{"negative max line", func(c *Config) { c.MaxLine = -1 }, "max_line"},
		{"huge max line", func(c *Config) { c.MaxLine = MaxMaxLine + 1 }, "max_line"},
		{"negative repeat", func(c *Config) { c.Repeat = -time.Second }, "repeat"},
		{"no method", func(c *Config) { c.Method = "" }, "method"},
		{"fingerprint method", func(c *Config) { c.Method = drivers.Fingerprint }, "method"},
		{"bad intent", func(c *Config) { c.Kinds = map[string]drivers.Intent{"in": "enter"} }, "kinds"},
		{"empty kind", func(c *Config) { c.Kinds = map[string]drivers.Intent{"": drivers.SignIn} }, "kinds"},
		{"conflicting kinds", func(c *Config) {
			c.Kinds = map[string]drivers.Intent{"IN": drivers.SignIn, "in": drivers.SignOut}
		}, "kinds"},
		{"empty map and no pass", func(c *Config) { c.PassUnmapped = false }, "map"},
		{"empty subject", func(c *Config) { c.Map = map[string]string{"F1": ""} }, "map.F1"},
		{"empty device id", func(c *Config) { c.Map = map[string]string{"": "T1"} }, "map"},
	}
	for _, tt := range tests {
		c := validConfig()
		tt.edit(&c)
		err := c.Validate()
		if want := "lineterm: " + tt.field + ":"; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: Validate: got %v, want an error starting %q", tt.name, err, want)
		}
	}
}

func mustDecoder(t *testing.T, c Config) *decoder {
	t.Helper()
	d, err := c.compile()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return d
}

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func TestDecodeGroups(t *testing.T) {
	c := validConfig()
	c.Kinds = map[string]drivers.Intent{"In": drivers.SignIn, "out": drivers.SignOut, "1": drivers.SignIn, "x": drivers.Auto}
	d := mustDecoder(t, c)
	tests := []struct {
		line    string
		subject string
		score   float64
		intent  drivers.Intent
	}{
		{"FACE:T001:0.93:in", "T001", 0.93, drivers.SignIn},
		{"FACE:T001:0.93:IN", "T001", 0.93, drivers.SignIn},
		{"FACE:T002:88:out", "T002", 88, drivers.SignOut},
		{"FACE:T003:1e-1:1", "T003", 0.1, drivers.SignIn},
		{"FACE:T004::", "T004", 0, drivers.Auto},
		{"FACE:T005:0.5:break", "T005", 0.5, drivers.Auto},
		{"FACE:T006:0.5:x", "T006", 0.5, drivers.Auto},
	}
	for _, tt := range tests {
		r, err := d.decode(tt.line, t0)
		want := drivers.Reading{Method: drivers.Face, Subject: tt.subject, Score: tt.score, Intent: tt.intent, At: t0, Detail: tt.line}
		if err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("decode(%q): got %+v, %v; want %+v, nil", tt.line, r, err, want)
		}
	}
	for _, tt := range []struct {
		line string
		want error
	}{
		{"hello", errNoMatch},
		{"FACE::0.9:in", errNoMatch}, // empty id
		{"FACE:T1:0.9", errNoMatch},
		{"xFACE:T1:0.9:in", errNoMatch},
		{"FACE:T1:high:in", errScore},
		{"FACE:T1:NaN:in", errScore},
		{"FACE:T1:+Inf:in", errScore},
		{"FACE:T1:1e999:in", errScore},
	} {
		if r, err := d.decode(tt.line, t0); !errors.Is(err, tt.want) {
			t.Errorf("decode(%q): got %+v, %v; want %v", tt.line, r, err, tt.want)
		}
	}
}

func TestDecodeOptionalGroups(t *testing.T) {
	c := validConfig()
	c.Pattern = `ID=(?P<id>\d+)`
	d := mustDecoder(t, c)
	r, err := d.decode("<ID=0042 door=3>", t0)
	want := drivers.Reading{Method: drivers.Face, Subject: "0042", At: t0, Detail: "<ID=0042 door=3>"}
	if err != nil || !reflect.DeepEqual(r, want) {
		t.Errorf("decode: got %+v, %v; want %+v, nil", r, err, want)
	}
}

func TestDecodeWiegand(t *testing.T) {
	for _, w := range []Wiegand{Wiegand26, Wiegand34} {
		c := validConfig()
		c.Pattern = `^W(?:26|34):(?P<id>[0-9A-Fa-f]+)$`
		c.Method = drivers.Card
		c.Wiegand = w
		c.Map = map[string]string{"12:34567": "T001"}
		c.PassUnmapped = false
		d := mustDecoder(t, c)
		frame, err := w.Encode(Credential{12, 34567})
		if err != nil {
			t.Fatal(err)
		}
		line := "W" + w.String() + ":" + w.Hex(frame)
		r, err := d.decode(line, t0)
		if want := (drivers.Reading{Method: drivers.Card, Subject: "T001", At: t0, Detail: line}); err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("%v: decode(%q): got %+v, %v; want %+v, nil", w, line, r, err, want)
		}
		unknown, err := w.Encode(Credential{12, 1})
		if err != nil {
			t.Fatal(err)
		}
		line = "W" + w.String() + ":" + w.Hex(unknown)
		r, err = d.decode(line, t0)
		if want := (drivers.Reading{Method: drivers.Card, At: t0, Detail: `unmapped id "12:1": ` + line}); err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("%v: decode(%q): got %+v, %v; want %+v, nil", w, line, r, err, want)
		}
		for bit, want := range map[int]error{int(w) - 1: ErrEvenParity, 0: ErrOddParity} {
			line := "W" + w.String() + ":" + w.Hex(frame^1<<bit)
			if r, err := d.decode(line, t0); !errors.Is(err, want) {
				t.Errorf("%v: decode(%q): got %+v, %v; want %v", w, line, r, err, want)
			}
		}
	}
}

func TestDecodeMapping(t *testing.T) {
	c := validConfig()
	c.Pattern = `^(?P<id>\S+)$`
	c.Map = map[string]string{"F17": "T001", "QR-ABC": "V2025-001"}
	for _, tt := range []struct {
		pass        bool
		line        string
		subject     string
		detail      string
		description string
	}{
		{false, "F17", "T001", "F17", "mapped"},
		{true, "F17", "T001", "F17", "mapped, pass on"},
		{false, "QR-ABC", "V2025-001", "QR-ABC", "voucher code"},
		{true, "F18", "F18", "F18", "unmapped passes through"},
		{false, "F18", "", `unmapped id "F18": F18`, "unmapped is unidentified"},
	} {
		c.PassUnmapped = tt.pass
		d := mustDecoder(t, c)
		r, err := d.decode(tt.line, t0)
		if err != nil || r.Subject != tt.subject || r.Detail != tt.detail {
			t.Errorf("%s: decode(%q): got subject %q detail %q err %v; want subject %q detail %q", tt.description, tt.line, r.Subject, r.Detail, err, tt.subject, tt.detail)
		}
	}
}

func TestDecodeRepeat(t *testing.T) {
	c := validConfig()
	c.Repeat = 3 * time.Second
	d := mustDecoder(t, c)
	steps := []struct {
		line       string
		after      time.Duration // since t0
		suppressed bool
	}{
		{"FACE:T1:0.9:in", 0, false},
		{"FACE:T1:0.9:in", time.Second, true},
		{"FACE:T2:0.9:in", time.Second, false},             // another ID is not affected
		{"FACE:T1:0.8:out", 2999 * time.Millisecond, true}, // the window runs from the accepted reading
		{"FACE:T1:0.9:in", 3 * time.Second, false},
		{"FACE:T2:0.9:in", 3 * time.Second, true},
		{"FACE:T2:0.9:in", 4 * time.Second, false},
		{"FACE:T1:0.9:in", 5 * time.Second, true},
		{"FACE:T1:0.9:in", -time.Minute, false}, // a clock stepping back does not suppress
	}
	for i, s := range steps {
		r, err := d.decode(s.line, t0.Add(s.after))
		if got := errors.Is(err, errRepeat); got != s.suppressed || (!got && err != nil) {
			t.Errorf("step %d: decode(%q) at +%v: got %+v, %v; want suppressed %v", i, s.line, s.after, r, err, s.suppressed)
		}
	}
	// Forgetting old IDs keeps the table bounded.
	for i := range 1000 {
		if _, err := d.decode("FACE:X"+strings.Repeat("1", i%50)+string(rune('a'+i%26))+":0.1:in", t0.Add(time.Duration(i)*time.Second)); err != nil && !errors.Is(err, errRepeat) {
			t.Fatal(err)
		}
	}
	if n := len(d.last); n > 130 {
		t.Errorf("repeat table after 1000 IDs over 1000s with a 3s window: got %d entries, want at most 130", n)
	}
}

func TestTrim(t *testing.T) {
	for in, want := range map[string]string{"  a b \r": "a b", "\x00\x02x\x7f": "x", "\r\n": "", "é ": "é"} {
		if got := trim(in); got != want {
			t.Errorf("trim(%q): got %q, want %q", in, got, want)
		}
	}
}
