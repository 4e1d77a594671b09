package zkpush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Doubt flags a terminal's readings can carry (ledger flag codes).
const (
	FlagClockOff   = "terminal_clock_off"   // the terminal's clock is off the box's by more than clock_tolerance
	FlagNewAddress = "terminal_new_address" // the serial spoke from an address it was not known at
)

// ErrClosed is returned by Next once the terminal is closed.
var ErrClosed = errors.New("zkpush: terminal closed")

// Bounds of the driver's memory of recorded punches.
const (
	recentKeys     = 1 << 17 // keys of recorded punches: a resend of one is answered at once
	recentPunches  = 4096    // PIN+time of recorded punches, to name a photo that comes after
	maxCommands    = 16      // commands handed out in one poll
	maxRefusalLogs = 20      // refused lines of one upload logged one by one; the rest counted
	// readingsBuffer lets an upload hand its readings over without a goroutine switch each: a
	// reading left in it when the terminal closes was never acknowledged, so it is sent again.
	readingsBuffer = 1024
)

// Terminal is one ZKTeco terminal: a drivers.Source whose readings are its ATTLOG lines.
type Terminal struct {
	cfg      Config
	loc      *time.Location
	log      *slog.Logger
	env      drivers.Env
	q        *queue
	srv      *server
	readings chan drivers.Reading
	closed   chan struct{}
	once     sync.Once

	mu          sync.Mutex
	expected    string // the address the terminal is known at
	strangers   map[string]bool
	lastContact time.Time
	lastAddr    string
	lastPoll    time.Time
	offset      time.Duration
	offsetKnown bool
	language    string
	since       time.Time
	state       drivers.State
	lastErr     string
	nReadings   uint64
	dropped     uint64
	failures    uint64 // uploads answered with an error, commands that failed
	operlog     uint64
	recent      *keyRing
	punches     *keyRing             // PIN|time of recorded punches
	photos      map[string]heldPhoto // PIN|time -> a photo waiting for its punch
	punchKeys   map[string]string    // PIN|time -> the reading key of a recorded punch, for a late photo
}

type heldPhoto struct {
	ref drivers.EvidenceRef
	at  time.Time // when it arrived
}

var (
	_ drivers.Source         = (*Terminal)(nil)
	_ drivers.HealthReporter = (*Terminal)(nil)
	_ drivers.PersonSyncer   = (*Terminal)(nil)
)

func newTerminal(c Config, loc *time.Location, env drivers.Env) (*Terminal, error) {
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q, err := openQueue(filepath.Join(string(c.StateDir), "zkpush-"+c.Serial+".db"))
	if err != nil {
		return nil, err
	}
	t := &Terminal{
		cfg: c, loc: loc, log: log.With("serial", c.Serial), env: env, q: q,
		readings: make(chan drivers.Reading, readingsBuffer), closed: make(chan struct{}),
		strangers: map[string]bool{}, since: time.Now(), state: drivers.StateStarting,
		recent: newKeyRing(recentKeys), punches: newKeyRing(recentPunches), photos: map[string]heldPhoto{}, punchKeys: map[string]string{},
	}
	t.expected = c.Address
	if t.expected == "" {
		if t.expected, err = q.meta("address"); err != nil {
			q.close()
			return nil, fmt.Errorf("zkpush: state: %w", err)
		}
	}
	return t, nil
}

// Addr is the address the terminal's PUSH server listens on.
func (t *Terminal) Addr() string { return t.srv.addr() }

// Next blocks until the terminal uploads a punch, ctx is done, or the terminal is closed.
func (t *Terminal) Next(ctx context.Context) (drivers.Reading, error) {
	select {
	case rd := <-t.readings:
		return rd, nil
	case <-ctx.Done():
		return drivers.Reading{}, ctx.Err()
	case <-t.closed:
		return drivers.Reading{}, ErrClosed
	}
}

// Close takes the terminal off its server (closing the server if it was the last) and closes
// its state file. An upload in progress is answered with an error: the terminal sends it again.
func (t *Terminal) Close() error {
	var err error
	t.once.Do(func() {
		close(t.closed)
		t.srv.remove(t)
		release(t.srv)
		err = t.q.close()
	})
	return err
}

