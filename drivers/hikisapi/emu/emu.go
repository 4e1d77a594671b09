// Package emu emulates a Hikvision DS-K1T face terminal's ISAPI for tests and demos, speaking the
// bytes of the team's protocol notes (shared/protocols/hikvision-isapi.md): HTTP Digest
// authentication (MD5 or SHA-256, qop=auth) with the lock after wrong passwords, httpHosts and
// the events it pushes (multipart with a JPEG, bare JSON or XML), the alertStream with heartbeats,
// the AcsEvent history with paging, the capture pictures, and the person and face endpoints
// (faceDuplicate when the same photo is uploaded for another person; deviceBusy for a second
// write while one is in progress).
//
// A Terminal is an http.Handler; tests serve it with net/http/httptest, Run serves it on an
// address and plays a script. Faults are methods: Cut (the network is gone), StopMidPart (the
// next streamed event is cut off in the middle), SetClockOffset (a clock far off).
package emu

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Minor codes of major 5 (access events) the emulator produces.
const (
	MinorCard        = 0x01 // MINOR_LEGAL_CARD_PASS
	MinorInvalidCard = 0x09
	MinorFingerprint = 0x26 // 38
	MinorFacePass    = 0x4b // 75
	MinorFaceFail    = 0x4c // 76, a stranger
	MinorDoorOpen    = 0x15 // 21, MINOR_DOOR_OPEN_NORMAL: no reading
)

// Push formats (Config.PushFormat).
const (
	PushMultipart  = "multipart"             // event_log part then a picture part
	PushNoBoundary = "multipart-no-boundary" // the same body, its Content-Type without boundary=
	PushJSON       = "json"
	PushXML        = "xml"
)

// Config sets up an emulated terminal; zero fields take the defaults.
type Config struct {
	Serial    string        // default "DS-K1T341AM20231120V030700ENE00000001"
	User      string        // default "admin"
	Password  string        // default "12345abc"
	Algorithm string        // "MD5" (default) or "SHA-256"
	LockAfter int           // wrong passwords before the lock, default 5
	LockFor   time.Duration // default 30 minutes
	// Heartbeat is the alertStream's heartbeat period, default 10 s.
	Heartbeat time.Duration
	// MaxResults caps a history page, default 30.
	MaxResults int
	// PushFormat is how events are posted to the httpHosts URL, default multipart.
	PushFormat string
	// StreamXML sends alertStream events as XML parts instead of JSON (firmware varies).
	StreamXML bool
	// PushTimeout bounds one push; PushRetries is how many times a push that was not answered
	// 200 is sent again (default 2).
	PushTimeout time.Duration
	PushRetries int
	Log         *slog.Logger
}

// Event is one event in the terminal's log.
type Event struct {
	Serial     uint64
	Time       time.Time // the terminal's clock
	Major      int
	Minor      int
	EmployeeNo string
	Name       string
	Picture    []byte
	NoSerial   bool // sent without serialNo (a firmware quirk)
}

// Person is a person record on the terminal.
type Person struct {
	EmployeeNo string
	Name       string
	Begin, End string // Valid.beginTime / endTime as written
	Enable     bool
}

// Terminal is an emulated terminal. Its methods are safe for concurrent use.
type Terminal struct {
	cfg Config
	log *slog.Logger

	mu          sync.Mutex
	clockOff    time.Duration
	cut         bool
	cutCh       chan struct{} // closed when a cut starts
	midPart     bool
	powerCut    bool
	events      []Event
	nextSerial  uint64
	nonces      map[string]bool
	failures    int
	authFails   int
	lockedUntil time.Time
	hosts       map[string]hostNotification
	streams     map[chan Event]struct{}
	persons     map[string]Person
	faces       map[string][]byte // FPID -> photo
	writing     int
	maxWriting  int
	busy        int
	pushed      int
	requests    map[string]int
}

type hostNotification struct {
	ID                  string `json:"id"`
	URL                 string `json:"url"`
	ProtocolType        string `json:"protocolType"`
	ParameterFormatType string `json:"parameterFormatType"`
	AddressingFormat    string `json:"addressingFormatType"`
	IPAddress           string `json:"ipAddress"`
	HostName            string `json:"hostName"`
	PortNo              int    `json:"portNo"`
}

