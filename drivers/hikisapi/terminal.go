package hikisapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// FlagClockOff is the doubt flag of a reading whose terminal clock is off by more than
// Config.ClockTolerance. FlagFaceDuplicate marks a reading of a trainee whose face the terminal
// refused as already enrolled under another person.
const (
	FlagClockOff      = "terminal_clock_off"
	FlagFaceDuplicate = "face_duplicate"
)

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("hikisapi: terminal closed")

// Terminal is one Hikvision terminal as a drivers.Source. It owns a push receiver (an HTTP
// server) or an alertStream reader, and a maintenance loop that configures httpHosts and fills
// gaps from the event history; Close stops and waits for them.
type Terminal struct {
	cfg   Config
	name  string
	log   *slog.Logger
	evs   drivers.EvidenceStore
	cl    *client
	st    *state
	allow []net.IP // the terminal's addresses: pushes from elsewhere are refused

	out   chan drivers.Reading
	fatal chan error // the push receiver stopped: Next reports it once
	gap   chan struct{}
	quit  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	srv   *http.Server
	now   func() time.Time
	// cbHost and cbPort are the push URL's host and port as configured on the terminal (the
	// listener's own port when Listen asks for port 0).
	cbHost, cbPort string

	refusedLog rateLimit
}

var (
	_ drivers.Source         = (*Terminal)(nil)
	_ drivers.HealthReporter = (*Terminal)(nil)
	_ drivers.PersonSyncer   = (*Terminal)(nil)
)

// Open validates cfg and starts receiving: in push mode it listens on cfg.Listen before it
// returns; everything that talks to the terminal (httpHosts, history, the alertStream) runs in
// the background, so that a terminal which is unreachable or has locked the account still has
// its pushes received. Open fails only on a bad config or a listen address it cannot take.
func Open(ctx context.Context, cfg Config, env drivers.Env) (*Terminal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pass, err := cfg.password()
	if err != nil {
		return nil, drivers.Field("password_file", "%v", err)
	}
	base, _ := cfg.baseURL()
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := stateFor(base.String() + "|" + cfg.Username)
	t := &Terminal{cfg: cfg, name: env.Name, log: log, evs: env.Evidence, st: st,
		out: make(chan drivers.Reading), fatal: make(chan error, 1), gap: make(chan struct{}, 1), quit: make(chan struct{}), now: time.Now}
	t.refusedLog.every = time.Minute
	t.cl = newClient(base, cfg.Username, pass, time.Duration(cfg.RequestTimeout), time.Duration(cfg.AuthRetry), &st.gate)
	t.cl.onDate = func(d, sent time.Time) { t.clockSample(d, sent) }
	t.cl.onContact = func() { st.count(func(s *state) { s.lastContact = t.now() }) }
	st.gate.mu.Lock()
	st.gate.onLockEvent = t.onLock
	st.gate.mu.Unlock()
	if ips, err := net.DefaultResolver.LookupIP(ctx, "ip", base.Hostname()); err == nil {
		t.allow = ips
	}
	st.count(func(s *state) {
		s.opens++
		if s.opens > 1 {
			s.health.Reopens = s.opens - 1
		}
	})
	if cfg.Receive == ReceivePush {
		lc := net.ListenConfig{}
		ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("hikisapi: listen: %w", err)
		}
		t.cbHost, t.cbPort, _ = cfg.callback()
		if t.cbPort == "0" {
			_, t.cbPort, _ = net.SplitHostPort(ln.Addr().String())
		}
		mux := http.NewServeMux()
		mux.HandleFunc(cfg.CallbackPath, t.serveEvent)
		rt := time.Duration(cfg.RequestTimeout)
		t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: rt, ReadTimeout: 2 * rt, WriteTimeout: 4 * rt,
			IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.fatal <- fmt.Errorf("hikisapi: push receiver: %w", err)
			}
		}()
	}
	ictx, cancel := context.WithCancel(context.Background())
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		<-t.quit
		cancel()
	}()
	t.wg.Add(1)
	go func() { defer t.wg.Done(); t.maintain(ictx) }()
	if cfg.Receive == ReceiveStream {
		t.wg.Add(1)
		go func() { defer t.wg.Done(); t.streamLoop(ictx) }()
	}
	if t.cl.checkGate() == nil {
		st.setState(drivers.StateOK, "")
	} else {
		st.setState(drivers.StateDegraded, "")
	}
	return t, nil
}