func (t *Terminal) clockTrusted() bool {
	return t.env.ClockTrusted != nil && t.env.ClockTrusted()
}

// refuseBody answers an oversized body 413 and logs it.
func (t *Terminal) refuseBody(w http.ResponseWriter, remote, path string, size, max int64) {
	t.mu.Lock()
	t.dropped++
	t.failures++
	t.lastErr = fmt.Sprintf("a %s body over %d bytes refused", path, max)
	t.mu.Unlock()
	t.log.Warn("zkpush: request body too large, refused", "remote", remote, "path", path, "content_length", size, "max_body", max)
	http.Error(w, "zkpush: body too large", http.StatusRequestEntityTooLarge)
}

// serve answers one request of this terminal's; the body is already read (bodyErr: the client
// stopped sending mid-body).
func (t *Terminal) serve(ctx context.Context, path, method string, q url.Values, remote string, body []byte, bodyErr error) (int, string) {
	now := time.Now()
	stranger := t.touch(remote, now)
	switch {
	case path == "/iclock/cdata" && method == http.MethodGet:
		return t.initReply(q, now)
	case (path == "/iclock/cdata" || path == "/iclock/fdata") && method == http.MethodPost:
		table := q.Get("table")
		if bodyErr != nil && table != "ATTLOG" {
			t.fail("a %s upload cut short: %v", table, bodyErr)
			return http.StatusBadRequest, "zkpush: body cut short"
		}
		switch table {
		case "ATTLOG":
			return t.attlog(ctx, body, bodyErr, stranger, now)
		case "ATTPHOTO":
			return t.attphoto(ctx, body, now)
		case "OPERLOG":
			return t.oplog(body)
		}
		n := countLines(body)
		t.log.Debug("zkpush: table not used, acknowledged", "table", clip(table), "lines", n)
		return http.StatusOK, "OK: " + strconv.Itoa(n)
	case path == "/iclock/getrequest":
		return t.poll(now)
	case path == "/iclock/devicecmd" && method == http.MethodPost:
		return t.results(body, now)
	case path == "/iclock/ping":
		return http.StatusOK, "OK"
	}
	return http.StatusMethodNotAllowed, "zkpush: method not allowed"
}

// touch notes a contact and reports whether it came from an address the terminal is not known
// at. The first address seen is remembered when none is configured.
func (t *Terminal) touch(remote string, now time.Time) bool {
	t.mu.Lock()
	t.lastContact, t.lastAddr = now, remote
	if t.state == drivers.StateStarting {
		t.state, t.since = drivers.StateOK, now
	}
	learn := t.expected == ""
	if learn {
		t.expected = remote
	}
	stranger := remote != t.expected
	first := stranger && !t.strangers[remote]
	if first {
		if len(t.strangers) > 64 {
			clear(t.strangers)
		}
		t.strangers[remote] = true
	}
	expected := t.expected
	t.mu.Unlock()
	if learn {
		if err := t.q.setMeta("address", remote); err != nil {
			t.log.Error("zkpush: cannot remember the terminal's address", "err", err)
		}
		t.log.Info("zkpush: terminal seen for the first time", "remote", remote)
	}
	if first {
		t.log.Warn("zkpush: known serial from a new address: its readings carry "+FlagNewAddress, "remote", remote, "known_at", expected)
	}
	return stranger
}

func (t *Terminal) fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	t.mu.Lock()
	t.failures++
	t.lastErr = msg
	t.mu.Unlock()
	t.log.Warn("zkpush: " + msg)
}