// New makes a terminal with an empty log.
func New(cfg Config) *Terminal {
	if cfg.Serial == "" {
		cfg.Serial = "DS-K1T341AM20231120V030700ENE00000001"
	}
	if cfg.User == "" {
		cfg.User = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = "12345abc"
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = "MD5"
	}
	if cfg.LockAfter == 0 {
		cfg.LockAfter = 5
	}
	if cfg.LockFor == 0 {
		cfg.LockFor = 30 * time.Minute
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.MaxResults == 0 {
		cfg.MaxResults = 30
	}
	if cfg.PushFormat == "" {
		cfg.PushFormat = PushMultipart
	}
	if cfg.PushTimeout == 0 {
		cfg.PushTimeout = 10 * time.Second
	}
	if cfg.PushRetries == 0 {
		cfg.PushRetries = 2
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Terminal{cfg: cfg, log: log, nextSerial: 1, nonces: map[string]bool{}, hosts: map[string]hostNotification{},
		streams: map[chan Event]struct{}{}, persons: map[string]Person{}, faces: map[string][]byte{}, cutCh: make(chan struct{}),
		requests: map[string]int{}}
}

var china = time.FixedZone("CST", 8*3600)

// Now is the terminal's clock: the box's plus the offset set by SetClockOffset, in UTC+8.
func (t *Terminal) Now() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Now().Add(t.clockOff).In(china).Truncate(time.Second)
}

// SetClockOffset sets the terminal's clock off the true time by d.
func (t *Terminal) SetClockOffset(d time.Duration) {
	t.mu.Lock()
	t.clockOff = d
	t.mu.Unlock()
}

// Cut starts (true) or ends (false) a network cut: requests are dropped without an answer, open
// streams break, and events are logged but not pushed.
func (t *Terminal) Cut(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if on && !t.cut {
		close(t.cutCh)
	}
	if !on && t.cut {
		t.cutCh = make(chan struct{})
	}
	t.cut = on
}

// StopMidPart makes the next streamed event stop in the middle of its part, the connection closed.
func (t *Terminal) StopMidPart() {
	t.mu.Lock()
	t.midPart = true
	t.mu.Unlock()
}

// PowerCutMidPush makes the next push stop halfway through its body, the connection dropped, as
// when the terminal loses power mid-upload. The event stays in the log (its history).
func (t *Terminal) PowerCutMidPush() {
	t.mu.Lock()
	t.powerCut = true
	t.mu.Unlock()
}

// AuthFailures is how many authenticated requests had a wrong password.
func (t *Terminal) AuthFailures() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.authFails
}

// Requests counts the requests to a path (without its query), authenticated or not.
func (t *Terminal) Requests(path string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requests[path]
}

// MaxConcurrentWrites is the most writes the terminal saw in progress at once, and Busy how many
// it answered deviceBusy.
func (t *Terminal) MaxConcurrentWrites() (max, busy int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxWriting, t.busy
}

// HTTPHost is the URL the terminal posts events to, "" before httpHosts is configured.
func (t *Terminal) HTTPHost() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hostURLLocked()
}

func (t *Terminal) hostURLLocked() string {
	ids := make([]string, 0, len(t.hosts))
	for id := range t.hosts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		h := t.hosts[id]
		host := h.IPAddress
		if host == "" {
			host = h.HostName
		}
		if host == "" || h.PortNo == 0 {
			continue
		}
		return fmt.Sprintf("http://%s:%d%s", host, h.PortNo, h.URL)
	}
	return ""
}

// Persons lists the person records, by employeeNo.
func (t *Terminal) Persons() map[string]Person {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Person, len(t.persons))
	for k, v := range t.persons {
		out[k] = v
	}
	return out
}

// AddPerson writes a person record directly, as an installer at the terminal's screen would.
func (t *Terminal) AddPerson(p Person) {
	t.mu.Lock()
	t.persons[p.EmployeeNo] = p
	t.mu.Unlock()
}

// Faces lists the enrolled face photos, by FPID.
func (t *Terminal) Faces() map[string][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string][]byte, len(t.faces))
	for k, v := range t.faces {
		out[k] = v
	}
	return out
}

// Events lists the terminal's log.
func (t *Terminal) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Event(nil), t.events...)
}