// Next returns the next reading, blocking until there is one, ctx is done or the source is
// closed. Each reading's Done must be called: a pushed event is answered to the terminal only
// then (200 when recorded, 503 when NotRecorded, so the terminal sends it again). An error other
// than ctx's (the push receiver stopped, ErrClosed) means the source must be closed and reopened.
func (t *Terminal) Next(ctx context.Context) (drivers.Reading, error) {
	select {
	case r := <-t.out:
		return r, nil
	case err := <-t.fatal:
		return drivers.Reading{}, err
	case <-ctx.Done():
		return drivers.Reading{}, ctx.Err()
	case <-t.quit:
		return drivers.Reading{}, ErrClosed
	}
}

// Close stops the receiver and the background loops and waits for them (at most the request
// timeout for a push in progress).
func (t *Terminal) Close() error {
	t.once.Do(func() {
		close(t.quit)
		if t.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(t.cfg.RequestTimeout))
			defer cancel()
			if err := t.srv.Shutdown(ctx); err != nil {
				t.srv.Close()
			}
		}
		t.wg.Wait()
		t.cl.close()
		t.st.setState(drivers.StateDown, "")
	})
	return nil
}

// Status is a terminal's state beyond drivers.Health: when it was last heard from, how far its
// clock is off, and why it is not being asked anything (a locked account).
type Status struct {
	drivers.Health
	LastContact time.Time     `json:"last_contact"`
	ClockOffset time.Duration `json:"clock_offset_ns"` // terminal minus box
	ClockKnown  bool          `json:"clock_known"`
	Failures    uint64        `json:"failures"`   // ISAPI requests and streams that failed
	Duplicates  uint64        `json:"duplicates"` // resent events answered without a reading
	Ignored     uint64        `json:"ignored"`    // events of codes that are no reading
	// LockedUntil: nothing is sent to the terminal before this, the end of its lock or of the
	// wait after a rejected password (LastErr says which).
	LockedUntil  time.Time `json:"locked_until,omitzero"`
	AuthRejected uint64    `json:"auth_rejected"` // authenticated requests the terminal refused
	// FaceDuplicates lists trainees whose photo the terminal refused as another person's face.
	FaceDuplicates map[string]string `json:"face_duplicates,omitempty"`
}

// Health reports the source's state and counters for kaoqin status.
func (t *Terminal) Health() drivers.Health {
	s := t.Status()
	h := s.Health
	h.LastContact = s.LastContact
	h.Info = map[string]string{"failures": fmt.Sprint(s.Failures), "duplicates": fmt.Sprint(s.Duplicates),
		"ignored": fmt.Sprint(s.Ignored), "auth_rejected": fmt.Sprint(s.AuthRejected)}
	if s.ClockKnown {
		h.Info["clock_offset"] = s.ClockOffset.String()
	}
	if !s.LockedUntil.IsZero() {
		h.Info["locked_until"] = s.LockedUntil.Format(time.RFC3339)
	}
	for trainee, other := range s.FaceDuplicates {
		h.Info["face_duplicate "+trainee] = other
	}
	return h
}

// Status reports the terminal's state in full.
func (t *Terminal) Status() Status {
	g := &t.st.gate
	g.mu.Lock()
	until, rejected, lockErr := g.until, g.attempts, g.lastErr
	g.mu.Unlock()
	s := t.st
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Status{Health: s.health, LastContact: s.lastContact, ClockOffset: s.clockOffset, ClockKnown: s.clockKnown,
		Failures: s.failures, Duplicates: s.duplicates, Ignored: s.ignored, AuthRejected: rejected}
	if lockErr != nil && t.now().Before(until) {
		// The credentials' standing is the gate's, shared by every open of this terminal.
		out.LockedUntil, out.LastErr = until, lockErr.Error()
		if out.State == drivers.StateOK || out.State == drivers.StateStarting {
			out.State = drivers.StateDegraded
		}
	}
	if len(s.faceDups) > 0 {
		out.FaceDuplicates = make(map[string]string, len(s.faceDups))
		for k, v := range s.faceDups {
			out.FaceDuplicates[k] = v
		}
	}
	return out
}