// initReply answers the boot handshake with the terminal's options. Date (the header) and
// TimeZone are sent only while the box's clock is trusted.
func (t *Terminal) initReply(q url.Values, now time.Time) (int, string) {
	t.mu.Lock()
	t.language = q.Get("language")
	t.mu.Unlock()
	t.log.Info("zkpush: terminal init", "pushver", clip(q.Get("pushver")), "language", clip(q.Get("language")))
	var b strings.Builder
	fmt.Fprintf(&b, "GET OPTION FROM: %s\n", t.cfg.Serial)
	b.WriteString("ATTLOGStamp=None\nOPERLOGStamp=9999\nATTPHOTOStamp=None\n")
	fmt.Fprintf(&b, "ErrorDelay=%d\nDelay=%d\n", int(time.Duration(t.cfg.ErrorDelay).Seconds()), int(time.Duration(t.cfg.Delay).Seconds()))
	b.WriteString("TransTimes=00:00;14:05\nTransInterval=1\n")
	b.WriteString("TransFlag=TransData AttLog\tOpLog\tAttPhoto\tEnrollUser\tChgUser\tEnrollFP\tChgFP\tUserPic\n")
	if t.clockTrusted() {
		_, off := now.In(t.loc).Zone()
		if off%3600 == 0 {
			fmt.Fprintf(&b, "TimeZone=%d\n", off/3600)
		} else {
			fmt.Fprintf(&b, "TimeZone=%d\n", off/60)
		}
	}
	b.WriteString("Realtime=1\nEncrypt=None\n")
	return http.StatusOK, b.String()
}

// batch waits for the verdicts of one upload's readings.
type batch struct {
	mu      sync.Mutex
	left    int
	failed  bool
	done    chan struct{}
	settled []string // keys durable in the ledger
}

func (b *batch) doneFunc(key string) func(drivers.Verdict) {
	var once sync.Once
	return func(v drivers.Verdict) {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if v == drivers.NotRecorded {
				b.failed = true
			} else {
				b.settled = append(b.settled, key)
			}
			b.left--
			if b.left == 0 {
				close(b.done)
			}
		})
	}
}

// attlog turns an ATTLOG upload into readings and answers "OK: n" once all of them are durable.
// A malformed line is logged and counted and the rest of the batch kept; a punch already
// recorded (a resend) is acknowledged without a new reading.
func (t *Terminal) attlog(ctx context.Context, body []byte, bodyErr error, stranger bool, now time.Time) (int, string) {
	if bodyErr != nil { // cut short (a power cut mid-upload): keep the whole lines received
		ctx = context.WithoutCancel(ctx) // the connection is gone; the lines are still recorded
		if i := bytes.LastIndexByte(body, '\n'); i >= 0 {
			body = body[:i+1]
		} else {
			body = nil
		}
	}
	lines, refused := 0, 0
	var rds []drivers.Reading
	var keys []string
	var newest time.Time
	seen := map[string]bool{}
	for n, raw := range bytes.Split(body, []byte{'\n'}) {
		ln := strings.TrimRight(string(raw), "\r\x00")
		if strings.TrimSpace(ln) == "" {
			continue
		}
		lines++
		p, err := ParsePunch(ln, t.loc, t.cfg.AlnumPINs)
		if err != nil {
			t.mu.Lock()
			t.dropped++
			t.mu.Unlock()
			if refused++; refused <= maxRefusalLogs {
				t.log.Warn("zkpush: attlog line refused", "line", n+1, "err", err, "raw", clip(ln))
			}
			continue
		}
		if p.At.After(newest) {
			newest = p.At
		}
		key := p.Key(t.cfg.Serial)
		if seen[key] {
			continue
		}
		seen[key] = true
		t.mu.Lock()
		dup := t.recent.has(key)
		t.mu.Unlock()
		if dup {
			continue
		}
		m, mode := Method(p.Verify)
		rd := drivers.Reading{
			Source: t.env.Name, Method: m, Subject: p.PIN, At: p.At, Key: key,
			Detail: fmt.Sprintf("zkpush %s pin=%s verify=%d(%s) status=%d", t.cfg.Serial, p.PIN, p.Verify, mode, p.Status),
		}
		if p.Workcode != "" && p.Workcode != "0" {
			rd.Detail += " workcode=" + clip(p.Workcode)
		}
		if t.cfg.IntentFromStatus {
			rd.Intent = Intent(p.Status)
		}
		if stranger {
			rd.Flags = append(rd.Flags, FlagNewAddress)
		}
		pk := punchKey(p.PIN, p.At)
		t.mu.Lock()
		if h, ok := t.photos[pk]; ok {
			rd.Evidence = append(rd.Evidence, h.ref)
			delete(t.photos, pk)
		}
		t.mu.Unlock()
		rds = append(rds, rd)
		keys = append(keys, pk)
	}
	if refused > maxRefusalLogs {
		t.log.Warn("zkpush: attlog lines refused, not each logged", "refused", refused, "logged", maxRefusalLogs)
	}
	clockOff := t.trackClock(newest, len(rds), now)
	if clockOff {
		for i := range rds {
			rds[i].Flags = append(rds[i].Flags, FlagClockOff)
		}
	}
	if len(rds) > 0 {
		if err := t.deliver(ctx, rds); err != nil {
			t.fail("attlog upload of %d lines not acknowledged: %v", lines, err)
			return http.StatusServiceUnavailable, "zkpush: " + err.Error()
		}
		t.mu.Lock()
		if len(t.punchKeys) >= recentPunches {
			clear(t.punchKeys)
		}
		for i, k := range keys {
			t.punches.add(k)
			t.punchKeys[k] = rds[i].Key
		}
		t.nReadings += uint64(len(rds))
		t.mu.Unlock()
	}
	if bodyErr != nil {
		t.fail("attlog upload cut short after %d lines: %v", lines, bodyErr)
		return http.StatusBadRequest, "zkpush: body cut short"
	}
	if !clockOff {
		t.mu.Lock()
		t.lastErr = "" // a good upload clears the last problem; the failure count stays
		t.mu.Unlock()
	}
	return http.StatusOK, "OK: " + strconv.Itoa(lines)
}