// Punch logs an event at the terminal's clock (e.Time, if set, is used as it is), gives it the
// next serialNo, sends it to every open alertStream and pushes it to the httpHosts URL (unless the
// network is cut), and returns it. The push error is nil when there is no URL or it was answered 200.
func (t *Terminal) Punch(ctx context.Context, e Event) (Event, error) {
	if e.Major == 0 {
		e.Major = 5
	}
	now := t.Now()
	t.mu.Lock()
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Serial = t.nextSerial
	t.nextSerial++
	t.events = append(t.events, e)
	cut := t.cut
	for ch := range t.streams {
		select {
		case ch <- e:
		default: // a stream reader that does not keep up loses live events, as on the device
		}
	}
	url := t.hostURLLocked()
	t.mu.Unlock()
	if cut || url == "" {
		return e, nil
	}
	return e, t.push(ctx, url, e)
}

// Replay pushes logged events again, as a terminal does whose pushes timed out.
func (t *Terminal) Replay(ctx context.Context, evs []Event) error {
	url := t.HTTPHost()
	if url == "" {
		return errors.New("emu: no httpHosts configured")
	}
	for _, e := range evs {
		if err := t.push(ctx, url, e); err != nil {
			return err
		}
	}
	return nil
}

// Pushed is how many pushes were answered 200.
func (t *Terminal) Pushed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pushed
}

func (t *Terminal) push(ctx context.Context, url string, e Event) error {
	body, ctype := t.pushBody(e)
	t.mu.Lock()
	cut := t.powerCut
	t.powerCut = false
	t.mu.Unlock()
	if cut {
		return t.halfPush(ctx, url, ctype, body)
	}
	var last error
	for try := 0; try <= t.cfg.PushRetries; try++ {
		pctx, cancel := context.WithTimeout(ctx, t.cfg.PushTimeout)
		req, err := http.NewRequestWithContext(pctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			cancel()
			return err
		}
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				t.mu.Lock()
				t.pushed++
				t.mu.Unlock()
				return nil
			}
			err = fmt.Errorf("emu: push answered %s", resp.Status)
		}
		cancel()
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.log.Debug("emu: push failed, retrying", "serial", e.Serial, "err", err)
	}
	return last
}

// halfPush sends the request line, the headers and half the body, then drops the connection.
func (t *Terminal) halfPush(ctx context.Context, rawURL, ctype string, body []byte) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, ctype, len(body))
	if _, err := c.Write(body[:len(body)/2]); err != nil {
		return err
	}
	t.log.Info("emu: power cut in the middle of a push")
	return errors.New("emu: power cut mid-push")
}

// EventJSON is the event's notification as the terminal sends it in JSON.
func (t *Terminal) EventJSON(e Event) []byte {
	acs := map[string]any{"deviceName": "DS-K1T341", "majorEventType": e.Major, "subEventType": e.Minor,
		"cardReaderNo": 1, "userType": "normal", "currentVerifyMode": "cardOrFaceOrFp", "attendanceStatus": "undefined",
		"mask": "no", "picturesNumber": 0}
	if !e.NoSerial {
		acs["serialNo"] = e.Serial
	}
	if e.EmployeeNo != "" {
		acs["employeeNoString"], acs["name"] = e.EmployeeNo, e.Name
	}
	if len(e.Picture) > 0 {
		acs["picturesNumber"] = 1
		acs["FaceRect"] = map[string]float64{"height": 0.3, "width": 0.2, "x": 0.4, "y": 0.3}
	}
	m := map[string]any{"ipAddress": "10.0.0.21", "portNo": 80, "protocol": "HTTP", "macAddress": "c0:56:e3:00:00:01",
		"channelID": 1, "dateTime": e.Time.Format(time.RFC3339), "activePostCount": 1, "eventType": "AccessControllerEvent",
		"eventState": "active", "eventDescription": "Access Controller Event", "AccessControllerEvent": acs}
	b, _ := json.Marshal(m)
	return b
}