func (t *Terminal) onLock(e *LockError) {
	msg := e.Error()
	if errors.Is(e, ErrLocked) {
		t.log.Error("hikisapi: the terminal locked the account after wrong passwords; not trying again before the unlock time",
			"unlock_time", e.Until.Format(time.RFC3339))
	} else {
		t.log.Error("hikisapi: the terminal rejected the password; not trying again before", "next_attempt", e.Until.Format(time.RFC3339),
			"attempts_left", e.RetryLeft)
	}
	t.st.setState(drivers.StateDegraded, msg)
}

// clockSample records the terminal's clock (an event's dateTime, or a Date header) against the
// box's at the moment the terminal read its clock (for a Date header: when the request left, as
// the answer may come back after a newer sample). An older sample than the last is ignored.
func (t *Terminal) clockSample(terminal, box time.Time) {
	if terminal.IsZero() {
		return
	}
	t.st.count(func(s *state) {
		if box.Before(s.clockAt) {
			return
		}
		s.clockOffset, s.clockKnown, s.clockAt = terminal.Sub(box), true, box
	})
}

func (t *Terminal) clockOff() (time.Duration, bool) {
	s := t.st
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.clockOffset
	if off < 0 {
		off = -off
	}
	return s.clockOffset, s.clockKnown && off > time.Duration(t.cfg.ClockTolerance)
}

func (t *Terminal) drop(msg string, args ...any) {
	t.st.count(func(s *state) { s.health.Dropped++ })
	if t.refusedLog.allow(t.now()) {
		t.log.Warn(msg, args...)
	}
}

// rateLimit lets one log line through per interval.
type rateLimit struct {
	mu    sync.Mutex
	every time.Duration
	last  time.Time
	n     int
}

func (r *rateLimit) allow(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.last) < r.every && r.n >= 5 {
		return false
	}
	if now.Sub(r.last) >= r.every {
		r.last, r.n = now, 0
	}
	r.n++
	return true
}

var errNotRecorded = errors.New("hikisapi: the agent could not record the reading")

// deliver turns an event into a reading, hands it to Next and waits for its outcome. It returns
// nil for events that are no reading and for events already recorded; an error means the event
// is not recorded and should come again (a push is answered 503).
func (t *Terminal) deliver(ctx context.Context, ev Event, via string) error {
	rule, ok := classify(&ev)
	if !ok {
		t.st.count(func(s *state) { s.ignored++ })
		t.log.Debug("hikisapi: event is no reading", "major", ev.Major, "minor", ev.Minor, "serial_no", ev.SerialNo, "via", via)
		return nil
	}
	if ev.HasSerial {
		// One reading per serialNo at a time: a resend or a history entry arriving while the
		// same event is with the agent waits for its outcome instead of being handed over twice.
		release, dup, err := t.claim(ctx, ev.SerialNo)
		if err != nil {
			return err
		}
		if dup {
			t.st.count(func(s *state) { s.duplicates++ })
			t.log.Debug("hikisapi: event already recorded, answered without a reading", "serial_no", ev.SerialNo, "via", via)
			return nil
		}
		defer release()
	}
	if ev.HasSerial {
		// A live event whose serialNo jumps past the highest seen is a gap; so is the first live
		// event of the process, which cannot tell (one history query settles it).
		var gap bool
		t.st.count(func(s *state) {
			gap = s.maxSerial == 0 || ev.SerialNo > s.maxSerial+1
			s.maxSerial = max(s.maxSerial, ev.SerialNo)
		})
		if gap && via != "history" {
			t.requestGapFill()
		}
	}
	r := drivers.Reading{Source: t.name, Method: rule.method, At: ev.Time, Key: t.key(&ev)}
	if r.At.IsZero() {
		r.At = t.now()
	}
	if rule.granted {
		r.Subject = ev.EmployeeNo
	}
	switch strings.ToLower(ev.AttendanceStatus) {
	case "checkin":
		r.Intent = drivers.SignIn
	case "checkout":
		r.Intent = drivers.SignOut
	}
	detail := fmt.Sprintf("hikvision %d/%d serialNo %d via %s", ev.Major, ev.Minor, ev.SerialNo, via)
	if !ev.HasSerial {
		detail = fmt.Sprintf("hikvision %d/%d without serialNo via %s", ev.Major, ev.Minor, via)
	}
	if !rule.granted && ev.EmployeeNo != "" {
		detail += " employeeNo " + ev.EmployeeNo
	}
	r.Detail = detail
	if _, off := t.clockOff(); off {
		r.Flags = append(r.Flags, FlagClockOff)
	}
	if r.Subject != "" {
		t.st.mu.Lock()
		_, dup := t.st.faceDups[r.Subject]
		t.st.mu.Unlock()
		if dup {
			r.Flags = append(r.Flags, FlagFaceDuplicate)
		}
	}
	for i, pic := range ev.Pictures {
		if t.evs == nil {
			break
		}
		if !isJPEG(pic) {
			t.log.Warn("hikisapi: picture part is no JPEG, not kept", "serial_no", ev.SerialNo, "part", i)
			continue
		}
		ref, err := t.evs.PutEvidence(drivers.Frame, pic)
		if err != nil {
			return fmt.Errorf("hikisapi: evidence: %w", err)
		}
		r.Evidence = append(r.Evidence, ref)
	}
	done := make(chan drivers.Verdict, 1)
	serial, has := ev.SerialNo, ev.HasSerial
	r.Done = func(v drivers.Verdict) {
		if v != drivers.NotRecorded && has {
			t.st.markRecorded(serial)
		}
		done <- v
	}
	select {
	case t.out <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.quit:
		return ErrClosed
	}
	t.st.count(func(s *state) { s.health.Readings++ })
	var v drivers.Verdict
	select {
	case v = <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.quit:
		return ErrClosed
	}
	if v == drivers.NotRecorded {
		return errNotRecorded
	}
	if !ev.Time.IsZero() {
		t.st.count(func(s *state) {
			if ev.Time.After(s.lastEvent) {
				s.lastEvent = ev.Time
			}
		})
	}
	return nil
}