// deliver hands the readings to Next and waits until every one is durable. An error means the
// terminal must send the batch again: the agent refused one (NotRecorded), it did not take
// them in time, or the request or the terminal closed.
func (t *Terminal) deliver(ctx context.Context, rds []drivers.Reading) error {
	b := &batch{left: len(rds), done: make(chan struct{})}
	timer := time.NewTimer(time.Duration(t.cfg.AckTimeout))
	defer timer.Stop()
	for i := range rds {
		rds[i].Done = b.doneFunc(rds[i].Key)
		select {
		case t.readings <- rds[i]:
		case <-timer.C:
			return errors.New("readings not taken within ack_timeout")
		case <-ctx.Done():
			return ctx.Err()
		case <-t.closed:
			return ErrClosed
		}
	}
	select {
	case <-b.done:
	case <-timer.C:
		return errors.New("readings not recorded within ack_timeout")
	case <-ctx.Done():
		return ctx.Err()
	case <-t.closed:
		return ErrClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t.mu.Lock()
	for _, k := range b.settled {
		t.recent.add(k)
	}
	t.mu.Unlock()
	if b.failed {
		return errors.New("the ledger did not record every reading")
	}
	return nil
}

// trackClock estimates the terminal's clock offset from an upload's newest punch. A punch later
// than the box's now shows the terminal ahead. A punch uploaded while the terminal was polling
// (Realtime=1 sends each punch at once) shows its lag, taken as the offset when the terminal is
// behind. A backlog from a terminal that was offline says nothing about its clock.
func (t *Terminal) trackClock(newest time.Time, n int, now time.Time) bool {
	if newest.IsZero() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := newest.Sub(now)
	online := !t.lastPoll.IsZero() && now.Sub(t.lastPoll) <= 3*time.Duration(t.cfg.Delay)
	if d > 0 || (online && n <= 10) {
		t.offset, t.offsetKnown = d.Round(time.Second), true
	}
	tol := time.Duration(t.cfg.ClockTolerance)
	off := t.offsetKnown && (t.offset > tol || t.offset < -tol)
	if off {
		t.lastErr = fmt.Sprintf("terminal clock off by %v", t.offset)
	}
	return off
}

// attphoto keeps an ATTPHOTO as evidence and links it to its punch: a photo whose punch has not
// come yet is held for the punch's reading; one whose punch is already recorded is logged with
// the punch's key. A photo that cannot be decoded is logged and acknowledged (sending it again
// would not mend it).
func (t *Terminal) attphoto(ctx context.Context, body []byte, now time.Time) (int, string) {
	t.sweepPhotos(now)
	p, err := ParsePhoto(body, t.loc, t.cfg.AlnumPINs)
	if err != nil {
		t.mu.Lock()
		t.dropped++
		t.mu.Unlock()
		t.log.Warn("zkpush: attphoto refused", "err", err, "bytes", len(body))
		return http.StatusOK, "OK"
	}
	if t.env.Evidence == nil {
		t.log.Debug("zkpush: attphoto not kept: the box keeps no evidence", "pin", p.PIN)
		return http.StatusOK, "OK"
	}
	ref, err := t.env.Evidence.PutEvidence(drivers.Frame, p.JPEG)
	if err != nil {
		t.fail("attphoto of %s not kept: %v", p.PIN, err)
		return http.StatusServiceUnavailable, "zkpush: photo not kept"
	}
	pk := punchKey(p.PIN, p.At)
	t.mu.Lock()
	recorded := t.punches.has(pk)
	readingKey := t.punchKeys[pk]
	if !recorded {
		if len(t.photos) >= recentPunches {
			clear(t.photos)
		}
		t.photos[pk] = heldPhoto{ref: ref, at: now}
	}
	t.mu.Unlock()
	if recorded && readingKey != "" {
		// The punch is in the ledger: the photo is attached to its event (the agent records an
		// attachment that refers to it), and acknowledged once that is durable.
		rd := drivers.Reading{Source: t.env.Name, Method: drivers.Face, Subject: p.PIN, At: p.At, Key: readingKey,
			Evidence: []drivers.EvidenceRef{ref}, Detail: "zkpush attphoto after its punch"}
		if err := t.deliver(ctx, []drivers.Reading{rd}); err != nil {
			t.fail("attphoto of %s not attached: %v", p.PIN, err)
			return http.StatusServiceUnavailable, "zkpush: " + err.Error()
		}
		t.log.Debug("zkpush: attphoto attached to its recorded punch", "pin", p.PIN, "punch", p.At.Format(punchLayout), "evidence", ref.SHA256)
	} else if recorded {
		t.log.Info("zkpush: attphoto kept after its punch was recorded", "pin", p.PIN, "punch", p.At.Format(punchLayout), "evidence", ref.SHA256)
	} else {
		t.log.Debug("zkpush: attphoto kept, held for its punch", "pin", p.PIN, "punch", p.At.Format(punchLayout), "evidence", ref.SHA256)
	}
	return http.StatusOK, "OK"
}

// sweepPhotos logs the held photos whose punch never came. They stay in the evidence store.
func (t *Terminal) sweepPhotos(now time.Time) {
	t.mu.Lock()
	var gone []string
	var refs []drivers.EvidenceRef
	for k, h := range t.photos {
		if now.Sub(h.at) > time.Duration(t.cfg.PhotoWait) {
			gone = append(gone, k)
			refs = append(refs, h.ref)
			delete(t.photos, k)
		}
	}
	t.mu.Unlock()
	for i, k := range gone {
		t.log.Warn("zkpush: attphoto without a punch, kept as evidence", "punch", k, "evidence", refs[i].SHA256)
	}
}

// PendingPhotos lists the photos held for a punch that has not come (for tests and status).
func (t *Terminal) PendingPhotos() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.photos)
}

