package hikisapi

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors of the ISAPI client.
var (
	// ErrLocked: the terminal locked the account after wrong passwords. The error is a
	// *LockError carrying the unlock time; nothing is sent to the terminal before it.
	ErrLocked = errors.New("hikisapi: account locked by the terminal")
	// ErrRejected: the terminal rejected the password. It is tried again only after
	// Config.AuthRetry (or as soon as the configured password changes).
	ErrRejected = errors.New("hikisapi: the terminal rejected the password")
)

// LockError is ErrLocked or ErrRejected with the time the next attempt is allowed.
type LockError struct {
	Err       error     // ErrLocked or ErrRejected
	Until     time.Time // no request is sent before this
	RetryLeft int       // retryLoginTime: attempts the terminal still allows; -1 when it said none
}

func (e *LockError) Error() string {
	s := fmt.Sprintf("%v until %s", e.Err, e.Until.Format(time.RFC3339))
	if e.RetryLeft >= 0 {
		s += fmt.Sprintf(" (%d attempts left before a lock)", e.RetryLeft)
	}
	return s
}
func (e *LockError) Unwrap() error { return e.Err }

// StatusError is an ISAPI request answered with a failure status.
type StatusError struct {
	HTTP      int
	Code      int    // statusCode (1 is OK)
	String    string // statusString
	SubStatus string // subStatusCode: "deviceBusy", "faceDuplicate", "notSupport", ...
	Msg       string // errorMsg
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("hikisapi: terminal answered %d %s/%s %s", e.HTTP, e.String, e.SubStatus, e.Msg)
}

// authGate is what the source knows about its credentials, kept across reopens so that a
// reopened source never tries a password the terminal rejected before its time.
type authGate struct {
	// probe is held by a request while the password is not known good, so that requests started
	// together (the stream, the history, a person sync) send it once, not once each.
	probe sync.Mutex

	mu          sync.Mutex
	rejected    string // the password the terminal rejected
	until       time.Time
	locked      bool
	retryLeft   int
	attempts    uint64 // authenticated requests the terminal rejected
	lastErr     *LockError
	provenGood  bool
	onLockEvent func(*LockError)
}

// client speaks ISAPI to one terminal: Digest authentication, one write at a time.
type client struct {
	base      *url.URL
	user      string
	pass      string
	hc        *http.Client
	timeout   time.Duration
	authRetry time.Duration
	gate      *authGate
	now       func() time.Time
	onDate    func(terminal, sent time.Time) // the terminal's Date header and when the request left
	onContact func()

	mu    sync.Mutex
	chal  *challenge
	nc    uint32
	write sync.Mutex
}

func newClient(base *url.URL, user, pass string, timeout, authRetry time.Duration, gate *authGate) *client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       time.Minute,
	}
	return &client{base: base, user: user, pass: pass, hc: &http.Client{Transport: tr}, timeout: timeout,
		authRetry: authRetry, gate: gate, now: time.Now}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// checkGate refuses at once while the account is locked or this password was rejected recently.
func (c *client) checkGate() error {
	g := c.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lastErr == nil {
		return nil
	}
	if c.now().Before(g.until) && (g.locked || g.rejected == c.pass) {
		return g.lastErr
	}
	if !g.locked && g.rejected != c.pass {
		g.lastErr = nil // a new password: try it
	}
	return nil
}

// reject records the terminal's refusal of an authenticated request.
func (c *client) reject(body []byte) *LockError {
	lock, unlock, left := parseUserCheck(body)
	g := c.gate
	g.mu.Lock()
	g.attempts++
	g.provenGood = false
	e := &LockError{Err: ErrRejected, Until: c.now().Add(c.authRetry), RetryLeft: left}
	if lock {
		e.Err = ErrLocked
		if unlock > 0 {
			e.Until = c.now().Add(unlock)
		}
	}
	g.rejected, g.until, g.locked, g.retryLeft, g.lastErr = c.pass, e.Until, lock, left, e
	f := g.onLockEvent
	g.mu.Unlock()
	if f != nil {
		f(e)
	}
	return e
}

func (c *client) accepted() {
	g := c.gate
	g.mu.Lock()
	g.provenGood, g.lastErr, g.locked, g.rejected = true, nil, false, ""
	g.mu.Unlock()
}

// parseUserCheck reads a 401 body: <userCheck><lockStatus>lock</lockStatus><unlockTime>1795
// </unlockTime><retryLoginTime>0</retryLoginTime></userCheck> (XML, or the same keys in JSON).
func parseUserCheck(b []byte) (locked bool, unlock time.Duration, retryLeft int) {
	var x struct {
		LockStatus     string `xml:"lockStatus" json:"lockStatus"`
		UnlockTime     string `xml:"unlockTime" json:"-"`
		RetryLoginTime string `xml:"retryLoginTime" json:"-"`
	}
	var j struct {
		LockStatus     string          `json:"lockStatus"`
		UnlockTime     json.RawMessage `json:"unlockTime"`
		RetryLoginTime json.RawMessage `json:"retryLoginTime"`
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) > 0 && t[0] == '{' {
		if json.Unmarshal(t, &j) == nil {
			x.LockStatus = j.LockStatus
			x.UnlockTime = strings.Trim(string(j.UnlockTime), `"`)
			x.RetryLoginTime = strings.Trim(string(j.RetryLoginTime), `"`)
		}
	} else {
		d := xml.NewDecoder(bytes.NewReader(t))
		d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
		if d.Decode(&x) != nil {
			return false, 0, -1 // a body that is no userCheck: a plain rejection
		}
	}
	retryLeft = -1
	if v, err := strconv.Atoi(strings.TrimSpace(x.RetryLoginTime)); err == nil && v >= 0 {
		retryLeft = v
	}
	s := strings.ToLower(strings.TrimSpace(x.LockStatus))
	locked = s == "lock" || s == "locked"
	if v, err := strconv.Atoi(strings.TrimSpace(x.UnlockTime)); err == nil && v > 0 {
		unlock = time.Duration(v) * time.Second
		locked = locked || s == ""
	}
	return locked, unlock, retryLeft
}