// claim makes the caller the one who delivers serial, waiting while another does. dup is true
// when the serial is recorded (before or by the one waited for); otherwise release must be called
// once the delivery is over.
func (t *Terminal) claim(ctx context.Context, serial uint64) (release func(), dup bool, err error) {
	s := t.st
	for {
		s.mu.Lock()
		if _, ok := s.recorded[serial]; ok {
			s.mu.Unlock()
			return nil, true, nil
		}
		ch, busy := s.inflight[serial]
		if !busy {
			ch = make(chan struct{})
			s.inflight[serial] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.inflight, serial)
				s.mu.Unlock()
				close(ch)
			}, false, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-t.quit:
			return nil, false, ErrClosed
		}
	}
}

// key is the reading's dedupe key: the terminal's serial and the event's serialNo. An event
// without a serialNo is keyed by its content (time, codes, employee), so its resends are still
// recorded once.
func (t *Terminal) key(ev *Event) string {
	if ev.HasSerial {
		return t.cfg.Serial + ":" + strconv.FormatUint(ev.SerialNo, 10)
	}
	return fmt.Sprintf("%s:t:%s:%d.%d:%s", t.cfg.Serial, ev.Time.UTC().Format(time.RFC3339), ev.Major, ev.Minor, ev.EmployeeNo)
}

func (t *Terminal) requestGapFill() {
	select {
	case t.gap <- struct{}{}:
	default:
	}
}

// allowed reports whether a push comes from the terminal's address.
func (t *Terminal) allowed(remote string) bool {
	if len(t.allow) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, a := range t.allow {
		if a.Equal(ip) {
			return true
		}
	}
	return false
}