// EventXML is the event's notification in XML.
func (t *Terminal) EventXML(e Event) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<EventNotificationAlert version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">`)
	fmt.Fprintf(&b, "<ipAddress>10.0.0.21</ipAddress><portNo>80</portNo><protocol>HTTP</protocol><channelID>1</channelID>")
	fmt.Fprintf(&b, "<dateTime>%s</dateTime><activePostCount>1</activePostCount><eventType>AccessControllerEvent</eventType>", e.Time.Format(time.RFC3339))
	fmt.Fprintf(&b, "<eventState>active</eventState><eventDescription>Access Controller Event</eventDescription><AccessControllerEvent>")
	fmt.Fprintf(&b, "<deviceName>DS-K1T341</deviceName><majorEventType>%d</majorEventType><subEventType>%d</subEventType>", e.Major, e.Minor)
	if e.EmployeeNo != "" {
		fmt.Fprintf(&b, "<name>%s</name><employeeNoString>%s</employeeNoString>", xmlEscape(e.Name), xmlEscape(e.EmployeeNo))
	}
	if !e.NoSerial {
		fmt.Fprintf(&b, "<serialNo>%d</serialNo>", e.Serial)
	}
	if len(e.Picture) > 0 {
		b.WriteString("<picturesNumber>1</picturesNumber>")
	}
	b.WriteString("<currentVerifyMode>cardOrFaceOrFp</currentVerifyMode></AccessControllerEvent></EventNotificationAlert>")
	return b.Bytes()
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// pushBody is the POST body of an event in the configured format.
func (t *Terminal) pushBody(e Event) ([]byte, string) {
	switch t.cfg.PushFormat {
	case PushJSON:
		return t.EventJSON(e), "application/json"
	case PushXML:
		return t.EventXML(e), "application/xml; charset=UTF-8"
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="event_log"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	pw.Write(t.EventJSON(e))
	if len(e.Picture) > 0 {
		h = textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="Picture"; filename="Picture.jpg"`)
		h.Set("Content-Type", "image/jpeg")
		pw, _ = mw.CreatePart(h)
		pw.Write(e.Picture)
	}
	mw.Close()
	if t.cfg.PushFormat == PushNoBoundary {
		return buf.Bytes(), "multipart/form-data"
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// JPEG makes a small real JPEG of one colour, a stand-in for a capture or a registration photo.
func JPEG(seed byte) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 96, 96))
	for y := 0; y < 96; y++ {
		for x := 0; x < 96; x++ {
			img.Set(x, y, color.RGBA{seed, byte(x * 2), byte(y * 2), 255})
		}
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 80})
	return b.Bytes()
}

// ServeHTTP answers ISAPI requests.
func (t *Terminal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	cut := t.cut
	t.requests[r.URL.Path]++
	t.mu.Unlock()
	if cut {
		panic(http.ErrAbortHandler) // the connection drops without an answer
	}
	w.Header().Set("Date", t.Now().UTC().Format(http.TimeFormat))
	if !t.authenticate(w, r) {
		return
	}
	p := r.URL.Path
	switch {
	case p == "/ISAPI/System/deviceInfo" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><DeviceInfo version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"><deviceName>DS-K1T341</deviceName><model>DS-K1T341AM</model><serialNumber>%s</serialNumber><firmwareVersion>V3.7.0</firmwareVersion></DeviceInfo>`, t.cfg.Serial)
	case strings.HasPrefix(p, "/ISAPI/Event/notification/httpHosts/") && r.Method == http.MethodPut:
		t.write(w, r, t.putHost)
	case p == "/ISAPI/Event/notification/alertStream" && r.Method == http.MethodGet:
		t.serveStream(w, r)
	case p == "/ISAPI/AccessControl/AcsEvent" && r.Method == http.MethodPost:
		t.serveAcsEvent(w, r)
	case strings.HasPrefix(p, "/LOCALS/pic/") && r.Method == http.MethodGet:
		t.servePicture(w, r)
	case p == "/ISAPI/AccessControl/UserInfo/Search" && r.Method == http.MethodPost:
		t.serveUserSearch(w, r)
	case p == "/ISAPI/AccessControl/UserInfo/Record" && r.Method == http.MethodPost:
		t.write(w, r, func(b []byte) (int, string, string) { return t.userRecord(b, false) })
	case p == "/ISAPI/AccessControl/UserInfo/Modify" && r.Method == http.MethodPut:
		t.write(w, r, func(b []byte) (int, string, string) { return t.userRecord(b, true) })
	case p == "/ISAPI/AccessControl/UserInfo/Delete" && r.Method == http.MethodPut:
		t.write(w, r, t.userDelete)
	case p == "/ISAPI/Intelligent/FDLib/FaceDataRecord" && r.Method == http.MethodPost:
		t.writeRequest(w, r, t.faceRecord)
	case p == "/ISAPI/Intelligent/FDLib/FDSearch/Delete" && r.Method == http.MethodPut:
		t.write(w, r, t.faceDelete)
	default:
		status(w, http.StatusNotFound, 4, "Invalid Operation", "notSupport", "")
	}
}