func punchKey(pin string, at time.Time) string { return pin + "|" + at.Format(punchLayout) }

// oplog keeps the operation log as device detail: each line is counted and logged at debug,
// users enrolled at the terminal at info with their names decoded.
func (t *Terminal) oplog(body []byte) (int, string) {
	n := 0
	for _, raw := range bytes.Split(body, []byte{'\n'}) {
		raw = bytes.TrimRight(raw, "\r\x00")
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		n++
		if rec, ok := bytes.CutPrefix(raw, []byte("USER ")); ok {
			f := Fields(rec)
			t.log.Info("zkpush: user on the terminal", "pin", clip(string(f["PIN"])), "name", clip(DecodeName(f["Name"])))
			continue
		}
		t.log.Debug("zkpush: operation log", "line", clip(DecodeName(raw)))
	}
	t.mu.Lock()
	t.operlog += uint64(n)
	t.mu.Unlock()
	return http.StatusOK, "OK: " + strconv.Itoa(n)
}

func countLines(b []byte) int {
	n := 0
	for _, ln := range bytes.Split(b, []byte{'\n'}) {
		if len(bytes.TrimSpace(ln)) > 0 {
			n++
		}
	}
	return n
}

// poll answers a command poll with the queued commands, or OK.
func (t *Terminal) poll(now time.Time) (int, string) {
	t.mu.Lock()
	t.lastPoll = now
	lang := t.language
	t.mu.Unlock()
	cmds, err := t.q.take(maxCommands, now, time.Duration(t.cfg.ResendAfter))
	if err != nil {
		t.fail("command queue: %v", err)
		return http.StatusOK, "OK"
	}
	if len(cmds) == 0 {
		return http.StatusOK, "OK"
	}
	gb := t.cfg.NameEncoding == "gb18030" || (t.cfg.NameEncoding == "auto" && lang == "83")
	var b strings.Builder
	for _, c := range cmds {
		text := c.Text
		if gb {
			enc, err := EncodeGB18030(text)
			if err != nil {
				t.log.Warn("zkpush: command not encodable in GB18030, sent in UTF-8", "id", c.ID, "err", err)
			} else {
				text = string(enc)
			}
		}
		fmt.Fprintf(&b, "C:%s:%s\n", c.ID, text)
		if c.Tries > 1 {
			t.log.Info("zkpush: command sent again, no result came", "id", c.ID, "tries", c.Tries)
		}
	}
	return http.StatusOK, b.String()
}

