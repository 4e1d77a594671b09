// Package inspect serves the field inspector's view of the box over HTTP (实地查看): today's
// sessions with who signed in and out, how, and who is missing; a search of the log; the
// integrity of the ledger against its head hash and the central receipt; the box's health; the
// class-hour report and the per-session sign-in sheet (签到表), printable and as CSV; a form that
// records the visit in the ledger; and the verifiable bundle to take away.
//
// Every page is read-only and behind a login: inspector accounts come from the store
// (store.Inspector: name, role, argon2id hash), and where none exist yet, a one-time code printed
// on the box (`kaoqin inspector code`, Server.IssueCode). Logins are rate-limited with a lockout,
// sessions expire, every form that changes something carries a CSRF token, and every response
// carries security headers (a CSP with no inline script, no framing, no-store). No page shows a
// full resident ID number, a key or a template. Pages are rendered on the server
// (html/template, Chinese first, English by ?lang=en), with every asset embedded.
//
// The pages read through Backend, which the daemon implements over the ledger service
// (agent/ops); the figures come from agent/report, so the page, the CLI and the CSV agree.
package inspect

import (
	"context"
	"crypto/ed25519"
	"embed"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
)

// Backend is what the pages read, and the two things they do: record a visit and write a bundle.
type Backend interface {
	Status(ctx context.Context) (ops.Status, error)
	// Events calls fn for each event matching f from seq from on, in order.
	Events(ctx context.Context, f ledger.Filter, from uint64, fn func(*ledger.Event) error) error
	// ActiveRoster is the active roster in full, nil if none (reports mask the ID numbers).
	ActiveRoster(ctx context.Context) (*roster.Roster, error)
	// Integrity verifies the ledger's chain and signatures with the device key.
	Integrity(ctx context.Context) (ops.Integrity, error)
	// Receipt is the latest central receipt, nil if the box has none yet.
	Receipt(ctx context.Context) (*export.Receipt, error)
	// Health is the box's state beyond the ledger: clock, disk, evidence, uplink.
	Health(ctx context.Context) (Health, error)
	// Inspectors are the accounts that may log in; none means one-time codes.
	Inspectors(ctx context.Context) ([]store.Inspector, error)
	// RecordInspection appends a signed inspection event for the visit.
	RecordInspection(ctx context.Context, v Visit) (ledger.Event, error)
	// ExportBundle writes the verifiable bundle of the events f selects (export.Write).
	ExportBundle(ctx context.Context, w io.Writer, f ledger.Filter, lang label.Lang) (export.Manifest, error)
	// Evidence opens an evidence JPEG by its hex SHA-256 name.
	Evidence(name string) (io.ReadCloser, error)
	// PublicKey is the device's public key, whose fingerprint the integrity page shows.
	PublicKey() (ed25519.PublicKey, error)
}

// Health is the box's state for the health page.
type Health struct {
	Clock          ledger.Clock // now, and whether the kernel considers the clock synchronised
	Uplink         bool         // the uplink to the central system is configured
	DiskFree       uint64       // bytes free on the state file system
	DiskReserve    uint64       // the reserve under which captures are refused
	EvidenceUsed   int64        // bytes in evidence/
	EvidenceBudget int64        // 0: no budget beyond the reserve
}

// Visit is what an inspector records: the headcount observed, a note, and the head hash they read
// on the integrity page (to compare later with the central system's).
type Visit struct {
	Inspector string
	Role      string
	Headcount int
	Note      string
	HeadSeq   uint64 // the head the page showed
	HeadHash  string // as the inspector wrote it down (may be a prefix)
	Matches   bool   // HeadHash matches the ledger's hash at HeadSeq
}

// Options tune the server. Zero values are the defaults.
type Options struct {
	// Zone is the configured time zone (nil: time.Local).
	Zone *time.Location
	// ClassHour is the length of a class hour for the reports (zero: report.DefaultClassHour).
	ClassHour time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	Log *slog.Logger
	// SessionIdle and SessionMax end a session after so long without a request, and so long
	// after login (30 minutes, 8 hours).
	SessionIdle, SessionMax time.Duration
	// CodeValid is how long a one-time code is valid (10 minutes).
	CodeValid time.Duration
	// MaxFailures failed logins within Lockout lock the address and the account out for
	// Lockout (5, 15 minutes).
	MaxFailures int
	Lockout     time.Duration
}

// Server is the inspector's web view. Create it with New.
type Server struct {
	b     Backend
	opt   Options
	log   *slog.Logger
	sess  *sessions
	codes *codes
	// byAddr and byName lock out a client address and an account name.
	byAddr, byName *limiter
	recent         recent
}