// do sends one request with Digest authentication and returns the response, whose body the
// caller closes. A 401 to an authenticated request is a rejection (see authGate); a 401 to a
// request sent with a nonce that may be stale is answered once more with the fresh challenge.
// Only ctx bounds the whole exchange (an alertStream is one long response).
func (c *client) do(ctx context.Context, method, path, ctype string, body []byte) (*http.Response, error) {
	if err := c.checkGate(); err != nil {
		return nil, err
	}
	c.gate.mu.Lock()
	good := c.gate.provenGood
	c.gate.mu.Unlock()
	if !good {
		c.gate.probe.Lock()
		defer c.gate.probe.Unlock()
		if err := c.checkGate(); err != nil {
			return nil, err // rejected while this request waited its turn
		}
	}
	u := *c.base
	pu, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("hikisapi: %s %s: %w", method, path, err)
	}
	u.Path, u.RawQuery = pu.Path, pu.RawQuery
	uri := u.RequestURI()
	for try := 0; try < 3; try++ {
		c.mu.Lock()
		ch := c.chal
		c.nc++
		nc := c.nc
		c.mu.Unlock()
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("hikisapi: %s %s: %w", method, path, err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if ch != nil {
			a, err := ch.authorization(c.user, c.pass, method, uri, nc)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", a)
		}
		sent := c.now()
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("hikisapi: %s %s: %w", method, path, err)
		}
		if c.onContact != nil {
			c.onContact()
		}
		if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil && c.onDate != nil {
			c.onDate(d, sent)
		}
		if resp.StatusCode != http.StatusUnauthorized {
			if ch != nil {
				c.accepted()
			}
			return resp, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10)) // only the lock status is of use
		resp.Body.Close()
		nch, ok := parseChallenge(resp.Header.Get("WWW-Authenticate"))
		if !ok {
			return nil, fmt.Errorf("hikisapi: %s %s: 401 without a Digest challenge (is Digest enabled?)", method, path)
		}
		c.gate.mu.Lock()
		good = c.gate.provenGood
		c.gate.mu.Unlock()
		// Not a rejection: the first request (no credentials yet), a stale nonce, or a nonce the
		// terminal forgot while the password is known good. Anything else is a wrong password.
		if ch != nil && !nch.stale && !(good && try == 0) {
			return nil, c.reject(b)
		}
		c.mu.Lock()
		c.chal, c.nc = &nch, 0
		c.mu.Unlock()
	}
	return nil, fmt.Errorf("hikisapi: %s %s: authentication did not settle", method, path)
}

// call sends a request and decodes a JSON answer into out (if not nil). A non-2xx status or a
// JSON statusCode other than 1 is a *StatusError. Writes (anything but GET) are serialised: the
// terminal takes one at a time and answers deviceBusy otherwise, which is retried after a pause.
func (c *client) call(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	if method != http.MethodGet {
		c.write.Lock()
		defer c.write.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := c.callOnce(ctx, method, path, ctype, body, out)
		var se *StatusError
		if !errors.As(err, &se) || se.SubStatus != "deviceBusy" || attempt >= 3 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 300 * time.Millisecond):
		}
	}
}

func (c *client) callOnce(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	resp, err := c.do(ctx, method, path, ctype, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("hikisapi: %s %s: reading the answer: %w", method, path, err)
	}
	st := parseStatus(b)
	if resp.StatusCode/100 != 2 || st != nil && st.Code != 0 && st.Code != 1 {
		if st == nil {
			st = &StatusError{}
		}
		st.HTTP = resp.StatusCode
		return st
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("hikisapi: %s %s: %w", method, path, err)
		}
	}
	return nil
}

// parseStatus reads a ResponseStatus (JSON or XML); nil when the body is none.
func parseStatus(b []byte) *StatusError {
	var s struct {
		StatusCode    int    `json:"statusCode" xml:"statusCode"`
		StatusString  string `json:"statusString" xml:"statusString"`
		SubStatusCode string `json:"subStatusCode" xml:"subStatusCode"`
		ErrorMsg      string `json:"errorMsg" xml:"errorMsg"`
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 {
		return nil
	}
	var err error
	if t[0] == '<' {
		err = xml.Unmarshal(t, &s)
	} else {
		err = json.Unmarshal(t, &s)
	}
	if err != nil || s.StatusString == "" && s.SubStatusCode == "" && s.StatusCode == 0 {
		return nil
	}
	return &StatusError{Code: s.StatusCode, String: s.StatusString, SubStatus: s.SubStatusCode, Msg: s.ErrorMsg}
}

// fetch GETs a resource (a capture's pictureURL), at most max bytes.
func (c *client) fetch(ctx context.Context, rawURL string, max int64) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("hikisapi: picture url: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, u.RequestURI(), "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("hikisapi: picture %s: %s", u.Path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("hikisapi: picture %s: %w", u.Path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("hikisapi: picture %s over %d bytes", u.Path, max)
	}
	return b, nil
}