func status(w http.ResponseWriter, code, sc int, str, sub, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"statusCode": sc, "statusString": str, "subStatusCode": sub, "errorMsg": msg})
	w.Write(b)
}

func ok(w http.ResponseWriter) { status(w, http.StatusOK, 1, "OK", "ok", "") }

// write runs one write with the device's one-at-a-time rule: a second concurrent write is
// answered deviceBusy.
func (t *Terminal) write(w http.ResponseWriter, r *http.Request, f func(body []byte) (code int, sub, msg string)) {
	t.writeRequest(w, r, func(r *http.Request) (int, string, string) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return http.StatusBadRequest, "badParameters", err.Error()
		}
		return f(b)
	})
}

func (t *Terminal) writeRequest(w http.ResponseWriter, r *http.Request, f func(r *http.Request) (code int, sub, msg string)) {
	t.mu.Lock()
	if t.writing > 0 {
		t.busy++
		t.mu.Unlock()
		status(w, http.StatusServiceUnavailable, 2, "Device Busy", "deviceBusy", "")
		return
	}
	t.writing++
	t.maxWriting = max(t.maxWriting, t.writing)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.writing--
		t.mu.Unlock()
	}()
	time.Sleep(2 * time.Millisecond) // a write takes the device a moment: overlapping writers would meet
	code, sub, msg := f(r)
	if code == http.StatusOK {
		ok(w)
		return
	}
	status(w, code, 6, "Invalid Content", sub, msg)
}

