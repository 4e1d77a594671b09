package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// snapshotter polls a camera's snapshot URL (ONVIF's GetSnapshotUri, a Hikvision or Dahua
// /ISAPI/Streaming/channels/101/picture or /cgi-bin/snapshot.cgi): one JPEG per request, no video
// decoding. Next fetches when the next frame is due, so a slow consumer polls less often and
// nothing queues.
type snapshotter struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	auth   *digestAuth // nil without a username
	c      counters
	seq    uint64
	due    time.Time // when the next request may start
	retry  time.Duration
	closed chan struct{}
	once   sync.Once

	lastReport time.Time
	suppressed int
}

var _ Frames = (*snapshotter)(nil)

// errPermanent marks a snapshot failure that retrying cannot fix (refused credentials, a URL the
// camera does not have): Next returns it.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }
func (e errPermanent) Unwrap() error { return e.err }

// errTooLarge is a snapshot over max_frame_kib: counted as corrupt, not retried sooner.
var errTooLarge = errors.New("camera: snapshot: larger than max_frame_kib")

// openSnapshot makes the poller and fetches one snapshot to check the URL and the credentials.
func openSnapshot(ctx context.Context, cfg Config, password string, log *slog.Logger) (*snapshotter, error) {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: time.Duration(cfg.RequestTimeout)}).DialContext,
		TLSHandshakeTimeout:   time.Duration(cfg.RequestTimeout),
		ResponseHeaderTimeout: time.Duration(cfg.RequestTimeout),
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       time.Minute,
	}
	s := &snapshotter{cfg: cfg, log: log, client: &http.Client{Transport: tr}, retry: firstBackoff, closed: make(chan struct{})}
	if cfg.Username != "" {
		s.auth = &digestAuth{user: cfg.Username, password: password}
	}
	s.c.setState(drivers.StateStarting, nil)
	if _, err := s.fetch(ctx); err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	return s, nil
}

// Next waits until the next frame is due and fetches it. Network errors and server errors are
// retried with backoff inside Next; refused credentials or a missing URL end it with an error.
func (s *snapshotter) Next(ctx context.Context) (Frame, error) {
	for {
		if err := sleepUntil(ctx, s.closed, s.due); err != nil {
			return Frame{}, err
		}
		start := time.Now()
		s.due = start.Add(s.cfg.interval())
		b, err := s.fetch(ctx)
		if errors.Is(err, errTooLarge) {
			s.c.corrupt.Add(1)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return Frame{}, ctx.Err()
			}
			if _, ok := errors.AsType[errPermanent](err); ok {
				s.c.setState(drivers.StateDown, err)
				return Frame{}, err
			}
			s.c.restarts.Add(1)
			s.c.setState(drivers.StateDegraded, err)
			s.report(err)
			s.due = start.Add(s.retry/2 + rand.N(s.retry/2+1))
			s.retry = min(2*s.retry, time.Duration(s.cfg.BackoffMax))
			continue
		}
		s.retry = firstBackoff
		s.seq++
		w, h, v, ierr := inspect(b, s.cfg.MinChroma)
		switch v {
		case frameCorrupt:
			s.c.corrupt.Add(1)
			s.log.Debug("camera: corrupt snapshot skipped", "err", ierr)
			continue
		case frameGray:
			s.c.gray.Add(1)
			continue
		}
		s.c.delivered(start)
		return Frame{JPEG: b, At: start, Seq: s.seq, Width: w, Height: h}, nil
	}
}

func (s *snapshotter) report(err error) {
	if now := time.Now(); now.Sub(s.lastReport) >= logEvery {
		s.log.Warn("camera: snapshot failed, retrying", "err", err, "suppressed", s.suppressed)
		s.lastReport, s.suppressed = now, 0
	} else {
		s.suppressed++
	}
}

// fetch GETs one snapshot, answering one authentication challenge (or a stale nonce) per call.
func (s *snapshotter) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.RequestTimeout))
	defer cancel()
	go func() { // Close cancels a request in flight
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
		if err != nil {
			return nil, errPermanent{fmt.Errorf("camera: snapshot: %w", err)}
		}
		req.Header.Set("Accept", "image/jpeg")
		if s.auth != nil {
			s.auth.authorize(req)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("camera: snapshot: %w", err)
		}
		limit := int64(s.cfg.MaxFrameKiB) << 10
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusUnauthorized && s.auth == nil:
			return nil, errPermanent{errors.New("camera: snapshot: the camera asks for credentials (401): set username and password_file")}
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			if _, err := s.auth.setChallenge(resp.Header); err != nil {
				return nil, errPermanent{fmt.Errorf("camera: snapshot: 401 with %w", err)}
			}
			continue
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return nil, errPermanent{fmt.Errorf("camera: snapshot: the camera refused user %q (%s): check username and password_file", s.cfg.Username, resp.Status)}
		case resp.StatusCode == http.StatusNotFound:
			return nil, errPermanent{fmt.Errorf("camera: snapshot: %s: the camera has no such URL", resp.Status)}
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("camera: snapshot: %s", resp.Status)
		case rerr != nil:
			return nil, fmt.Errorf("camera: snapshot: reading the body: %w", rerr)
		case int64(len(body)) > limit:
			return nil, errTooLarge
		}
		return body, nil
	}
}

func (s *snapshotter) Health() Health { return s.c.health() }

func (s *snapshotter) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.client.CloseIdleConnections()
	})
	return nil
}
