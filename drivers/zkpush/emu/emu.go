// Package emu is a ZKTeco PUSH terminal that speaks the real bytes over HTTP, for tests and
// `kaoqin emulate zkpush`: it boots (GET /iclock/cdata?options=all), takes the server's Delay,
// ErrorDelay and, when the reply carries them, its Date and TimeZone; uploads its attendance
// log (table=ATTLOG) and captures (table=ATTPHOTO), keeping every line the server has not
// answered "OK" and sending it again; polls /iclock/getrequest, executes the user commands it is
// given against its own user list and reports each result on /iclock/devicecmd.
//
// Faults it can play: a power cut mid-upload (the body stops after a number of bytes), a network
// cut (requests fail without reaching the server), a clock far off (its punches are stamped
// with its own clock), and a replay of a batch already acknowledged.
package emu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/kaoqin/kaoqin/drivers/zkpush"
)

// Config is one emulated terminal.
type Config struct {
	Server string // the PUSH server's base URL, "http://127.0.0.1:8081"
	Serial string
	Zone   *time.Location // the terminal's zone; default Asia/Shanghai
	// ClockOffset is how far the terminal's clock is off the real one at start.
	ClockOffset time.Duration
	// KeepClock makes the terminal ignore the server's Date (a clock set by hand and locked).
	KeepClock bool
	Language  string // the language= it reports at init; default "83" (Simplified Chinese)
	Client    *http.Client
	Log       *slog.Logger
	// BatchLines is the most ATTLOG lines sent in one upload; default 1,000.
	BatchLines int
}

// Punch is one attendance record the terminal holds until the server acknowledges it.
type Punch struct {
	PIN    string
	At     time.Time // by the terminal's clock, in its zone
	Status int
	Verify int
	Photo  []byte // the capture, uploaded after the line; nil for none
}

// Line is the punch as an ATTLOG line.
func (p Punch) Line() string {
	return fmt.Sprintf("%s\t%s\t%d\t%d\t0\t0\t0", p.PIN, p.At.Format("2006-01-02 15:04:05"), p.Status, p.Verify)
}

// Terminal is the emulated device. Its methods are safe for concurrent use.
type Terminal struct {
	cfg Config
	hc  *http.Client
	log *slog.Logger

	mu         sync.Mutex
	offset     time.Duration
	delay      time.Duration
	errorDelay time.Duration
	users      map[string]string
	log_       []Punch // not yet acknowledged
	photos     []Punch // captures not yet acknowledged
	lastBatch  []byte  // the last ATTLOG body the server acknowledged (for Replay)
	cutAfter   int     // the next upload stops after this many bytes (a power cut); 0 none
	netDown    bool
	Resends    int // uploads sent again after a non-OK answer
	Results    int // command results reported
}

// ErrNetwork is returned while the network is cut.
var ErrNetwork = errors.New("emu: network cut")

// New makes a terminal; it does nothing until Boot.
func New(cfg Config) *Terminal {
	if cfg.Zone == nil {
		cfg.Zone, _ = time.LoadLocation(zkpush.DefaultZone)
		if cfg.Zone == nil {
			cfg.Zone = time.FixedZone("CST", 8*3600)
		}
	}
	if cfg.Language == "" {
		cfg.Language = "83"
	}
	if cfg.BatchLines <= 0 {
		cfg.BatchLines = 1000
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Terminal{cfg: cfg, hc: hc, log: log.With("serial", cfg.Serial), offset: cfg.ClockOffset,
		delay: 10 * time.Second, errorDelay: 30 * time.Second, users: map[string]string{}}
}

// Now is the terminal's clock.
func (t *Terminal) Now() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Now().Add(t.offset).In(t.cfg.Zone).Truncate(time.Second)
}

// SetClockOffset moves the terminal's clock off the real one.
func (t *Terminal) SetClockOffset(d time.Duration) { t.mu.Lock(); t.offset = d; t.mu.Unlock() }

// SetNetwork cuts (down) or restores the network.
func (t *Terminal) SetNetwork(down bool) { t.mu.Lock(); t.netDown = down; t.mu.Unlock() }

// CutPower makes the next upload stop after n bytes of its body, as a power cut does.
func (t *Terminal) CutPower(n int) { t.mu.Lock(); t.cutAfter = n; t.mu.Unlock() }

// Delay is the poll interval the server gave.
func (t *Terminal) Delay() time.Duration { t.mu.Lock(); defer t.mu.Unlock(); return t.delay }

// ErrorDelay is the wait after a failure the server gave.
func (t *Terminal) ErrorDelay() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.errorDelay
}

// readName reads a name as the terminal's firmware does: GB18030 in Chinese mode (language 83),
// UTF-8 otherwise. Bytes of the other encoding show as the garbage a real screen would show.
func (t *Terminal) readName(b []byte) string {
	if t.cfg.Language == "83" {
		if out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b); err == nil {
			return string(out)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// Users is the terminal's user list (PIN -> name).
func (t *Terminal) Users() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]string, len(t.users))
	for k, v := range t.users {
		out[k] = v
	}
	return out
}