func (t *Terminal) putHost(b []byte) (int, string, string) {
	var req struct {
		HttpHostNotification hostNotification `json:"HttpHostNotification"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return http.StatusBadRequest, "badJsonFormat", err.Error()
	}
	h := req.HttpHostNotification
	if h.ID == "" || h.URL == "" || h.PortNo <= 0 || h.PortNo > 65535 || h.IPAddress == "" && h.HostName == "" {
		return http.StatusBadRequest, "badParameters", "id, url, portNo and ipAddress or hostName are required"
	}
	t.mu.Lock()
	t.hosts[h.ID] = h
	t.mu.Unlock()
	return http.StatusOK, "", ""
}

// ---- Digest authentication ----

func (t *Terminal) hash() func() hash.Hash {
	if strings.EqualFold(t.cfg.Algorithm, "SHA-256") {
		return sha256.New
	}
	return md5.New
}

func (t *Terminal) hex(s string) string {
	h := t.hash()()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

const realm = "DS-K1T341"

// authenticate checks the Digest Authorization header; it answers 401 itself when it fails.
func (t *Terminal) authenticate(w http.ResponseWriter, r *http.Request) bool {
	a := r.Header.Get("Authorization")
	if a == "" {
		t.challenge(w, false, "")
		return false
	}
	p := map[string]string{}
	scheme, rest, _ := strings.Cut(a, " ")
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		p[strings.ToLower(k)] = strings.Trim(v, `"`)
	}
	t.mu.Lock()
	known := t.nonces[p["nonce"]]
	locked := time.Now().Before(t.lockedUntil)
	t.mu.Unlock()
	if !strings.EqualFold(scheme, "Digest") || !known {
		t.challenge(w, !known && p["nonce"] != "", "")
		return false
	}
	ha1 := t.hex(t.cfg.User + ":" + realm + ":" + t.cfg.Password)
	ha2 := t.hex(r.Method + ":" + p["uri"])
	want := t.hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	good := p["username"] == t.cfg.User && p["response"] == want && p["qop"] == "auth" && p["uri"] == r.URL.RequestURI()
	t.mu.Lock()
	if !good || locked {
		t.authFails++
		if !good {
			t.failures++
		}
		if t.failures >= t.cfg.LockAfter && !locked {
			t.lockedUntil = time.Now().Add(t.cfg.LockFor)
			locked = true
		}
		left := max(t.cfg.LockAfter-t.failures, 0)
		until := time.Until(t.lockedUntil)
		t.mu.Unlock()
		lock := "unlock"
		secs := 0
		if locked {
			lock, secs = "lock", int(until.Seconds()+0.5)
		}
		t.log.Info("emu: authentication failed", "user", p["username"], "lock", lock, "unlock_time", secs)
		t.challenge(w, false, fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><userCheck><statusValue>401</statusValue><statusString>Unauthorized</statusString><isDefaultPassword>false</isDefaultPassword><isRiskPassword>false</isRiskPassword><isActivated>true</isActivated><lockStatus>%s</lockStatus><unlockTime>%d</unlockTime><retryLoginTime>%d</retryLoginTime></userCheck>`, lock, secs, left))
		return false
	}
	t.failures = 0
	t.mu.Unlock()
	return true
}

func (t *Terminal) challenge(w http.ResponseWriter, stale bool, body string) {
	var nb [16]byte
	rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	t.mu.Lock()
	t.nonces[nonce] = true
	t.mu.Unlock()
	h := fmt.Sprintf(`Digest qop="auth", realm="%s", nonce="%s", algorithm=%s, stale="%v"`, realm, nonce, t.cfg.Algorithm, stale)
	w.Header().Set("WWW-Authenticate", h)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, body)
}

// ---- alertStream ----

const streamBoundary = "boundary"

func (t *Terminal) serveStream(w http.ResponseWriter, r *http.Request) {
	ch := make(chan Event, 64)
	t.mu.Lock()
	t.streams[ch] = struct{}{}
	cutCh := t.cutCh
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.streams, ch)
		t.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+streamBoundary)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	part := func(ctype string, body []byte) {
		fmt.Fprintf(w, "--%s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", streamBoundary, ctype, len(body))
		w.Write(body)
		io.WriteString(w, "\r\n")
	}
	beat := time.NewTicker(t.cfg.Heartbeat)
	defer beat.Stop()
	heartbeat := func() {
		b, _ := json.Marshal(map[string]any{"ipAddress": "10.0.0.21", "portNo": 80, "protocol": "HTTP", "channelID": 1,
			"dateTime": t.Now().Format(time.RFC3339), "activePostCount": 0, "eventType": "heartBeat", "eventState": "active",
			"eventDescription": "heartBeat"})
		part(`application/json; charset="UTF-8"`, b)
	}
	heartbeat()
	rc.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-cutCh:
			panic(http.ErrAbortHandler)
		case <-beat.C:
			heartbeat()
		case e := <-ch:
			b := t.EventJSON(e)
			t.mu.Lock()
			mid := t.midPart
			t.midPart = false
			t.mu.Unlock()
			if mid {
				fmt.Fprintf(w, "--%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", streamBoundary, len(b))
				w.Write(b[:len(b)/2])
				rc.Flush()
				panic(http.ErrAbortHandler)
			}
			if t.cfg.StreamXML {
				part(`application/xml; charset="UTF-8"`, t.EventXML(e))
			} else {
				part(`application/json; charset="UTF-8"`, b)
			}
			if len(e.Picture) > 0 {
				part("image/jpeg", e.Picture)
			}
		}
		rc.Flush()
	}
}

// ---- history ----

func (t *Terminal) serveAcsEvent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Cond struct {
			SearchID             string `json:"searchID"`
			SearchResultPosition int    `json:"searchResultPosition"`
			MaxResults           int    `json:"maxResults"`
			Major                int    `json:"major"`
			Minor                int    `json:"minor"`
			StartTime            string `json:"startTime"`
			EndTime              string `json:"endTime"`
		} `json:"AcsEventCond"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		status(w, http.StatusBadRequest, 6, "Invalid Content", "badJsonFormat", err.Error())
		return
	}
	c := req.Cond
	start, err1 := time.Parse(time.RFC3339, c.StartTime)
	end, err2 := time.Parse(time.RFC3339, c.EndTime)
	if c.SearchID == "" || c.MaxResults <= 0 || c.SearchResultPosition < 0 || err1 != nil || err2 != nil {
		status(w, http.StatusBadRequest, 6, "Invalid Content", "badParameters", "searchID, maxResults, startTime and endTime are required")
		return
	}
	var match []Event
	for _, e := range t.Events() {
		if (c.Major == 0 || e.Major == c.Major) && (c.Minor == 0 || e.Minor == c.Minor) && !e.Time.Before(start) && !e.Time.After(end) {
			match = append(match, e)
		}
	}
	n := min(c.MaxResults, t.cfg.MaxResults)
	lo := min(c.SearchResultPosition, len(match))
	hi := min(lo+n, len(match))
	page := match[lo:hi]
	st := "OK"
	switch {
	case len(match) == 0:
		st = "NO MATCH"
	case hi < len(match):
		st = "MORE"
	}
	list := make([]map[string]any, 0, len(page))
	for _, e := range page {
		m := map[string]any{"major": e.Major, "minor": e.Minor, "time": e.Time.Format(time.RFC3339), "cardReaderNo": 1, "doorNo": 1,
			"serialNo": e.Serial, "userType": "normal", "currentVerifyMode": "cardOrFaceOrFp", "mask": "no"}
		if e.EmployeeNo != "" {
			m["employeeNoString"], m["name"] = e.EmployeeNo, e.Name
		}
		if len(e.Picture) > 0 {
			m["pictureURL"] = fmt.Sprintf("http://%s/LOCALS/pic/acsLinkCap/%d.jpg@WEB000000000001", r.Host, e.Serial)
		}
		list = append(list, m)
	}
	ans := map[string]any{"AcsEvent": map[string]any{"searchID": c.SearchID, "totalMatches": len(match), "responseStatusStrg": st,
		"numOfMatches": len(page), "InfoList": list}}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ans)
}