// New returns the server over b.
func New(b Backend, opt Options) *Server {
	if opt.Zone == nil {
		opt.Zone = time.Local
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.SessionIdle <= 0 {
		opt.SessionIdle = 30 * time.Minute
	}
	if opt.SessionMax <= 0 {
		opt.SessionMax = 8 * time.Hour
	}
	if opt.CodeValid <= 0 {
		opt.CodeValid = 10 * time.Minute
	}
	if opt.MaxFailures <= 0 {
		opt.MaxFailures = 5
	}
	if opt.Lockout <= 0 {
		opt.Lockout = 15 * time.Minute
	}
	lim := func() *limiter {
		return &limiter{m: map[string]*failures{}, max: opt.MaxFailures, window: opt.Lockout, lockout: opt.Lockout}
	}
	return &Server{b: b, opt: opt, log: opt.Log,
		sess:   &sessions{m: map[string]*session{}, idle: opt.SessionIdle, max: opt.SessionMax},
		codes:  &codes{m: map[string]time.Time{}},
		byAddr: lim(), byName: lim()}
}

// IssueCode makes a one-time login code, valid Options.CodeValid, usable once. It refuses while
// inspector accounts exist: then inspectors log in with their accounts.
func (s *Server) IssueCode(ctx context.Context) (Code, error) {
	accts, err := s.b.Inspectors(ctx)
	if err != nil {
		return Code{}, err
	}
	if len(accts) > 0 {
		return Code{}, ErrAccountsExist
	}
	c := s.codes.issue(s.opt.Now(), s.opt.CodeValid)
	s.log.Info("one-time inspector code issued", "expires", c.Expires)
	return c, nil
}

// ErrAccountsExist refuses a one-time code where inspector accounts exist.
var ErrAccountsExist = errorString("inspect: inspector accounts exist on this box: log in with an account (one-time codes are for boxes without accounts)")

type errorString string

func (e errorString) Error() string { return string(e) }

const (
	cookieSession = "kaoqin_session"
	cookieLogin   = "kaoqin_login" // the login form's CSRF token, before there is a session
)

//go:embed templates/*.html static/*
var assets embed.FS

// Handler serves the pages (everything but /v1/).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{file}", s.static)
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.authed(s.logout))
	mux.HandleFunc("GET /{$}", s.authed(s.today))
	mux.HandleFunc("GET /search", s.authed(s.search))
	mux.HandleFunc("GET /integrity", s.authed(s.integrity))
	mux.HandleFunc("GET /health", s.authed(s.health))
	mux.HandleFunc("GET /reports", s.authed(s.reports))
	mux.HandleFunc("GET /reports/hours.csv", s.authed(s.hoursCSV))
	mux.HandleFunc("GET /reports/sheet", s.authed(s.sheet))
	mux.HandleFunc("GET /reports/sheet.csv", s.authed(s.sheetCSV))
	mux.HandleFunc("GET /visit", s.authed(s.visitPage))
	mux.HandleFunc("POST /visit", s.authed(s.visit))
	mux.HandleFunc("GET /bundle", s.authed(s.bundle))
	mux.HandleFunc("GET /evidence/{seq}/{sha}", s.authed(s.evidence))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.current(r) == nil {
			s.toLogin(w, r)
			return
		}
		s.fail(w, r, http.StatusNotFound, "notFound")
	})
	return secure(mux)
}

// Protect serves h (the read-only JSON API) only to a logged-in inspector; anyone else gets 401
// as JSON.
func (s *Server) Protect(h http.Handler) http.Handler {
	return secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.current(r) == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"inspect: log in first (POST /login)"}`+"\n")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			io.WriteString(w, `{"error":"inspect: the JSON API here is read-only"}`+"\n")
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// csp allows nothing but this origin's stylesheet and images: no script at all.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// secure adds the security headers to every response; pages and JSON carry personal data, so
// nothing but the stylesheet may be stored by a cache.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// current is the request's live session, or nil.
func (s *Server) current(r *http.Request) *session {
	c, err := r.Cookie(cookieSession)
	if err != nil {
		return nil
	}
	return s.sess.get(c.Value, s.opt.Now())
}

type ctxKey struct{}

// authed serves h to a logged-in inspector; anyone else is sent to the login page (a POST is
// refused outright).
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := s.current(r)
		if ss == nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				s.fail(w, r, http.StatusUnauthorized, "loginFirst")
				return
			}
			s.toLogin(w, r)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || r.PostFormValue("csrf") != ss.csrf || ss.csrf == "" {
				s.fail(w, r, http.StatusForbidden, "badCSRF")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ss)))
	}
}

func sessionOf(r *http.Request) *session {
	ss, _ := r.Context().Value(ctxKey{}).(*session)
	return ss
}

// sameOrigin refuses a form posted from another site: when the browser says where it came from
// (Origin, or Sec-Fetch-Site), it must be this host.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		host := strings.TrimPrefix(strings.TrimPrefix(o, "http://"), "https://")
		return host == r.Host
	}
	return true
}

func (s *Server) toLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.RequestURI()
	http.Redirect(w, r, "/login?next="+urlQueryEscape(next)+langSuffix(r, "&"), http.StatusSeeOther)
}

// clientAddr is the address a login is rate-limited by.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// sourceLast is a source's state with its last event in the ledger.
type sourceLast struct {
	Name   string
	Health drivers.Health
	Last   *ledger.Event
}
