package zkpush

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// servers holds the PUSH servers by listen address: the terminals configured on one address
// share its server, which closes when the last of them closes.
var servers = struct {
	sync.Mutex
	m map[string]*server
}{m: map[string]*server{}}

// server is one HTTP listener serving every terminal configured on its address.
type server struct {
	listen  string // the configured address, the key in servers
	ln      net.Listener
	hs      *http.Server
	log     *slog.Logger
	maxBody int64
	refs    int // guarded by servers
	served  chan struct{}

	mu      sync.Mutex
	terms   map[string]*Terminal // by serial
	unknown map[string]time.Time // serial -> when it was last logged (rate limit)
	muted   int                  // unknown-serial requests not logged since the last log line
}

// unknownLogEvery is how often one unknown serial is logged at most.
const unknownLogEvery = time.Minute

func acquire(c Config, log *slog.Logger) (*server, error) {
	servers.Lock()
	defer servers.Unlock()
	if s, ok := servers.m[c.Listen]; ok {
		s.refs++
		return s, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("zkpush: listen: %w", err)
	}
	s := &server{
		listen: c.Listen, ln: ln, maxBody: c.MaxBody, refs: 1, served: make(chan struct{}),
		log:   log.With("listen", ln.Addr().String()),
		terms: map[string]*Terminal{}, unknown: map[string]time.Time{},
	}
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: time.Duration(c.HeaderTimeout),
		ReadTimeout:       time.Duration(c.ReadTimeout),
		// The write timeout covers the wait for an upload's readings to be recorded.
		WriteTimeout:   time.Duration(c.ReadTimeout) + time.Duration(c.AckTimeout) + 5*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.served)
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("zkpush: server stopped", "err", err)
		}
	}()
	servers.m[c.Listen] = s
	return s, nil
}

// release drops one reference and closes the server with the last one.
func release(s *server) {
	servers.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		delete(servers.m, s.listen)
	}
	servers.Unlock()
	if !last {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.hs.Shutdown(ctx); err != nil {
		s.hs.Close()
	}
	<-s.served
}

func (s *server) add(t *Terminal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.terms[t.cfg.Serial]; dup {
		return fmt.Errorf("zkpush: serial %s is already open on %s", t.cfg.Serial, s.listen)
	}
	s.terms[t.cfg.Serial] = t
	return nil
}

func (s *server) remove(t *Terminal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.terms[t.cfg.Serial] == t {
		delete(s.terms, t.cfg.Serial)
	}
}

// addr is the address the server listens on (the port chosen for ":0").
func (s *server) addr() string { return s.ln.Addr().String() }

// ServeHTTP routes a request by path and serial to its terminal. Nothing a client sends can make
// it panic; a panic would be a bug, and is answered 500 and logged rather than taking the daemon
// down.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("zkpush: bug: request handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v))
			http.Error(w, "zkpush: internal error", http.StatusInternalServerError)
		}
	}()
	path := strings.TrimSuffix(r.URL.Path, ".aspx") // some firmware append .aspx
	switch path {
	case "/iclock/cdata", "/iclock/fdata", "/iclock/getrequest", "/iclock/devicecmd", "/iclock/ping":
	default:
		http.NotFound(w, r)
		return
	}
	sn := r.URL.Query().Get("SN")
	s.mu.Lock()
	t := s.terms[sn]
	s.mu.Unlock()
	remote := remoteIP(r.RemoteAddr)
	if t == nil {
		s.refuseUnknown(sn, remote, path)
		http.Error(w, "zkpush: unknown serial", http.StatusForbidden)
		return
	}
	if !t.clockTrusted() {
		w.Header()["Date"] = nil // no Date header: the terminal keeps its own clock
	}
	var body []byte
	var bodyErr error
	if r.Method == http.MethodPost {
		if r.ContentLength > s.maxBody {
			t.refuseBody(w, remote, path, r.ContentLength, s.maxBody)
			return
		}
		body, bodyErr = io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
		var tooBig *http.MaxBytesError
		if errors.As(bodyErr, &tooBig) {
			t.refuseBody(w, remote, path, -1, s.maxBody)
			return
		}
	}
	status, reply := t.serve(r.Context(), path, r.Method, r.URL.Query(), remote, body, bodyErr)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	io.WriteString(w, reply) //nolint:errcheck // the terminal resends whatever it did not hear acknowledged
}

// refuseUnknown logs a request from a serial not configured here, once a minute per serial at
// most, counting the ones not logged.
func (s *server) refuseUnknown(sn, remote, path string) {
	now := time.Now()
	s.mu.Lock()
	last, seen := s.unknown[sn]
	log := !seen || now.Sub(last) >= unknownLogEvery
	muted := s.muted
	if log {
		if len(s.unknown) > 1024 { // a scan with random serials cannot grow the map without bound
			clear(s.unknown)
		}
		s.unknown[sn] = now
		s.muted = 0
	} else {
		s.muted++
	}
	s.mu.Unlock()
	if log {
		s.log.Warn("zkpush: request from an unknown serial refused", "serial", clip(sn), "remote", remote, "path", path, "not_logged_since", muted)
	}
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
