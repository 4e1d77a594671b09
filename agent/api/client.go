package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
)

// ErrNoDaemon means nothing listens on the socket: the daemon is stopped.
var ErrNoDaemon = errors.New("api: the daemon is not running")

// Client talks to a running daemon over its unix socket.
type Client struct {
	hc *http.Client
}

// Dial returns a client of the daemon at socket, or ErrNoDaemon when none answers.
func Dial(socket string) (*Client, error) {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, ErrNoDaemon
		}
		return nil, fmt.Errorf("api: %s: %w", socket, err)
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{hc: &http.Client{Transport: tr}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://kaoqin"+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return nil, fmt.Errorf("%w: %s", ErrDaemon, e.Error)
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (ops.Status, error) {
	var s ops.Status
	return s, c.call(ctx, "GET", "/v1/status", nil, &s)
}

// SignIn records a manual sign-in.
func (c *Client) SignIn(ctx context.Context, req SignInRequest) (checkin.Outcome, error) {
	var o checkin.Outcome
	return o, c.call(ctx, "POST", "/v1/signin", req, &o)
}

// Roster returns the active roster, masked.
func (c *Client) Roster(ctx context.Context) (ops.RosterSummary, error) {
	var s ops.RosterSummary
	return s, c.call(ctx, "GET", "/v1/roster", nil, &s)
}

// ImportDataset applies a signed dataset bundle carried to the box as a file.
func (c *Client) ImportDataset(ctx context.Context, req ops.ImportRequest) (ops.ImportResult, error) {
	var r ops.ImportResult
	return r, c.call(ctx, "POST", "/v1/roster", req, &r)
}

// NextCert allocates a certificate serial.
func (c *Client) NextCert(ctx context.Context, req ops.CertRequest) (cert.Serial, error) {
	var out struct{ Serial string }
	if err := c.call(ctx, "POST", "/v1/cert/next", req, &out); err != nil {
		return cert.Serial{}, err
	}
	return cert.Parse(out.Serial)
}

// Events calls fn for each event matching f from seq from on, in order.
func (c *Client) Events(ctx context.Context, f ledger.Filter, from uint64, fn func(*ledger.Event) error) error {
	q := url.Values{}
	if from > 0 {
		q.Set("from_seq", strconv.FormatUint(from, 10))
	}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		set("since", f.Since.Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		set("until", f.Until.Format(time.RFC3339))
	}
	set("session", f.Session)
	set("trainee", f.Trainee)
	set("kind", string(f.Kind))
	set("flag", string(f.Flag))
	resp, err := c.do(ctx, "GET", "/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line struct {
			ledger.Event
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("api: events: %w", err)
		}
		if line.Error != "" {
			return fmt.Errorf("%w: %s", ErrDaemon, line.Error)
		}
		if err := fn(&line.Event); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Enroll runs an enrolment, calling progress with each step, and returns the recorded event.
func (c *Client) Enroll(ctx context.Context, req EnrollRequest, progress func(string)) (ledger.Event, error) {
	b, _ := json.Marshal(req)
	resp, err := c.do(ctx, "POST", "/v1/enroll", bytes.NewReader(b))
	if err != nil {
		return ledger.Event{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var l EnrollLine
		if err := dec.Decode(&l); err != nil {
			return ledger.Event{}, fmt.Errorf("api: enroll: %w", err)
		}
		switch {
		case l.Error != "":
			return ledger.Event{}, fmt.Errorf("%w: %s", ErrDaemon, l.Error)
		case l.Event != nil:
			return *l.Event, nil
		default:
			progress(l.Progress)
		}
	}
}

// Snapshot writes a consistent copy of the running daemon's ledger file to w.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, "GET", "/v1/snapshot", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("api: snapshot cut short at %d of %d bytes", n, resp.ContentLength)
	}
	return n, err
}

// InspectorCode asks the daemon for a one-time login code for the inspector's pages.
func (c *Client) InspectorCode(ctx context.Context) (InspectorCode, error) {
	var out InspectorCode
	err := c.call(ctx, http.MethodPost, "/v1/inspector/code", nil, &out)
	return out, err
}

// SpotCheck asks the running daemon for a spot check at every room camera now; it returns how
// many cameras were asked (the events follow in the ledger).
func (c *Client) SpotCheck(ctx context.Context) (int, error) {
	var r SpotCheckReply
	err := c.call(ctx, "POST", "/v1/spotcheck", nil, &r)
	return r.Cameras, err
}