// serveEvent receives one pushed event. It answers 200 once the event is recorded (or was
// before, or is no reading), 400 to a body that does not decode (resending it cannot help), 403
// to another host, 413 to a body over the cap, and 503 when the event could not be recorded yet,
// so that the terminal sends it again.
func (t *Terminal) serveEvent(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		http.Error(w, "POST an event", http.StatusMethodNotAllowed)
		return
	}
	if !t.allowed(r.RemoteAddr) {
		t.drop("hikisapi: push from a host that is not the terminal, refused", "remote", r.RemoteAddr)
		http.Error(w, "not this terminal", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.cfg.MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			t.drop("hikisapi: pushed body over the cap, refused", "limit", t.cfg.MaxBody, "remote", r.RemoteAddr)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		t.drop("hikisapi: reading a pushed body failed", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "read failed", http.StatusBadRequest)
		return
	}
	ev, err := DecodeEvent(r.Header.Get("Content-Type"), body)
	if err != nil {
		t.drop("hikisapi: pushed event refused", "err", err, "bytes", len(body), "content_type", r.Header.Get("Content-Type"))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := t.now()
	t.st.count(func(s *state) { s.lastContact = now })
	t.clockSample(ev.Time, now)
	if ev.Heartbeat() {
		writeOK(w)
		return
	}
	if !ev.HasSerial {
		t.log.Warn("hikisapi: pushed event without serialNo: keyed by its time and codes, and no gap can be seen from it",
			"major", ev.Major, "minor", ev.Minor, "time", ev.Time)
	}
	if err := t.deliver(r.Context(), ev, "push"); err != nil {
		t.log.Warn("hikisapi: pushed event not recorded; the terminal will send it again", "serial_no", ev.SerialNo, "err", err)
		http.Error(w, "not recorded, send again", http.StatusServiceUnavailable)
		return
	}
	writeOK(w)
}

func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"statusCode":1,"statusString":"OK","subStatusCode":"ok"}`)
}

// maintain configures httpHosts (push mode) and fills gaps from the history: at once, on every
// detected gap or reconnect, and every HistoryInterval (sooner after a failure). It never tries a rejected password
// before its time (the client's gate refuses without a request).
func (t *Terminal) maintain(ctx context.Context) {
	interval := time.Duration(t.cfg.HistoryInterval)
	retry := min(5*time.Second, interval)
	hostsDone := t.cfg.Receive != ReceivePush
	for {
		failed := false
		if !hostsDone {
			if err := t.configureHosts(ctx); err != nil {
				failed = true
				t.fail("hikisapi: configuring httpHosts failed; pushes the terminal was set up for still arrive", err)
			} else {
				hostsDone = true
				t.log.Info("hikisapi: terminal posts events here", "url", t.callbackURL())
			}
		}
		if t.cfg.History == HistoryACSEvent {
			if err := t.fillHistory(ctx); err != nil && ctx.Err() == nil {
				failed = true
				t.fail("hikisapi: history query failed", err)
			}
		}
		// After a failure try again sooner (5 s doubling up to the interval); a locked account
		// is not asked anything before its time whatever the pause (the client's gate).
		wait := interval
		if failed {
			wait, retry = retry, min(2*retry, interval)
		} else {
			retry = min(5*time.Second, interval)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-t.gap:
			timer.Stop()
		}
	}
}

// fail counts and logs a failed exchange with the terminal; a locked account was logged once
// by onLock and is only counted.
func (t *Terminal) fail(msg string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	t.st.count(func(s *state) { s.failures++ })
	var le *LockError
	if errors.As(err, &le) {
		t.log.Debug(msg, "err", err)
		return
	}
	t.st.setState(drivers.StateDegraded, err.Error())
	t.log.Warn(msg, "err", err)
}

func (t *Terminal) callbackURL() string {
	return "http://" + net.JoinHostPort(t.cbHost, t.cbPort) + t.cfg.CallbackPath
}

// configureHosts writes the httpHosts slot that makes the terminal post its events to us.
func (t *Terminal) configureHosts(ctx context.Context) error {
	host, port := t.cbHost, t.cbPort
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("hikisapi: callback port %q: %w", port, err)
	}
	addrType := "ipaddress"
	if net.ParseIP(host) == nil {
		addrType = "hostname"
	}
	n := map[string]any{"id": t.cfg.HTTPHostID, "url": t.cfg.CallbackPath, "protocolType": "HTTP",
		"parameterFormatType": "JSON", "addressingFormatType": addrType, "portNo": p, "httpAuthenticationMethod": "none"}
	if addrType == "ipaddress" {
		n["ipAddress"] = host
	} else {
		n["hostName"] = host
	}
	body, _ := json.Marshal(map[string]any{"HttpHostNotification": n})
	return t.cl.call(ctx, http.MethodPut, "/ISAPI/Event/notification/httpHosts/"+t.cfg.HTTPHostID+"?format=json", "application/json", body, nil)
}

// acsInfo is one history entry.
type acsInfo struct {
	Major            flexInt    `json:"major"`
	Minor            flexInt    `json:"minor"`
	Time             string     `json:"time"`
	EmployeeNoString flexString `json:"employeeNoString"`
	Name             string     `json:"name"`
	SerialNo         flexInt    `json:"serialNo"`
	CurrentVerify    string     `json:"currentVerifyMode"`
	Attendance       string     `json:"attendanceStatus"`
	PictureURL       string     `json:"pictureURL"`
}

type acsEventAnswer struct {
	AcsEvent struct {
		SearchID           string    `json:"searchID"`
		TotalMatches       int       `json:"totalMatches"`
		ResponseStatusStrg string    `json:"responseStatusStrg"`
		NumOfMatches       int       `json:"numOfMatches"`
		InfoList           []acsInfo `json:"InfoList"`
	} `json:"AcsEvent"`
}

const maxHistoryPages = 2000

// fillHistory pages through AcsEvent from the last event recorded (or Backfill ago) to now, in
// the terminal's own clock, and delivers every access event not yet recorded, in order.
func (t *Terminal) fillHistory(ctx context.Context) error {
	t.st.mu.Lock()
	from, noHistory, off := t.st.lastEvent, t.st.noHistory, t.st.clockOffset
	t.st.mu.Unlock()
	if noHistory {
		return nil
	}
	now := t.now().Add(off)
	if from.IsZero() {
		from = now.Add(-time.Duration(t.cfg.Backfill))
	} else {
		from = from.Add(-time.Minute)
	}
	zone := chinaTime
	if _, o := from.Zone(); o != 0 || from.Location() != time.UTC {
		zone = from.Location()
	}
	var idb [8]byte
	rand.Read(idb[:])
	searchID := hex.EncodeToString(idb[:])
	pos, delivered := 0, 0
	for page := 0; page < maxHistoryPages; page++ {
		cond := map[string]any{"AcsEventCond": map[string]any{"searchID": searchID, "searchResultPosition": pos, "maxResults": 30,
			"major": majorEvent, "minor": 0,
			"startTime": from.In(zone).Format(time.RFC3339), "endTime": now.Add(time.Hour).In(zone).Format(time.RFC3339)}}
		body, _ := json.Marshal(cond)
		var ans acsEventAnswer
		err := t.cl.call(ctx, http.MethodPost, "/ISAPI/AccessControl/AcsEvent?format=json", "application/json", body, &ans)
		var se *StatusError
		if errors.As(err, &se) && (se.SubStatus == "notSupport" || se.HTTP == http.StatusNotFound) {
			t.st.count(func(s *state) { s.noHistory = true })
			t.log.Warn("hikisapi: the terminal has no event history (notSupport): gaps cannot be filled, only live events arrive")
			return nil
		}
		if err != nil {
			return err
		}
		a := ans.AcsEvent
		for _, in := range a.InfoList {
			ev, err := in.event()
			if err != nil {
				t.drop("hikisapi: history entry refused", "err", err)
				continue
			}
			if ev.HasSerial && t.st.isRecorded(ev.SerialNo) {
				continue
			}
			if _, ok := classify(&ev); ok && in.PictureURL != "" && t.evs != nil {
				pic, err := t.cl.fetch(ctx, in.PictureURL, t.cfg.MaxBody)
				if err != nil {
					t.log.Warn("hikisapi: capture of a history event not fetched; the reading goes without it", "serial_no", ev.SerialNo, "err", err)
				} else {
					ev.Pictures = [][]byte{pic}
				}
			}
			if err := t.deliver(ctx, ev, "history"); err != nil {
				return err
			}
			delivered++
		}
		status := strings.ToUpper(strings.TrimSpace(a.ResponseStatusStrg))
		if status != "MORE" || a.NumOfMatches <= 0 {
			break
		}
		pos += a.NumOfMatches
	}
	if delivered > 0 {
		t.log.Info("hikisapi: history query filled a gap", "events", delivered)
	}
	t.log.Debug("hikisapi: history query done", "from", from, "delivered", delivered)
	t.st.setState(drivers.StateOK, "")
	return nil
}

func (in *acsInfo) event() (Event, error) {
	ev := Event{Type: "AccessControllerEvent", Major: int(in.Major.v), Minor: int(in.Minor.v), EmployeeNo: string(in.EmployeeNoString),
		Name: strings.ToValidUTF8(in.Name, "\uFFFD"), VerifyMode: in.CurrentVerify, AttendanceStatus: in.Attendance, PictureURL: in.PictureURL}
	if in.SerialNo.set && in.SerialNo.v >= 0 {
		ev.SerialNo, ev.HasSerial = uint64(in.SerialNo.v), true
	}
	if in.Time != "" {
		tm, err := parseTime(in.Time)
		if err != nil {
			return Event{}, fmt.Errorf("hikisapi: history time: %w", err)
		}
		ev.Time = tm
	}
	return ev, nil
}

// streamLoop holds the alertStream, reconnecting after any failure with a growing pause (1 s to
// 30 s; until the unlock time for a locked account), and asks for a gap fill after each.
func (t *Terminal) streamLoop(ctx context.Context) {
	pause := time.Second
	for ctx.Err() == nil {
		parts, err := t.streamOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		t.fail("hikisapi: alertStream ended; reconnecting", err)
		t.requestGapFill()
		if parts > 0 {
			pause = time.Second
		}
		wait := pause
		var le *LockError
		if errors.As(err, &le) {
			wait = time.Until(le.Until)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// streamOnce reads one alertStream until it fails or goes silent for HeartbeatTimeout. A part cut
// off by the connection's end is discarded (its event comes back through the history query).
func (t *Terminal) streamOnce(ctx context.Context) (parts int, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hb := time.Duration(t.cfg.HeartbeatTimeout)
	errSilent := fmt.Errorf("hikisapi: alertStream silent for %v", hb)
	watchdog := time.AfterFunc(hb, func() { cancel(errSilent) })
	defer watchdog.Stop()
	resp, err := t.cl.do(ctx, http.MethodGet, "/ISAPI/Event/notification/alertStream", "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)) // the status, if any, names the failure
		if st := parseStatus(b); st != nil {
			st.HTTP = resp.StatusCode
			return 0, st
		}
		return 0, fmt.Errorf("hikisapi: alertStream: %s", resp.Status)
	}
	br := bufio.NewReaderSize(resp.Body, 4<<10)
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")) // no boundary: sniffed below
	boundary := params["boundary"]
	if boundary == "" {
		peek, _ := br.Peek(100)
		boundary = sniffBoundary(peek)
		if boundary == "" {
			return 0, fmt.Errorf("hikisapi: alertStream: %w", ErrNoBoundary)
		}
	}
	t.st.setState(drivers.StateOK, "")
	t.log.Info("hikisapi: alertStream open")
	mr := multipart.NewReader(br, boundary)
	var cur *Event
	need := 0
	flush := func() error {
		if cur == nil {
			return nil
		}
		ev := *cur
		cur = nil
		watchdog.Stop() // the wait for the agent is not the terminal's silence
		defer watchdog.Reset(hb)
		return t.deliver(ctx, ev, "stream")
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
				err = c
			}
			if ferr := flush(); ferr != nil && ctx.Err() == nil {
				return parts, ferr
			}
			return parts, fmt.Errorf("hikisapi: alertStream: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(p, t.cfg.MaxBody+1))
		if err != nil {
			t.drop("hikisapi: alertStream part cut off, discarded", "err", err)
			if ferr := flush(); ferr != nil && ctx.Err() == nil {
				return parts, ferr
			}
			if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
				err = c
			}
			return parts, fmt.Errorf("hikisapi: alertStream: part cut off: %w", err)
		}
		parts++
		watchdog.Reset(hb)
		t.st.count(func(s *state) { s.lastContact = t.now() })
		if int64(len(data)) > t.cfg.MaxBody {
			t.drop("hikisapi: alertStream part over the cap, discarded", "limit", t.cfg.MaxBody)
			continue
		}
		if isJPEG(data) && cur != nil && need > 0 {
			cur.Pictures = append(cur.Pictures, data)
			if need--; need == 0 {
				if err := flush(); err != nil {
					return parts, err
				}
			}
			continue
		}
		if err := flush(); err != nil {
			return parts, err
		}
		if partKind(p.Header, data) != partEvent {
			t.drop("hikisapi: alertStream part is neither an event nor its picture, discarded", "content_type", p.Header.Get("Content-Type"))
			continue
		}
		ev, err := decodeBare(data)
		if err != nil {
			t.drop("hikisapi: alertStream event refused", "err", err)
			continue
		}
		t.clockSample(ev.Time, t.now())
		if ev.Heartbeat() {
			continue
		}
		if ev.PicturesNumber > 0 {
			cur, need = &ev, ev.PicturesNumber
			continue
		}
		cur = &ev
		if err := flush(); err != nil {
			return parts, err
		}
	}
}