func (t *Terminal) servePicture(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	name, _, _ = strings.Cut(name, "@")
	serial, err := strconv.ParseUint(strings.TrimSuffix(name, ".jpg"), 10, 64)
	if err == nil {
		for _, e := range t.Events() {
			if e.Serial == serial && len(e.Picture) > 0 {
				w.Header().Set("Content-Type", "image/jpeg")
				w.Write(e.Picture)
				return
			}
		}
	}
	status(w, http.StatusNotFound, 4, "Invalid Operation", "notFound", "")
}

// ---- persons and faces ----

type userJSON struct {
	EmployeeNo string `json:"employeeNo"`
	Name       string `json:"name"`
	UserType   string `json:"userType"`
	Valid      struct {
		Enable    bool   `json:"enable"`
		BeginTime string `json:"beginTime"`
		EndTime   string `json:"endTime"`
	} `json:"Valid"`
	NumOfFace int `json:"numOfFace"`
}

func (t *Terminal) serveUserSearch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Cond struct {
			SearchID             string `json:"searchID"`
			SearchResultPosition int    `json:"searchResultPosition"`
			MaxResults           int    `json:"maxResults"`
		} `json:"UserInfoSearchCond"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.Cond.MaxResults <= 0 {
		status(w, http.StatusBadRequest, 6, "Invalid Content", "badParameters", "")
		return
	}
	ps := t.Persons()
	faces := t.Faces()
	ids := make([]string, 0, len(ps))
	for id := range ps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	n := min(req.Cond.MaxResults, t.cfg.MaxResults)
	lo := min(max(req.Cond.SearchResultPosition, 0), len(ids))
	hi := min(lo+n, len(ids))
	var list []userJSON
	for _, id := range ids[lo:hi] {
		p := ps[id]
		u := userJSON{EmployeeNo: id, Name: p.Name, UserType: "normal"}
		u.Valid.Enable, u.Valid.BeginTime, u.Valid.EndTime = p.Enable, p.Begin, p.End
		if _, ok := faces[id]; ok {
			u.NumOfFace = 1
		}
		list = append(list, u)
	}
	st := "OK"
	switch {
	case len(ids) == 0:
		st = "NO MATCH"
	case hi < len(ids):
		st = "MORE"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"UserInfoSearch": map[string]any{"searchID": req.Cond.SearchID, "responseStatusStrg": st,
		"numOfMatches": hi - lo, "totalMatches": len(ids), "UserInfo": list}})
}

func (t *Terminal) userRecord(b []byte, modify bool) (int, string, string) {
	var req struct {
		UserInfo userJSON `json:"UserInfo"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return http.StatusBadRequest, "badJsonFormat", err.Error()
	}
	u := req.UserInfo
	if u.EmployeeNo == "" || len(u.EmployeeNo) > 32 {
		return http.StatusBadRequest, "employeeNoError", "employeeNo must be 1..32 characters"
	}
	for _, s := range []string{u.Valid.BeginTime, u.Valid.EndTime} {
		if _, err := time.Parse("2006-01-02T15:04:05", s); err != nil {
			return http.StatusBadRequest, "badParameters", "Valid times must look like 2026-03-01T00:00:00"
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, exists := t.persons[u.EmployeeNo]
	if modify && !exists {
		return http.StatusBadRequest, "employeeNoNotExist", ""
	}
	if !modify && exists {
		return http.StatusBadRequest, "employeeNoAlreadyExist", ""
	}
	t.persons[u.EmployeeNo] = Person{EmployeeNo: u.EmployeeNo, Name: u.Name, Begin: u.Valid.BeginTime, End: u.Valid.EndTime, Enable: u.Valid.Enable}
	return http.StatusOK, "", ""
}

func (t *Terminal) userDelete(b []byte) (int, string, string) {
	var req struct {
		Cond struct {
			List []struct {
				EmployeeNo string `json:"employeeNo"`
			} `json:"EmployeeNoList"`
		} `json:"UserInfoDelCond"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return http.StatusBadRequest, "badJsonFormat", err.Error()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range req.Cond.List {
		delete(t.persons, e.EmployeeNo)
		delete(t.faces, e.EmployeeNo)
	}
	return http.StatusOK, "", ""
}

func (t *Terminal) faceRecord(r *http.Request) (int, string, string) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return http.StatusBadRequest, "badParameters", "want multipart/form-data"
	}
	mr := multipart.NewReader(io.LimitReader(r.Body, 1<<20), params["boundary"])
	var rec struct {
		FaceLibType string `json:"faceLibType"`
		FDID        string `json:"FDID"`
		FPID        string `json:"FPID"`
	}
	var img []byte
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return http.StatusBadRequest, "badParameters", err.Error()
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return http.StatusBadRequest, "badParameters", err.Error()
		}
		switch p.FormName() {
		case "FaceDataRecord":
			if i != 0 {
				return http.StatusBadRequest, "badParameters", "FaceDataRecord must come first"
			}
			if err := json.Unmarshal(b, &rec); err != nil {
				return http.StatusBadRequest, "badJsonFormat", err.Error()
			}
		case "FaceImage":
			img = b
		}
	}
	if rec.FPID == "" || rec.FDID == "" || rec.FaceLibType == "" {
		return http.StatusBadRequest, "badParameters", "FaceDataRecord needs faceLibType, FDID and FPID"
	}
	if len(img) == 0 {
		return http.StatusBadRequest, "noFacePic", ""
	}
	if len(img) > 200<<10 {
		return http.StatusBadRequest, "picSizeExceedsLimit", ""
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(img))
	if err != nil {
		return http.StatusBadRequest, "noFacePic", "not a JPEG"
	}
	if cfg.Width < 80 || cfg.Height < 80 {
		return http.StatusBadRequest, "lowScoreFacePic", "under 80x80"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.persons[rec.FPID]; !ok {
		return http.StatusBadRequest, "employeeNoNotExist", ""
	}
	for id, f := range t.faces {
		if id != rec.FPID && bytes.Equal(f, img) {
			return http.StatusBadRequest, "faceDuplicate", "the face is already enrolled under employeeNo " + id
		}
	}
	t.faces[rec.FPID] = img
	return http.StatusOK, "", ""
}

func (t *Terminal) faceDelete(b []byte) (int, string, string) {
	var req struct {
		FPID []struct {
			Value string `json:"value"`
		} `json:"FPID"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return http.StatusBadRequest, "badJsonFormat", err.Error()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range req.FPID {
		delete(t.faces, f.Value)
	}
	return http.StatusOK, "", ""
}