// results records the terminal's command results.
func (t *Terminal) results(body []byte, now time.Time) (int, string) {
	rs, err := ParseResults(body)
	if err != nil {
		t.mu.Lock()
		t.dropped++
		t.mu.Unlock()
		t.log.Warn("zkpush: devicecmd lines refused", "err", err)
	}
	for _, r := range rs {
		c, ok, err := t.q.finish(r.ID, r.Return, now)
		switch {
		case err != nil:
			t.fail("command %s result not kept: %v", r.ID, err)
		case !ok:
			t.log.Warn("zkpush: result for a command not in the queue", "id", r.ID, "return", r.Return)
		case r.Return == 0 || (r.Return == -10 && strings.HasPrefix(c.Text, "DATA DELETE")):
			t.log.Info("zkpush: command done", "id", r.ID, "command", clip(c.Text))
		default:
			t.fail("command %s (%s) failed on the terminal: return %d (%s)", r.ID, clip(c.Text), r.Return, returnText(r.Return))
		}
	}
	return http.StatusOK, "OK"
}

// returnText names a command's return code.
func returnText(code int) string {
	switch code {
	case 0:
		return "success"
	case -1:
		return "bad parameter"
	case -3:
		return "read/write error"
	case -10:
		return "user not on the device"
	case -1001:
		return "capacity"
	case -1002:
		return "not supported"
	case -1003:
		return "timeout"
	case -1005:
		return "busy"
	}
	return "unknown"
}

// keyRing is a set of strings that forgets the oldest beyond its capacity.
type keyRing struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newKeyRing(n int) *keyRing {
	return &keyRing{set: make(map[string]struct{}), ring: make([]string, n)}
}

func (k *keyRing) has(s string) bool { _, ok := k.set[s]; return ok }

func (k *keyRing) add(s string) {
	if k.has(s) {
		return
	}
	if old := k.ring[k.next]; old != "" {
		delete(k.set, old)
	}
	k.ring[k.next] = s
	k.set[s] = struct{}{}
	k.next = (k.next + 1) % len(k.ring)
}