// Unsent is how many punches and photos wait for the server's acknowledgement.
func (t *Terminal) Unsent() (lines, photos int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.log_), len(t.photos)
}

// Punch records a punch (its time by the terminal's clock when At is zero) to be uploaded.
func (t *Terminal) Punch(p Punch) {
	if p.At.IsZero() {
		p.At = t.Now()
	}
	t.mu.Lock()
	t.log_ = append(t.log_, p)
	if p.Photo != nil {
		t.photos = append(t.photos, p)
	}
	t.mu.Unlock()
}

func (t *Terminal) url(path, query string) string {
	return strings.TrimSuffix(t.cfg.Server, "/") + path + "?SN=" + t.cfg.Serial + query
}

// do sends one request; a power cut armed with CutPower ends the body early.
func (t *Terminal) do(ctx context.Context, method, url string, body []byte) (int, []byte, http.Header, error) {
	t.mu.Lock()
	down, cut := t.netDown, t.cutAfter
	if body != nil && cut > 0 {
		t.cutAfter = 0
	}
	t.mu.Unlock()
	if down {
		return 0, nil, nil, ErrNetwork
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
		if cut > 0 && cut < len(body) {
			rd = io.MultiReader(bytes.NewReader(body[:cut]), errReader{})
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "text/plain")
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, resp.Header, err
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("emu: power cut") }

// Boot is the init handshake: the terminal takes Delay, ErrorDelay, and the Date and TimeZone
// when the reply carries both (unless its clock is kept).
func (t *Terminal) Boot(ctx context.Context) error {
	code, body, hdr, err := t.do(ctx, http.MethodGet, t.url("/iclock/cdata", "&options=all&pushver=2.4.1&language="+t.cfg.Language), nil)
	if err != nil {
		return fmt.Errorf("emu: boot: %w", err)
	}
	if code != http.StatusOK || !bytes.HasPrefix(body, []byte("GET OPTION FROM: "+t.cfg.Serial)) {
		return fmt.Errorf("emu: boot: status %d, body %q", code, clip(body))
	}
	opts := map[string]string{}
	for _, ln := range strings.Split(string(body), "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(ln, "\r"), "="); ok {
			opts[k] = v
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, err := strconv.Atoi(opts["Delay"]); err == nil && n > 0 {
		t.delay = time.Duration(n) * time.Second
	}
	if n, err := strconv.Atoi(opts["ErrorDelay"]); err == nil && n > 0 {
		t.errorDelay = time.Duration(n) * time.Second
	}
	if tz, ok := opts["TimeZone"]; ok && !t.cfg.KeepClock {
		if d, err := http.ParseTime(hdr.Get("Date")); err == nil && hdr.Get("Date") != "" {
			if _, err := strconv.Atoi(tz); err == nil {
				t.offset = time.Until(d).Round(time.Second) // the server's clock, to the second
				if t.offset > -2*time.Second && t.offset < 2*time.Second {
					t.offset = 0
				}
			}
		}
	}
	return nil
}

// Upload sends the unacknowledged attendance lines (in batches of BatchLines) and then the
// captures, one request each. A batch not answered "OK: n" stays, to be sent again.
func (t *Terminal) Upload(ctx context.Context) error {
	for {
		t.mu.Lock()
		n := min(len(t.log_), t.cfg.BatchLines)
		batch := append([]Punch(nil), t.log_[:n]...)
		t.mu.Unlock()
		if n == 0 {
			break
		}
		var b bytes.Buffer
		for _, p := range batch {
			b.WriteString(p.Line())
			b.WriteByte('\n')
		}
		if err := t.postLog(ctx, b.Bytes()); err != nil {
			return err
		}
		t.mu.Lock()
		t.log_ = t.log_[n:]
		t.lastBatch = b.Bytes()
		t.mu.Unlock()
	}
	for {
		t.mu.Lock()
		if len(t.photos) == 0 {
			t.mu.Unlock()
			return nil
		}
		p := t.photos[0]
		t.mu.Unlock()
		body := zkpush.EncodePhoto(t.cfg.Serial, p.PIN, p.At, p.Photo)
		code, reply, _, err := t.do(ctx, http.MethodPost, t.url("/iclock/cdata", "&table=ATTPHOTO&Stamp=9999"), body)
		if err != nil || code != http.StatusOK || !bytes.HasPrefix(reply, []byte("OK")) {
			t.mu.Lock()
			t.Resends++
			t.mu.Unlock()
			return fmt.Errorf("emu: attphoto: status %d %q: %v", code, clip(reply), err)
		}
		t.mu.Lock()
		t.photos = t.photos[1:]
		t.mu.Unlock()
	}
}

// postLog sends one ATTLOG body and wants "OK: <lines>".
func (t *Terminal) postLog(ctx context.Context, body []byte) error {
	code, reply, _, err := t.do(ctx, http.MethodPost, t.url("/iclock/cdata", "&table=ATTLOG&Stamp=9999"), body)
	want := "OK: " + strconv.Itoa(bytes.Count(body, []byte{'\n'}))
	if err != nil || code != http.StatusOK || strings.TrimSpace(string(reply)) != want {
		t.mu.Lock()
		t.Resends++
		t.mu.Unlock()
		return fmt.Errorf("emu: attlog: status %d %q, want %q: %v", code, clip(reply), want, err)
	}
	return nil
}

// Replay sends the last acknowledged batch again, as a terminal restored from a backup does.
func (t *Terminal) Replay(ctx context.Context) error {
	t.mu.Lock()
	b := t.lastBatch
	t.mu.Unlock()
	if b == nil {
		return errors.New("emu: replay: no batch sent yet")
	}
	return t.postLog(ctx, b)
}

// Poll asks for commands, executes them and reports their results.
func (t *Terminal) Poll(ctx context.Context) error {
	code, body, _, err := t.do(ctx, http.MethodGet, t.url("/iclock/getrequest", "&INFO=Ver%208.0.4,0,0,0,127.0.0.1"), nil)
	if err != nil {
		return fmt.Errorf("emu: getrequest: %w", err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("emu: getrequest: status %d %q", code, clip(body))
	}
	cmds, err := zkpush.ParseCommands(body)
	if err != nil {
		t.log.Warn("emu: command refused", "err", err)
	}
	if len(cmds) == 0 {
		return nil
	}
	var res bytes.Buffer
	for _, c := range cmds {
		ret := t.execute(c.Text)
		word, _, _ := strings.Cut(string(c.Text), " ")
		fmt.Fprintf(&res, "ID=%s&Return=%d&CMD=%s\n", c.ID, ret, word)
	}
	code, reply, _, err := t.do(ctx, http.MethodPost, t.url("/iclock/devicecmd", ""), res.Bytes())
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("emu: devicecmd: status %d %q: %v", code, clip(reply), err)
	}
	t.mu.Lock()
	t.Results += len(cmds)
	t.mu.Unlock()
	return nil
}

// execute runs one command against the user list and returns the protocol's result code.
func (t *Terminal) execute(text []byte) int {
	switch {
	case bytes.HasPrefix(text, []byte("DATA UPDATE USERINFO ")):
		f := zkpush.Fields(bytes.TrimPrefix(text, []byte("DATA UPDATE USERINFO ")))
		pin := string(f["PIN"])
		if pin == "" {
			return -1
		}
		t.mu.Lock()
		t.users[pin] = t.readName(f["Name"])
		t.mu.Unlock()
		return 0
	case bytes.HasPrefix(text, []byte("DATA DELETE USERINFO ")):
		f := zkpush.Fields(bytes.TrimPrefix(text, []byte("DATA DELETE USERINFO ")))
		pin := string(f["PIN"])
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.users[pin]; !ok {
			return -10
		}
		delete(t.users, pin)
		return 0
	case bytes.Equal(text, []byte("CHECK")), bytes.Equal(text, []byte("INFO")), bytes.Equal(text, []byte("REBOOT")):
		return 0
	}
	return -1002
}

// Ping keeps the link alive.
func (t *Terminal) Ping(ctx context.Context) error {
	code, body, _, err := t.do(ctx, http.MethodGet, t.url("/iclock/ping", ""), nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("emu: ping: status %d %q: %v", code, clip(body), err)
	}
	return nil
}

// Serve runs the terminal's own loop until ctx is done: boot (again after ErrorDelay while it
// fails), then every Delay upload what is unsent and poll for commands; after a failure wait
// ErrorDelay. delayScale shortens the waits (1 is the terminal's own timing).
func (t *Terminal) Serve(ctx context.Context, delayScale float64) error {
	if delayScale <= 0 {
		delayScale = 1
	}
	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(float64(d) * delayScale)):
			return nil
		}
	}
	for {
		if err := t.Boot(ctx); err != nil {
			t.log.Warn("emu: boot failed", "err", err)
			if err := wait(t.ErrorDelay()); err != nil {
				return err
			}
			continue
		}
		break
	}
	for {
		err := t.Upload(ctx)
		if err == nil {
			err = t.Poll(ctx)
		}
		d := t.Delay()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.log.Warn("emu: exchange failed, waiting ErrorDelay", "err", err)
			d = t.ErrorDelay()
		}
		if err := wait(d); err != nil {
			return err
		}
	}
}

// Capture makes a small real JPEG, a stand-in for the terminal's camera: a grey frame with a
// pattern made from seed, so that each capture is a distinct photo.
func Capture(seed int) []byte {
	img := image.NewGray(image.Rect(0, 0, 32, 24))
	for y := 0; y < 24; y++ {
		for x := 0; x < 32; x++ {
			img.SetGray(x, y, color.Gray{Y: uint8((x*7 + y*13 + seed*31) % 256)})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		panic("emu: jpeg of an in-memory image: " + err.Error()) // cannot fail on a bytes.Buffer
	}
	return b.Bytes()
}

func clip(b []byte) string {
	if len(b) > 60 {
		b = b[:60]
	}
	return strings.ToValidUTF8(string(b), "?")
}
