package inspect

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Password hashes are argon2id in the PHC string form the central system's accounts dataset
// carries: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt, base64 raw>$<hash, base64 raw>.

// Argon2id parameters of HashPassword (the OWASP minimum for argon2id: 19 MiB, 2 passes, 1 lane:
// about 50 ms on a small ARM box's core).
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	// maxArgonMemory bounds what a stored hash may ask for, so that one account of a bad
	// dataset cannot make every login exhaust the box's memory.
	maxArgonMemory = 256 * 1024
	maxArgonTime   = 16
)

// ErrBadHash is a stored password hash that is not an argon2id PHC string this package accepts.
var ErrBadHash = errors.New("inspect: not an argon2id password hash ($argon2id$v=19$m=..,t=..,p=..$salt$hash)")

// HashPassword hashes a password with argon2id and a random salt, in the PHC string form.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("inspect: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches the PHC hash. A hash it cannot read is an
// error (ErrBadHash), never a match.
func CheckPassword(hash, password string) (bool, error) {
	p, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

type argonParams struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parseHash(s string) (argonParams, error) {
	var p argonParams
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, ErrBadHash
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return p, ErrBadHash
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return p, ErrBadHash
			}
			p.threads = uint8(n)
		default:
			return p, ErrBadHash
		}
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return p, ErrBadHash
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, ErrBadHash
	}
	if p.memory < 8*uint32(p.threads) || p.memory > maxArgonMemory || p.time < 1 || p.time > maxArgonTime || p.threads < 1 {
		return p, ErrBadHash
	}
	return p, nil
}

// token is a random, URL-safe secret of 32 bytes.
func token() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// session is a logged-in inspector.
type session struct {
	id      string
	user    string
	role    string
	csrf    string
	created time.Time
	seen    time.Time
}

// sessions are held in memory: a restart of the daemon logs everyone out.
type sessions struct {
	mu   sync.Mutex
	m    map[string]*session
	idle time.Duration
	max  time.Duration
}

func (s *sessions) create(user, role string, now time.Time) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.m { // drop the expired, so the map stays small
		if s.expired(ss, now) {
			delete(s.m, id)
		}
	}
	ss := &session{id: token(), user: user, role: role, csrf: token(), created: now, seen: now}
	s.m[ss.id] = ss
	return ss
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.seen) > s.idle || now.Sub(ss.created) > s.max
}

// get returns the live session with id and marks it seen, or nil.
func (s *sessions) get(id string, now time.Time) *session {
	if id == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[id]
	if ss == nil {
		return nil
	}
	if s.expired(ss, now) {
		delete(s.m, id)
		return nil
	}
	ss.seen = now
	c := *ss
	return &c
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// Code is a one-time login code for when no inspector accounts exist yet: printed on the box by
// `kaoqin inspector code`, valid until Expires, usable once.
type Code struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// codeAlphabet leaves out 0/O and 1/I/L, which are misread from a screen.
const codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// maxCodeFailures wrong codes in a row void every code outstanding.
const maxCodeFailures = 10

type codes struct {
	mu       sync.Mutex
	m        map[string]time.Time // code -> expiry
	failures int
}

func newCode() string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	out := make([]byte, 0, 11)
	for i, c := range b {
		if i == 5 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[int(c)%len(codeAlphabet)])
	}
	return string(out)
}

func (c *codes) issue(now time.Time, valid time.Duration) Code {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, exp := range c.m {
		if now.After(exp) {
			delete(c.m, k)
		}
	}
	code := Code{Code: newCode(), Expires: now.Add(valid)}
	c.m[code.Code] = code.Expires
	return code
}

// use consumes a code: true once for a live code, false for anything else.
func (c *codes) use(code string, now time.Time) bool {
	code = strings.ToUpper(strings.TrimSpace(code))
	if len(code) == 10 && !strings.Contains(code, "-") {
		code = code[:5] + "-" + code[5:]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[code]
	if !ok || now.After(exp) {
		c.failures++
		if c.failures >= maxCodeFailures {
			clear(c.m) // someone is guessing: every code must be printed again
			c.failures = 0
		}
		return false
	}
	delete(c.m, code)
	c.failures = 0
	return true
}

// limiter locks out a client address or an account name after too many failed logins.
type limiter struct {
	mu      sync.Mutex
	m       map[string]*failures
	max     int
	window  time.Duration
	lockout time.Duration
}

type failures struct {
	n      int
	first  time.Time
	locked time.Time // locked until
}

// locked reports until when key is locked out (zero: not locked).
func (l *limiter) locked(key string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.m[key]; f != nil && now.Before(f.locked) {
		return f.locked
	}
	return time.Time{}
}

// fail records a failure of key and reports until when it is now locked (zero: not locked).
func (l *limiter) fail(key string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 10000 { // bounded memory: forget the oldest state wholesale
		clear(l.m)
	}
	f := l.m[key]
	if f == nil || now.Sub(f.first) > l.window {
		f = &failures{first: now}
		l.m[key] = f
	}
	f.n++
	if f.n >= l.max {
		f.locked = now.Add(l.lockout)
		f.n, f.first = 0, now
	}
	if now.Before(f.locked) {
		return f.locked
	}
	return time.Time{}
}

func (l *limiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}
